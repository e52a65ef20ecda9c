"""PyTorch's side of the GPU comparison (scripts/compare-gpu.sh).

Trains the same ResNets that bench/compare/kiln_gpu.cpp trains (torch_cpu.py's builder, which mirrors
kiln's models/resnet.cpp) on cuda:0, eager, with the same recipe: a random batch, cross-entropy, the loss
read back every step (as kiln's trainer does), backward, SGD with learning rate 0.01, momentum 0.9 and
weight decay 1e-4 (bench/training_step_bench.cpp's recipe).
Prints one JSON object on stdout in the form kiln_gpu.cpp prints (progress goes to stderr):

    python3 bench/compare/torch_gpu.py [--models resnet20,resnet56] [--batch 128] [--warmup 10]
                                       [--steps 50] [--rounds 5] [--budget 30] [--precision fp32|bf16|both]
                                       [--memory-format nchw|channels-last]

fp32 is true fp32: TF32 is off for cuDNN convolutions and cuBLAS matmuls, because kiln's fp32 kernels
compute in fp32 and TF32 would compare a 10-bit mantissa against kiln's 23. bf16 is
torch.autocast(device_type='cuda', dtype=torch.bfloat16) around the forward and the loss, weights and
optimizer in fp32 (no gradient scaling: bf16 has fp32's range). cuDNN's autotuner stays at PyTorch's
default (torch.backends.cudnn.benchmark = False); the report says so.

Peak memory is torch.cuda.max_memory_allocated(), reset before each model is built, read after its timed
steps: bytes in allocated blocks (rounded to 512), not what the caching allocator reserved from the
device (also reported, as peak_reserved_bytes).
"""

import argparse
import gc
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from torch_cpu import resnet  # mirrors kiln's models/resnet.cpp (option-A shortcuts); counts checked below

MODELS = {"resnet20": 20, "resnet56": 56}
# kiln's parameter counts (models/resnet.cpp): a builder that drifted from kiln's would be caught here.
KILN_PARAMETERS = {"resnet20": 269_722, "resnet56": 853_018}


def turn_tf32_off():
    """Makes fp32 convolutions and matmuls run in fp32; returns the settings as read back.

    PyTorch 2.9 added per-backend fp32_precision settings and deprecated the allow_tf32 flags; mixing the
    two APIs can raise, so the new one is used where it exists.
    """
    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):
        try:
            torch.backends.cudnn.conv.fp32_precision = "ieee"
            torch.backends.cuda.matmul.fp32_precision = "ieee"
            return {"cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
                    "cuda_matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision}
        except (AttributeError, RuntimeError, ValueError) as error:  # then the flags below, which still work
            print(f"torch: the fp32_precision settings failed ({error}); using allow_tf32", file=sys.stderr)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}


def time_rounds(args, round_of_steps):
    """Median and fastest round in ms, and the round count: --rounds rounds at most, fewer once they have
    taken --budget seconds, at least one (the rule of bench/compare/timing.hpp, which kiln_gpu.cpp uses)."""
    samples = []
    while not samples or (len(samples) < args.rounds and sum(samples) < args.budget * 1e3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        round_of_steps()
        torch.cuda.synchronize()  # the last step's backward and update have run when the clock is read
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples), len(samples)


