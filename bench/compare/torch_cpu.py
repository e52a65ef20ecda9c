"""PyTorch's side of the CPU comparison (scripts/compare-cpu.sh).

Times the same convolutions (forward, backward-data, backward-weight) and SGEMMs that
bench/compare/kiln_cpu.cpp times, the inference forward pass (batch 1 and --batch) and a whole training
step of ResNet-20, the MobileNet-style net, the VGG-style net, ResNet-18 and MobileNetV2, on CPU, float32,
NCHW (and bf16 under autocast, and channels-last), and
prints one JSON object on stdout in the same form as the C++ programs (progress goes to stderr):

    build/compare_kiln_cpu --list-shapes --image-size 32 > shapes.json
    python3 bench/compare/torch_cpu.py --shapes shapes.json [--threads 2] [--batch 128] [--image-size 32]
                                       [--warmup 1] [--reps 10] [--budget 2]

The convolutions are bench/compare/shapes.hpp's, as kiln's program lists them (table.py joins the rows by
name). The backward convolutions call aten::convolution_backward with one gradient requested, the op
autograd runs (torch.nn.grad.conv2d_input / conv2d_weight call it too).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# (name, m, n, k): C[m, n] = A[m, k] B[k, n].
GEMM_SHAPES = [
    ("1024x1024x1024", 1024, 1024, 1024),
    ("2048x2048x2048", 2048, 2048, 2048),
    ("conv-like 64x8192x576", 64, 8192, 576),
    ("conv-like 16x1024x144", 16, 1024, 144),
]
# kiln's parameter counts for the two networks, checked so that both sides train the same thing.
KILN_PARAMETERS = {"resnet20": 269_722, "mobilenet": 3_217_226, "vgg_small": 288_746, "resnet18": 11_181_642,
                   "mobilenet_v2": 2_236_682, "mobilenet_v3_small": 1_528_106}
TRAINING_STEP_BUDGET_SECONDS = 10.0  # kiln_cpu.cpp uses the same


def time_median(args, work):
    """Warm up, then repeat until --reps runs or --budget seconds; the median and fastest run in ms, and
    the run count.

    The same rule as bench/compare/timing.hpp: a case whose warm-up alone exceeds the budget is that
    one sample.
    """
    for _ in range(args.warmup):
        start = time.perf_counter()
        work()
        ms = (time.perf_counter() - start) * 1e3
        if ms >= args.budget * 1e3:
            return ms, ms, 1
    samples = []
    while not samples or (len(samples) < args.reps and sum(samples) < args.budget * 1e3):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples), len(samples)


# ---- ResNet-20, built as kiln builds it (models/resnet.cpp, layers/blocks.cpp) -------------------------


class PadIdentityShortcut(nn.Module):
    """Option A: keep every stride-th pixel, then zero channels, (out - in) // 2 before and the rest after."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before
        self.stride = stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)  # eps 1e-5, momentum 0.1, as kiln's
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        identity = in_channels == out_channels and stride == 1
        self.shortcut = nn.Identity() if identity else PadIdentityShortcut(in_channels, out_channels, stride)

    def forward(self, x):
        residual = F.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        return F.relu(residual + self.shortcut(x))


def resnet(depth=20, in_channels=3, classes=10):
    blocks_per_stage = (depth - 2) // 6
    layers = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    channels = 16
    for stage in range(3):
        stage_channels = 16 << stage
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(channels, stage_channels, stride))
            channels = stage_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


# ---- ResNet-18, built as kiln builds it (models/resnet_imagenet.cpp) and as torchvision's resnet18 -------


