"""Merges the CPU comparison's three JSON reports (kiln, oneDNN, PyTorch) into one table.

    python3 bench/compare/table.py --kiln K.json --onednn O.json --torch T.json [--json MERGED.json]

Each report is what bench/compare/kiln_cpu.cpp, onednn_cpu.cpp or torch_cpu.py printed; a missing or
empty file leaves that library's columns blank. Rows are joined by (kind, shape, direction). Ratios are
kiln's speedup, other time / kiln time: above 1 kiln is faster. Convolutions come in families (shapes.hpp:
ResNet-20's, then MobileNet's, LeNet-5's and strided layers of other models), each with its own geometric
mean; the last column names the algorithm kiln chose. Standard library only.
"""

import argparse
import json
import math
import os
import sys

DIRECTIONS = ["forward", "backward_data", "backward_weight"]
# The zoo networks whose whole step both sides time, in fp32, in bf16 (PyTorch under autocast), and in bf16
# with channels-last activations on both sides.
TRAINING_STEP_MODELS = [
    f"{model}{way}" for way in ("", " bf16", " bf16 channels-last")
    for model in ("resnet20", "mobilenet", "vgg_small", "resnet18", "mobilenet_v2", "mobilenet_v3_small")
]
# Column key -> (program, layout) of the row it reads.
LIBRARIES = {
    "onednn_nchw": ("onednn", "nchw"),
    "onednn_blocked": ("onednn", "blocked"),
    "torch": ("torch", "nchw"),
}
LIBRARY_TITLES = {"onednn_nchw": "oneDNN nchw", "onednn_blocked": "oneDNN blocked", "torch": "PyTorch"}
FAMILY_TITLES = {"resnet20": "ResNet-20", "mobilenet": "MobileNet-style", "lenet5": "LeNet-5",
                 "strided": "strided layers of other models", "resnet18": "ResNet-18's last stage on 96x96 photos"}


def load(path):
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with open(path) as file:
        return json.load(file)


def index(report, layout_default="nchw"):
    """{(kind, shape, direction, layout): row} for one program's report."""
    if report is None:
        return {}
    return {(row["kind"], row["shape"], row.get("direction", ""), row.get("layout", layout_default)): row
            for row in report["results"]}


def milliseconds(value):
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def ratio_text(value):
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def ratio(other_ms, kiln_ms):
    return other_ms / kiln_ms if other_ms is not None and kiln_ms else None


