"""Merges the GPU comparison's JSON reports (kiln, PyTorch) into one table.

    python3 bench/compare/gpu_table.py --kiln K1.json [K2.json ...] --torch T.json [--json MERGED.json]

Each report is what bench/compare/kiln_gpu.cpp (one per model) or torch_gpu.py printed; a missing or
empty file leaves its cells blank. Rows are joined by (model, precision). Ratios are kiln / PyTorch: for
images/s above 1 means kiln is faster; for peak memory above 1 means kiln needs more. A kiln row measured
with CUDA graphs too (kiln_gpu.cpp --cuda-graphs both) adds that throughput and its ratio as two more columns.
Standard library only.
"""

import argparse
import json
import os
import sys

MODEL_ORDER = ["resnet20", "resnet56"]
PRECISION_ORDER = ["fp32", "bf16"]

FOOTNOTES = [
    "images/s: training steps (forward, cross-entropy, loss read back, backward, SGD lr 0.01, momentum 0.9, "
    "weight decay 1e-4) on one random batch already on the GPU; the median of timed rounds, each from an idle "
    "GPU to a device synchronize.",
    "fp32: PyTorch with TF32 off (cuDNN convolutions and cuBLAS matmuls in true fp32, as kiln computes); "
    "cuDNN autotuning (cudnn.benchmark) at PyTorch's default, off.",
    "bf16: PyTorch under torch.autocast(cuda, bfloat16); kiln with --precision bf16 (bf16 activations, fp32 master weights).",
    "peak MiB: kiln counts its caching allocator's size classes (blocks rounded up to a quarter power of "
    "two, at most 25% slack; cuBLAS's own workspace not included), started over before each precision's "
    "run; PyTorch "
    "counts torch.cuda.max_memory_allocated (allocated blocks, 512-byte rounding, cuDNN/cuBLAS workspaces "
    "included), reset before each model was built. Both include weights, gradients, momentum buffers and "
    "activations; neither includes the CUDA context.",
    "kiln+graphs: the same steps with each step's forward and backward pass launched as one CUDA graph "
    "(kiln train --cuda-graphs; the SGD update outside the graph); PyTorch stays eager.",
]


def load(path):
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with open(path) as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            print(f"gpu_table.py: {path} is not JSON ({error}); its cells stay blank", file=sys.stderr)
            return None


def rows_by_key(reports):
    """{(model, precision): row} over several reports of one program."""
    rows = {}
    for report in reports:
        for row in report.get("results", []):
            rows[(row["model"], row["precision"])] = row
    return rows


def measured(row, field):
    """The row's value of `field`, or None where the row is missing or was not measured."""
    if not row or row.get("status") != "ok":
        return None
    return row.get(field)


def ratio(kiln_value, torch_value):
    return kiln_value / torch_value if kiln_value is not None and torch_value else None


def number_text(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio_text(value):
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def status_text(row):
    if row is None:
        return "no result"
    status = row.get("status", "?")
    if status == "failed" and row.get("error"):
        return "failed: " + row["error"].splitlines()[0][:80]
    return status


def print_table(headers, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells):  # the first two columns left-aligned, the numbers right-aligned
        return "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def order_key(key):
    model, precision = key
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), model,
            PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER))