class ProjectionBlock(nn.Module):
    """A basic block whose shortcut, where the size or the channels change, is a 1x1 conv and a batch norm."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        identity = in_channels == out_channels and stride == 1
        self.shortcut = nn.Identity() if identity else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x):
        residual = F.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        return F.relu(residual + self.shortcut(x))


def resnet18(in_channels=3, classes=10):
    layers = [nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    channels = 64
    for stage in range(4):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(ProjectionBlock(channels, 64 << stage, stride))
            channels = 64 << stage
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


# ---- the MobileNet-style net, built as kiln builds it (models/mobilenet.cpp, layers/blocks.cpp) ----------


def depthwise_separable(in_channels, out_channels, stride):
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels), nn.ReLU(),
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())


MOBILENET_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                    (512, 1), (512, 1), (1024, 2), (1024, 1)]


def mobilenet(in_channels=3, classes=10):
    layers = [nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()]
    channels = 32
    for block_channels, stride in MOBILENET_BLOCKS:
        layers.append(depthwise_separable(channels, block_channels, stride))
        channels = block_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


# ---- MobileNetV2, built as kiln builds it (models/mobilenet_v2.cpp, layers/blocks.cpp) ---------------------


class InvertedResidual(nn.Module):
    def __init__(self, in_channels, out_channels, stride, expansion):
        super().__init__()
        hidden = in_channels * expansion
        layers = []
        if expansion > 1:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


# (expansion, channels, repeats, first stride): Sandler et al. 2018, table 2, with CIFAR's stride-1 stages.
MOBILENET_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(in_channels=3, classes=10):
    layers = [nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
    channels = 32
    for expansion, stage_channels, repeats, stride in MOBILENET_V2_STAGES:
        for i in range(repeats):
            layers.append(InvertedResidual(channels, stage_channels, stride if i == 0 else 1, expansion))
            channels = stage_channels
    layers += [nn.Conv2d(channels, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, classes)]
    return nn.Sequential(*layers)


# ---- MobileNetV3-Small, built as kiln builds it (models/mobilenet_v3.cpp, layers/blocks.cpp) --------------


class SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        means = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(means))))


class InvertedResidualV3(nn.Module):
    def __init__(self, in_channels, out_channels, kernel, hidden, squeeze, hardswish, stride):
        super().__init__()
        activation = nn.Hardswish if hardswish else nn.ReLU
        layers = []
        if hidden != in_channels:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), activation()]
        layers += [nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), activation()]
        if squeeze:
            layers.append(SqueezeExcitation(hidden, squeeze))
        layers += [nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


# (kernel, hidden, out, squeeze-and-excitation, hard swish, stride): Howard et al. 2019, table 2, the first
# block at CIFAR's stride 1 (models/mobilenet_blocks.hpp).
MOBILENET_V3_SMALL_BLOCKS = [(3, 16, 16, True, False, 1), (3, 72, 24, False, False, 2),
                             (3, 88, 24, False, False, 1), (5, 96, 40, True, True, 2),
                             (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
                             (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1),
                             (5, 288, 96, True, True, 2), (5, 576, 96, True, True, 1),
                             (5, 576, 96, True, True, 1)]


def rounded_to_eight(value):
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


def mobilenet_v3_small(in_channels=3, classes=10):
    layers = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()]
    channels = 16
    for kernel, hidden, out, squeeze, hardswish, stride in MOBILENET_V3_SMALL_BLOCKS:
        layers.append(InvertedResidualV3(channels, out, kernel, hidden,
                                         rounded_to_eight(hidden / 4) if squeeze else 0, hardswish, stride))
        channels = out
    layers += [nn.Conv2d(channels, 576, 1, bias=False), nn.BatchNorm2d(576), nn.Hardswish(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(576, 1024), nn.Hardswish(), nn.Dropout(0.2),
               nn.Linear(1024, classes)]
    return nn.Sequential(*layers)


# ---- the VGG-style net, built as kiln builds it (models/vgg.cpp) ------------------------------------------

VGG_SMALL = [32, 32, "M", 64, 64, "M", 128, 128, "M"]  # "M": a 2x2 max-pool


def vgg_small(in_channels=3, classes=10):
    layers, channels = [], in_channels
    for entry in VGG_SMALL:
        if entry == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        layers += [nn.Conv2d(channels, entry, 3, 1, 1, bias=False), nn.BatchNorm2d(entry), nn.ReLU()]
        channels = entry
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


# ---- the cases ----------------------------------------------------------------------------------------


def conv_rows(args, shape):
    """Forward, backward-data and backward-weight of one of shapes.hpp's convolutions (a --list-shapes
    entry: channels, square kernel, stride, padding, dilation, groups, input and output size, FLOPs)."""
    n, size, kernel, out_size = args.batch, shape["in_size"], shape["kernel"], shape["out_size"]
    cin, cout, groups = shape["in_channels"], shape["out_channels"], shape["groups"]
    stride, padding, dilation = shape["stride"], shape["padding"], shape["dilation"]
    flops = shape["flops_per_image"] * n
    x = torch.rand(n, cin, size, size) * 2 - 1
    w = torch.rand(cout, cin // groups, kernel, kernel) * 2 - 1
    gy = torch.rand(n, cout, out_size, out_size) * 2 - 1
    strides, paddings, dilations = [stride] * 2, [padding] * 2, [dilation] * 2

    def backward(mask):
        return torch.ops.aten.convolution_backward(gy, x, w, None, strides, paddings, dilations,
                                                   False, [0, 0], groups, mask)

    directions = [
        ("forward", lambda: F.conv2d(x, w, None, stride, padding, dilation, groups)),
        ("backward_data", lambda: backward([True, False, False])),
        ("backward_weight", lambda: backward([False, True, False])),
    ]
    rows = []
    for direction, work in directions:
        ms, min_ms, reps = time_median(args, work)
        print(f"torch: conv {shape['name']:26s} {direction:15s} {ms:10.3f} ms", file=sys.stderr)
        rows.append({"kind": "conv", "shape": shape["name"], "family": shape["family"], "count": shape["count"],
                     "direction": direction, "layout": "nchw", "ms": ms, "min_ms": min_ms,
                     "gflops": flops / ms * 1e-6, "reps": reps})
    return rows


def gemm_row(args, name, m, n, k):
    a = torch.rand(m, k) * 2 - 1
    b = torch.rand(k, n) * 2 - 1
    c = torch.empty(m, n)
    ms, min_ms, reps = time_median(args, lambda: torch.mm(a, b, out=c))
    print(f"torch: sgemm {name:22s} {ms:10.3f} ms", file=sys.stderr)
    return {"kind": "gemm", "shape": name, "ms": ms, "min_ms": min_ms,
            "gflops": 2.0 * m * n * k / ms * 1e-6, "reps": reps}


INFERENCE_REPS = 50  # kiln_cpu.cpp uses the same


def inference_row(args, name, model, batch):
    """The model in eval mode under torch.inference_mode, one float32 forward pass over `batch` random images,
    as kiln_cpu.cpp times kiln's (batch 1: one image's latency). At least INFERENCE_REPS timed runs within the
    budget."""
    model.eval()
    images = torch.randn(batch, 3, args.image_size, args.image_size)
    inference_args = argparse.Namespace(**{**vars(args), "reps": max(args.reps, INFERENCE_REPS)})
    with torch.inference_mode():
        ms, min_ms, reps = time_median(inference_args, lambda: model(images))
    shape = f"{name} n{batch}"
    print(f"torch: {shape} inference {ms:10.3f} ms ({batch / ms * 1e3:.1f} images/s)", file=sys.stderr)
    return {"kind": "inference", "shape": shape, "ms": ms, "min_ms": min_ms, "batch": batch,
            "images_per_s": batch / ms * 1e3, "reps": reps}


def training_step_row(args, name, model, bf16=False, channels_last=False):
    """One step as kiln's trainer takes it: forward, cross-entropy, backward, SGD momentum + weight decay.
    With bf16, the forward runs under torch.autocast(cpu, bfloat16), PyTorch's mixed precision; with
    channels_last, model and images are torch.channels_last. The row's shape names both as kiln's does."""
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(args.batch, 3, args.image_size, args.image_size)
    if channels_last:
        images = images.to(memory_format=torch.channels_last)
    labels = torch.arange(args.batch) % 10
    name += (" bf16" if bf16 else "") + (" channels-last" if channels_last else "")

    def forward():
        if not bf16:
            return model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(images).float()

    def step():
        loss = F.cross_entropy(forward(), labels)
        loss.item()  # kiln's trainer reads the loss every step
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # The headline number gets a longer budget than one kernel call: a few steps after the warm-up.
    step_args = argparse.Namespace(**{**vars(args), "budget": max(args.budget, TRAINING_STEP_BUDGET_SECONDS)})
    try:
        ms, min_ms, reps = time_median(step_args, step)
    except RuntimeError as error:  # e.g. PyTorch 1.13 has no bfloat16 ReLU6 (hardtanh) backward on the CPU
        print(f"torch: {name} training step: not run ({str(error).splitlines()[0]})", file=sys.stderr)
        return None
    images_per_s = args.batch / ms * 1e3
    print(f"torch: {name} training step {ms:10.3f} ms ({images_per_s:.1f} images/s)", file=sys.stderr)
    return {"kind": "train_step", "shape": name, "ms": ms, "min_ms": min_ms,
            "images_per_s": images_per_s, "reps": reps, "parameters": sum(p.numel() for p in model.parameters())}


def loaded_blas():
    """The BLAS library torch.mm calls: Debian's PyTorch uses whatever libblas.so.3 the system's
    alternatives select (netlib's reference BLAS unless OpenBLAS or BLIS is installed)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.split()[-1]}
    except OSError:
        return "unknown"
    return ", ".join(sorted({os.path.realpath(path) for path in paths})) or "none loaded"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32, help="the networks' input, N x N")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed runs per case, at most")
    parser.add_argument("--shapes", required=True,
                        help="the convolutions to time: the JSON `compare_kiln_cpu --list-shapes` prints")
    args = parser.parse_args()
    with open(args.shapes) as file:
        shapes = json.load(file)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    models = {"resnet20": resnet(20), "mobilenet": mobilenet(), "vgg_small": vgg_small(), "resnet18": resnet18(),
              "mobilenet_v2": mobilenet_v2(), "mobilenet_v3_small": mobilenet_v3_small()}
    for name, model in models.items():
        parameters = sum(p.numel() for p in model.parameters())
        if parameters != KILN_PARAMETERS[name]:
            sys.exit(f"torch_cpu.py: {name} has {parameters} parameters, kiln's has {KILN_PARAMETERS[name]}")

    results = []
    with torch.no_grad():
        for shape in shapes:
            results += conv_rows(args, shape)
        for shape in GEMM_SHAPES:
            results.append(gemm_row(args, *shape))
    for name, model in models.items():
        for batch in (1, args.batch):
            results.append(inference_row(args, name, model, batch))
    for bf16, channels_last in ((False, False), (True, False), (True, True)):
        for name, model in models.items():
            row = training_step_row(args, name, model, bf16, channels_last)
            if row:
                results.append(row)
    print(json.dumps({
        "program": "torch",
        "version": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "blas": loaded_blas(),
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "image_size": args.image_size,
        "results": results,
    }))


if __name__ == "__main__":
    main()