def train_row(args, name, precision):
    """The training steps of one model at one precision: throughput, peak memory, loss before and after."""
    # A fresh peak per row: the previous row's model and optimizer are gone, its cached blocks returned.
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()

    torch.manual_seed(1)
    device = torch.device("cuda", 0)
    memory_format = torch.channels_last if args.memory_format == "channels-last" else torch.contiguous_format
    model = resnet(MODELS[name]).to(device, memory_format=memory_format)
    model.train()
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(args.batch, 3, 32, 32, generator=generator).to(device, memory_format=memory_format)
    labels = (torch.arange(args.batch) % 10).to(device)
    autocast = precision == "bf16"

    loss_value = [math.nan]
    # As kiln's trainer reads each loss (train/loss_readback.hpp): copied back behind its step's work into
    # page-locked memory, and read once the next step is queued, so the host never waits for the device.
    readback = torch.empty(2, dtype=torch.float64, pin_memory=True)
    landed = [torch.cuda.Event(), torch.cuda.Event()]
    started = [0]

    def step():
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(images), labels)
        slot = started[0] % 2
        readback[slot].copy_(loss.detach().double(), non_blocking=True)
        landed[slot].record()
        started[0] += 1
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if started[0] > 1:
            previous = (started[0] - 2) % 2
            landed[previous].synchronize()
            loss_value[0] = readback[previous].item()

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    loss_after_warmup = loss_value[0]

    def round_of_steps():
        for _ in range(args.steps):
            step()

    ms, min_ms, rounds = time_rounds(args, round_of_steps)
    peak = torch.cuda.max_memory_allocated()
    peak_reserved = torch.cuda.max_memory_reserved()
    ms_per_step = ms / args.steps
    images_per_s = args.batch / ms_per_step * 1e3
    print(f"torch: {name} {precision} {ms_per_step:9.3f} ms/step  {images_per_s:10.1f} images/s  "
          f"peak {peak / 2**20:8.1f} MiB  loss {loss_after_warmup:.4f} -> {loss_value[0]:.4f}", file=sys.stderr)
    row = {"kind": "train_step", "model": name, "precision": precision, "memory_format": args.memory_format,
           "status": "ok", "parameters": parameters,
           "images_per_s": images_per_s, "ms_per_step": ms_per_step, "min_ms_per_step": min_ms / args.steps,
           "rounds": rounds, "steps_per_round": args.steps, "peak_bytes": peak,
           "peak_reserved_bytes": peak_reserved,
           "peak_scope": "torch.cuda.max_memory_allocated, reset before the model was built, read after the "
                         "timed steps",
           # JSON has no NaN: a non-finite loss is written as null, and the status says why.
           "loss_after_warmup": loss_after_warmup if math.isfinite(loss_after_warmup) else None,
           "loss_at_end": loss_value[0] if math.isfinite(loss_value[0]) else None}
    if not (math.isfinite(loss_after_warmup) and math.isfinite(loss_value[0])):
        row["warning"] = "non-finite loss"  # the timings stand; the table shows the warning
    if parameters != KILN_PARAMETERS[name]:
        row["status"] = f"architecture differs: {parameters} parameters, kiln's has {KILN_PARAMETERS[name]}"
    del model, optimizer, images, labels
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,resnet56", help="comma-separated: resnet20, resnet56")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before the timed rounds")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds at most; the median is reported")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of timed rounds per row, at most")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--memory-format", choices=["nchw", "channels-last"], default="nchw",
                        help="channels-last: the model and batch in torch.channels_last (cuDNN's NHWC kernels)")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})")
    if args.batch < 1 or args.steps < 1 or args.rounds < 1 or args.warmup < 0 or args.budget < 0:
        parser.error("--batch, --steps and --rounds must be positive; --warmup and --budget >= 0")
    if not torch.cuda.is_available():
        sys.exit("torch_gpu.py: torch.cuda.is_available() is False: no GPU, or a PyTorch built without CUDA")

    tf32 = turn_tf32_off()
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    properties = torch.cuda.get_device_properties(0)
    print(f"torch: {torch.__version__} on {properties.name}, batch {args.batch}", file=sys.stderr)

    failed = False
    results = []
    for name in models:
        for precision in precisions:
            try:
                results.append(train_row(args, name, precision))
            except Exception as error:  # reported in the table; the other rows still run
                print(f"torch: {name} {precision} failed: {error}", file=sys.stderr)
                results.append({"kind": "train_step", "model": name, "precision": precision,
                                "status": "failed", "error": str(error)})
            failed = failed or results[-1]["status"] != "ok" or "warning" in results[-1]

    print(json.dumps({
        "program": "torch",
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "device": f"cuda:0: {properties.name} (sm_{properties.major}{properties.minor}, "
                  f"{properties.total_memory / 2**30:.1f} GiB)",
        "tf32": tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "batch": args.batch,
        "warmup_steps": args.warmup,
        "steps_per_round": args.steps,
        "max_rounds": args.rounds,
        "budget_s": args.budget,
        "results": results,
    }))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