def merge(kiln_rows, torch_rows):
    merged = []
    for key in sorted(set(kiln_rows) | set(torch_rows), key=order_key):
        kiln, torch = kiln_rows.get(key), torch_rows.get(key)
        kiln_rate, torch_rate = measured(kiln, "images_per_s"), measured(torch, "images_per_s")
        kiln_peak, torch_peak = measured(kiln, "peak_bytes"), measured(torch, "peak_bytes")
        graphs = (kiln or {}).get("with_cuda_graphs")
        graphs_rate = measured(graphs, "images_per_s")
        merged.append({
            "model": key[0], "precision": key[1],
            "kiln_images_per_s": kiln_rate, "torch_images_per_s": torch_rate,
            "speed_ratio_kiln_over_torch": ratio(kiln_rate, torch_rate),
            "kiln_peak_mib": kiln_peak / 2**20 if kiln_peak is not None else None,
            "torch_peak_mib": torch_peak / 2**20 if torch_peak is not None else None,
            "memory_ratio_kiln_over_torch": ratio(kiln_peak, torch_peak),
            "kiln_status": status_text(kiln), "torch_status": status_text(torch),
            "kiln_graphs_images_per_s": graphs_rate,
            "speed_ratio_kiln_graphs_over_torch": ratio(graphs_rate, torch_rate),
            "kiln_graphs_fallback": (graphs or {}).get("fallback"),
        })
    return merged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", nargs="*", default=[], help="kiln_gpu.cpp's reports, one per model")
    parser.add_argument("--torch", nargs="*", default=[], help="torch_gpu.py's report(s)")
    parser.add_argument("--json", help="write the merged results (and the raw reports) here")
    args = parser.parse_args()
    kiln_reports = [r for r in map(load, args.kiln) if r]
    torch_reports = [r for r in map(load, args.torch) if r]
    if not kiln_reports and not torch_reports:
        sys.exit("gpu_table.py: no report to show")
    merged = merge(rows_by_key(kiln_reports), rows_by_key(torch_reports))

    first = (kiln_reports or torch_reports)[0]
    batches = sorted({report["batch"] for report in kiln_reports + torch_reports})
    if len(batches) > 1:
        print(f"WARNING: the reports were made at different batch sizes: {batches}")
    print(f"GPU comparison: batch {first['batch']}, training throughput and peak device memory; "
          f"ratio = kiln / PyTorch")
    print(f"  device: {first.get('device', '?')}")
    formats = sorted({row.get("memory_format", "nchw") for report in kiln_reports + torch_reports
                      for row in report.get("results", [])})
    print(f"  memory format: {', '.join(formats) or '?'}"
          + (" (the reports differ: rows do not compare like with like)" if len(formats) > 1 else ""))
    if torch_reports:
        t = torch_reports[0]
        print(f"  PyTorch {t['version']} (CUDA {t.get('cuda')}, cuDNN {t.get('cudnn')}), eager, TF32 settings "
              f"{t.get('tf32')}, cudnn.benchmark {t.get('cudnn_benchmark')}")
    else:
        print("  PyTorch: no results")
    if not kiln_reports:
        print("  kiln: no results")
    print()

    headers = ["model", "precision", "kiln img/s", "torch img/s", "speed kiln/torch",
               "kiln peak MiB", "torch peak MiB", "memory kiln/torch"]
    table = [[r["model"], r["precision"], number_text(r["kiln_images_per_s"]),
              number_text(r["torch_images_per_s"]), ratio_text(r["speed_ratio_kiln_over_torch"]),
              number_text(r["kiln_peak_mib"]), number_text(r["torch_peak_mib"]),
              ratio_text(r["memory_ratio_kiln_over_torch"])] for r in merged]
    if any(r["kiln_graphs_images_per_s"] is not None for r in merged):
        headers += ["kiln+graphs img/s", "speed kiln+graphs/torch"]
        for row, r in zip(table, merged):
            row += [number_text(r["kiln_graphs_images_per_s"]), ratio_text(r["speed_ratio_kiln_graphs_over_torch"])]
    print_table(headers, table)
    for r in merged:
        if r["kiln_graphs_fallback"]:
            print(f"WARNING: kiln {r['model']} {r['precision']}: the step was not captured as a graph "
                  f"({r['kiln_graphs_fallback']}); its +graphs cells ran without one")

    not_ok = [r for r in merged if r["kiln_status"] != "ok" or r["torch_status"] != "ok"]
    if not_ok:
        print()
        print("Rows with blank cells:")
        for r in not_ok:
            print(f"  {r['model']} {r['precision']}: kiln {r['kiln_status']}; PyTorch {r['torch_status']}")
    kiln_rows, torch_rows = rows_by_key(kiln_reports), rows_by_key(torch_reports)
    for program, rows in (("kiln", kiln_rows), ("PyTorch", torch_rows)):
        for key, row in sorted(rows.items(), key=lambda item: order_key(item[0])):
            if row.get("warning"):
                print(f"WARNING: {program} {key[0]} {key[1]}: {row['warning']} "
                      f"(loss {row.get('loss_after_warmup')} -> {row.get('loss_at_end')})")
    for key, kiln in sorted(kiln_rows.items(), key=lambda item: order_key(item[0])):
        torch = torch_rows.get(key)
        if kiln.get("parameters") and torch and torch.get("parameters") and \
                kiln["parameters"] != torch["parameters"]:
            print(f"WARNING: {key[0]}: parameter counts differ: kiln {kiln['parameters']}, "
                  f"PyTorch {torch['parameters']}")
    print()
    for number, note in enumerate(FOOTNOTES, 1):
        print(f"[{number}] {note}")

    if args.json:
        with open(args.json, "w") as file:
            json.dump({"rows": merged, "footnotes": FOOTNOTES,
                       "raw": {"kiln": kiln_reports, "torch": torch_reports}}, file, indent=1)
        print(f"\nmerged results written to {args.json}")


if __name__ == "__main__":
    main()