def geometric_mean(values):
    values = [v for v in values if v is not None]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def print_table(headers, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    def line(cells):  # the first column left-aligned, the numbers right-aligned
        padded = [str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(padded)

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def merge(reports):
    """One row per (kind, shape, direction) with every library's time; conv rows also get a fwd+bwd sum."""
    indexed = {name: index(report) for name, report in reports.items()}
    keys = []
    for name in ("kiln", "onednn", "torch"):
        for kind, shape, direction, _ in indexed[name]:
            if (kind, shape, direction) not in keys:
                keys.append((kind, shape, direction))

    def time_of(program, layout, kind, shape, direction):
        row = indexed[program].get((kind, shape, direction, layout))
        return row["ms"] if row else None

    merged = []
    for kind, shape, direction in keys:
        # Reports from before the families had only ResNet-20's convolutions.
        row = {"kind": kind, "shape": shape, "direction": direction, "family": "resnet20",
               "kiln": time_of("kiln", "nchw", kind, shape, direction)}
        for column, (program, layout) in LIBRARIES.items():
            row[column] = time_of(program, layout, kind, shape, direction)
        for program in ("kiln", "onednn", "torch"):
            for (row_kind, row_shape, row_direction, _), source in indexed[program].items():
                if (row_kind, row_shape, row_direction) == (kind, shape, direction):
                    for field in ("count", "family"):
                        if field in source:
                            row[field] = source[field]
        kiln_row = indexed["kiln"].get((kind, shape, direction, "nchw"))
        row["algorithm"] = kiln_row.get("impl") if kiln_row else None
        merged.append(row)

    # fwd + bwd-data + bwd-weight, per conv shape: one training step's worth of work for that layer.
    conv_shapes = [shape for kind, shape, direction in keys if kind == "conv" and direction == DIRECTIONS[0]]
    for shape in conv_shapes:
        parts = [r for r in merged
                 if r["kind"] == "conv" and r["shape"] == shape and r["direction"] in DIRECTIONS]
        total = {"kind": "conv", "shape": shape, "direction": "fwd+bwd", "count": parts[0].get("count"),
                 "family": parts[0]["family"], "algorithm": None}
        for column in ["kiln", *LIBRARIES]:
            times = [r[column] for r in parts]
            total[column] = sum(times) if len(times) == 3 and None not in times else None
        merged.append(total)
    for row in merged:
        row["speedup"] = {column: ratio(row[column], row["kiln"]) for column in LIBRARIES}
    return merged, conv_shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln")
    parser.add_argument("--onednn")
    parser.add_argument("--torch")
    parser.add_argument("--json", help="write the merged results here")
    args = parser.parse_args()
    reports = {"kiln": load(args.kiln), "onednn": load(args.onednn), "torch": load(args.torch)}
    if not any(reports.values()):
        sys.exit("table.py: no report to show")
    merged, conv_shapes = merge(reports)
    kiln = reports["kiln"] or {}
    first = next(r for r in reports.values() if r)
    peak = kiln.get("fp32_peak_gflops")

    size = first.get("image_size", 32)
    print(f"CPU comparison: batch {first['batch']}, {size}x{size} images, {first['threads']} threads; "
          f"times are medians in ms; "
          f"kiln speedup = other / kiln (>1: kiln faster); --json also has each case's fastest run")
    for name, report in reports.items():
        if report is None:
            print(f"  {name}: no results")
    if reports["torch"]:
        torch_report = reports["torch"]
        print(f"  PyTorch {torch_report['version']}, BLAS for torch.mm: {torch_report.get('blas', '?')}")
    if reports["onednn"]:
        print(f"  oneDNN {reports['onednn']['version']}")
    if kiln:
        print(f"  kiln CPU level {kiln['cpu_level']}, measured FP32 peak {peak:.1f} GFLOP/s")
    print()

    headers = ["case", "direction", "kiln", *[LIBRARY_TITLES[c] for c in LIBRARIES],
               *[f"vs {LIBRARY_TITLES[c]}" for c in LIBRARIES], "kiln algorithm"]
    order = {d: i for i, d in enumerate([*DIRECTIONS, "fwd+bwd"])}
    table = []
    conv_rows = sorted((r for r in merged if r["kind"] == "conv"),
                       key=lambda r: (conv_shapes.index(r["shape"]), order.get(r["direction"], 9)))
    other_rows = [r for r in merged if r["kind"] != "conv"]
    families = []  # in the order the shapes came, ResNet-20's first
    for row in conv_rows:
        if row["family"] not in families:
            families.append(row["family"])
    previous_family = None
    for row in conv_rows + other_rows:
        if row["kind"] == "conv" and row["family"] != previous_family:
            table.append([f"[{FAMILY_TITLES.get(row['family'], row['family'])}]", *[""] * (len(headers) - 1)])
            previous_family = row["family"]
        label = {"conv": "conv ", "gemm": "sgemm ", "inference": "infer ", "train_step": "step "}.get(
            row["kind"], "") + row["shape"]
        table.append([label, row["direction"] or "", milliseconds(row["kiln"]),
                      *[milliseconds(row[c]) for c in LIBRARIES],
                      *[ratio_text(row["speedup"][c]) for c in LIBRARIES], row.get("algorithm") or ""])
    print_table(headers, table)

    summary = {}
    totals = [r for r in merged if r["direction"] == "fwd+bwd"]
    resnet_totals = [r for r in totals if r["family"] == "resnet20"]
    print()
    print("Summary, geometric mean of kiln's speedup on each family's fwd+bwd times:")
    summary["conv_fwd_bwd_geomean_speedup_by_family"] = {}
    for family in families:
        rows = [r for r in totals if r["family"] == family]
        means = {column: geometric_mean([r["speedup"][column] for r in rows]) for column in LIBRARIES}
        summary["conv_fwd_bwd_geomean_speedup_by_family"][family] = means
        if family == "resnet20":  # the key earlier reports had
            for column, mean in means.items():
                summary[f"conv_fwd_bwd_geomean_speedup_vs_{column}"] = mean
        cells = [f"vs {LIBRARY_TITLES[c]} {ratio_text(means[c])}" for c in LIBRARIES]
        title = FAMILY_TITLES.get(family, family)
        print(f"  {title + f' ({len(rows)} shapes)':42s} " + ", ".join(cells))

    # All 19 convolutions of one ResNet-20 training step: each shape's fwd+bwd times how often it occurs.
    if resnet_totals and all(r.get("count") for r in resnet_totals):
        weighted = {}
        for column in ["kiln", *LIBRARIES]:
            times = [r[column] * r["count"] for r in resnet_totals if r[column] is not None]
            weighted[column] = sum(times) if len(times) == len(resnet_totals) else None
        layers = sum(r["count"] for r in resnet_totals)
        summary["resnet20_all_convs_fwd_bwd_ms"] = weighted
        cells = [f"kiln {milliseconds(weighted['kiln'])}"]
        for c in LIBRARIES:
            speedup = ratio_text(ratio(weighted[c], weighted["kiln"]))
            cells.append(f"{LIBRARY_TITLES[c]} {milliseconds(weighted[c])} ({speedup})")
        print(f"All {layers} ResNet-20 convs, fwd+bwd, ms (kiln speedup): " + ", ".join(cells))

    print("SGEMM GFLOP/s (% of kiln's measured FP32 peak):")
    summary["fp32_peak_gflops"] = peak
    gemm_report = {name: index(report) for name, report in reports.items()}
    summary["sgemm_gflops"] = {}
    for row in other_rows:
        if row["kind"] != "gemm":
            continue
        cells = []
        for program, title in (("kiln", "kiln"), ("onednn", "oneDNN"), ("torch", "PyTorch")):
            source = gemm_report[program].get(("gemm", row["shape"], "", "nchw"))
            if source:
                percent = f" ({100 * source['gflops'] / peak:.0f}%)" if peak else ""
                cells.append(f"{title} {source['gflops']:.1f}{percent}")
                summary["sgemm_gflops"].setdefault(row["shape"], {})[program] = source["gflops"]
        print(f"  {row['shape']:24s} " + ", ".join(cells))

    def rate_text(rate):
        return "-" if rate is None else f"{rate:.1f} images/s"

    print("Inference (eval mode, no gradients, float32; n1: one image's latency):")
    summary["inference"] = {}
    for row in other_rows:
        if row["kind"] != "inference":
            continue
        speedup = row["speedup"]["torch"]
        summary["inference"][row["shape"]] = {"kiln_ms": row["kiln"], "torch_ms": row["torch"],
                                              "speedup_vs_torch": speedup}
        print(f"  {row['shape']:28s} kiln {milliseconds(row['kiln'])} ms, PyTorch {milliseconds(row['torch'])} ms, "
              f"kiln speedup {ratio_text(speedup)}")

    print("Training steps (forward, loss, backward, SGD momentum + weight decay):")

    for model in TRAINING_STEP_MODELS:
        step = {name: index(report).get(("train_step", model, "", "nchw")) for name, report in reports.items()}
        kiln_rate = step["kiln"]["images_per_s"] if step["kiln"] else None
        torch_rate = step["torch"]["images_per_s"] if step["torch"] else None
        summary[f"{model.replace(' ', '_').replace('-', '_')}_images_per_s"] = {"kiln": kiln_rate, "torch": torch_rate}
        speedup = kiln_rate / torch_rate if kiln_rate and torch_rate else None
        print(f"  {model:28s} kiln {rate_text(kiln_rate)}, PyTorch {rate_text(torch_rate)}, "
              f"kiln speedup {ratio_text(speedup)}")
        counts = {name: row.get("parameters") for name, row in step.items() if row}
        if len(set(counts.values())) > 1:
            print(f"  WARNING: {model}'s parameter counts differ: {counts}")

    if args.json:
        meta = {name: {k: v for k, v in report.items() if k != "results"}
                for name, report in reports.items() if report}
        with open(args.json, "w") as file:
            json.dump({"programs": meta, "rows": merged, "summary": summary,
                       "raw": {name: report for name, report in reports.items() if report}}, file, indent=1)
        print(f"\nmerged results written to {args.json}")


if __name__ == "__main__":
    main()
