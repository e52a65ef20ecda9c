"""Sets a kiln training run beside bench/compare/torch_train.py's run of the same recipe, epoch by epoch.

    python3 bench/compare/train_curves.py KILN_METRICS TORCH_LOG [--last 5] [--json SUMMARY.json]

KILN_METRICS is a run's RUNDIR/metrics.jsonl or its `kiln train --json` output (lines without an epoch's
numbers are skipped); TORCH_LOG is torch_train.py's stdout. Prints train loss, train accuracy and test
accuracy for both, each epoch either one reached, then a summary: the last epoch's test accuracy, the mean
over the last --last epochs (one run's last epoch moves by a few tenths from seed to seed), and the mean
train-loss difference (kiln minus PyTorch) over the epochs both ran. Standard library only.
"""

import argparse
import json
import sys


def read_lines(path):
    with open(path) as file:
        for text in file:
            text = text.strip()
            if text.startswith("{"):
                yield json.loads(text)


def kiln_epochs(path):
    """{epoch: (train_loss, train_accuracy, test_accuracy or None)} from metrics.jsonl or --json output."""
    epochs = {}
    for line in read_lines(path):
        if "train_loss" not in line or line.get("event", "epoch") != "epoch":
            continue
        epochs[line["epoch"]] = (line["train_loss"], line.get("train_accuracy"), line.get("eval_accuracy"))
    return epochs


def torch_epochs(path):
    return {line["epoch"]: (line["train_loss"], line["train_accuracy"], line["test_accuracy"])
            for line in read_lines(path)}


def percent(value):
    return "    -" if value is None else f"{100 * value:5.1f}"


def loss_text(value):
    return "     -" if value is None else f"{value:6.3f}"


def last_mean(epochs, count):
    """The mean test accuracy over the last `count` epochs that have one, and how many there were."""
    scores = [epochs[e][2] for e in sorted(epochs) if epochs[e][2] is not None][-count:]
    return (sum(scores) / len(scores), len(scores)) if scores else (None, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kiln")
    parser.add_argument("torch")
    parser.add_argument("--last", type=int, default=5, help="epochs the summary's mean runs over")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args()
    kiln, torch = kiln_epochs(args.kiln), torch_epochs(args.torch)
    if not kiln or not torch:
        sys.exit(f"train_curves.py: no epochs in {args.kiln if not kiln else args.torch}")

    print("epoch    train loss        train acc %       test acc %")
    print("         kiln   torch      kiln  torch      kiln  torch")
    for epoch in sorted(set(kiln) | set(torch)):
        k, t = kiln.get(epoch, (None,) * 3), torch.get(epoch, (None,) * 3)
        print(f"{epoch:5d}  {loss_text(k[0])} {loss_text(t[0])}     {percent(k[1])} {percent(t[1])}     "
              f"{percent(k[2])} {percent(t[2])}")

    shared = sorted(set(kiln) & set(torch))
    summary = {"epochs": {"kiln": max(kiln), "torch": max(torch)}}
    for name, epochs in (("kiln", kiln), ("torch", torch)):
        mean, count = last_mean(epochs, args.last)
        summary[name] = {"last_test_accuracy": epochs[max(epochs)][2], "last_mean_test_accuracy": mean,
                         "last_mean_epochs": count}
    summary["mean_train_loss_difference"] = sum(kiln[e][0] - torch[e][0] for e in shared) / len(shared)
    print()
    for name in ("kiln", "torch"):
        s = summary[name]
        print(f"{name:5s}  epoch {summary['epochs'][name]}: test {percent(s['last_test_accuracy'])}%,"
              f" mean of the last {s['last_mean_epochs']} {percent(s['last_mean_test_accuracy'])}%")
    print(f"train loss, kiln minus PyTorch, mean over {len(shared)} epochs: "
          f"{summary['mean_train_loss_difference']:+.4f}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(summary, file, indent=2)


if __name__ == "__main__":
    main()
