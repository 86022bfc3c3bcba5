#!/usr/bin/env python3
"""The PyTorch side of the training-speed benchmark: the generated project's three models, layer for layer.

Mirrors the generated project's `bench` subcommand (same flags, same JSON last line, plus "framework" and
"torch_version"), so that bench/run.sh can put the two side by side:

    python bench/torch_reference.py --model cnn --json                # train: 5 warm-up + 50 timed steps, batch 64
    python bench/torch_reference.py --model cnn --eval --json         # inference: forward only, batch 256
    python bench/torch_reference.py --model convnext --threads 2 --steps 100

Training is AdamW with the generated project's defaults (template/config.json.liquid and
template/training/src/optim.rs) on cross-entropy, with dropout active. The data is one random batch
([B, 1, 28, 28] pixels uniform in [0, 1), uniform labels) made before the clock starts, so neither side times
data loading. A training step's time covers zero_grad, forward, loss, backward, the optimizer step and
`loss.item()` (the Rust side reads the loss every step too).
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
DEFAULT_TRAIN_BATCH = 64
DEFAULT_EVAL_BATCH = 256


class Mlp(nn.Module):
    """template/model/src/mlp.rs with its defaults: 784-256-10, ReLU, dropout 0.2 after the hidden layer."""

    def __init__(self, hidden=(256,), dropout=0.2):
        super().__init__()
        dims = [math.prod(INPUT_SHAPE), *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.out = nn.Linear(dims[-1], NUM_CLASSES)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = x.flatten(1)  # [batch, 784]
        for fc in self.hidden:
            x = self.dropout(F.relu(fc(x)))  # [batch, 256]
        return self.out(x)  # [batch, 10]


class Cnn(nn.Module):
    """template/model/src/cnn.rs: PyTorch examples/mnist `Net`."""

    def __init__(self, dropout1=0.25, dropout2=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(dropout1)
        self.fc1 = nn.Linear(64 * 12 * 12, 128)
        self.dropout2 = nn.Dropout(dropout2)
        self.fc2 = nn.Linear(128, NUM_CLASSES)

    def forward(self, x):
        x = F.relu(self.conv1(x))  # [batch, 32, 26, 26]
        x = F.relu(self.conv2(x))  # [batch, 64, 24, 24]
        x = self.dropout1(F.max_pool2d(x, 2))  # [batch, 64, 12, 12]
        x = self.dropout2(F.relu(self.fc1(x.flatten(1))))  # [batch, 128]
        return self.fc2(x)  # [batch, 10]


class ChannelNorm(nn.Module):
    """template/model/src/layer_norm.rs `ChannelNorm`: to NHWC, LayerNorm over channels, back to NCHW.

    The Rust LayerNorm is a composition of tensor ops (candle-nn's fused one has no backward pass);
    here it is PyTorch's own, as a PyTorch user would write it.
    """

    def __init__(self, channels, eps):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    """x + pwconv2(gelu(pwconv1(norm(dwconv(x))))), as `Block` in template/model/src/convnext.rs."""

    def __init__(self, dim, eps):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = ChannelNorm(dim, eps)
        self.pwconv1 = nn.Conv2d(dim, 2 * dim, 1)
        self.gelu = nn.GELU()  # exact (erf), like candle's gelu_erf
        self.pwconv2 = nn.Conv2d(2 * dim, dim, 1)

    def forward(self, x):
        return x + self.pwconv2(self.gelu(self.pwconv1(self.norm(self.dwconv(x)))))


class ConvNext(nn.Module):
    """template/model/src/convnext.rs with dims [8, 16, 32]: 28 -> 7 -> 3 -> 1, 14,090 parameters."""

    def __init__(self, dims=(8, 16, 32), eps=1e-6, head_width=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, dims[0], 4, stride=4), ChannelNorm(dims[0], eps))
        self.stages = nn.ModuleList(Block(d, eps) for d in dims)
        self.downsample = nn.ModuleList(
            nn.Sequential(ChannelNorm(a, eps), nn.Conv2d(a, b, 2, stride=2)) for a, b in zip(dims, dims[1:])
        )
        self.head_norm = nn.LayerNorm(dims[-1], eps=eps)
        self.head_fc1 = nn.Linear(dims[-1], head_width)
        self.head_fc2 = nn.Linear(head_width, NUM_CLASSES)

    def forward(self, x):
        x = self.stem(x)  # [batch, 8, 7, 7]
        for i, block in enumerate(self.stages):
            x = block(x)
            if i < len(self.downsample):
                x = self.downsample[i](x)  # [batch, 16, 3, 3], then [batch, 32, 1, 1]
        x = self.head_norm(x.mean((2, 3)))  # [batch, 32]
        return self.head_fc2(self.head_fc1(x))  # [batch, 64] -> [batch, 10]; no activation between, as in Rust


# Per model: constructor, AdamW learning rate (config.json.liquid) and the Rust model's parameter count
# (the `*_parameters` tests in template/model/src).
MODELS = {
    "mlp": (Mlp, 1e-3, 203_530),
    "cnn": (Cnn, 1e-3, 1_199_882),
    "convnext": (ConvNext, 3e-3, 14_090),
}
# AdamWArgs::default() in template/training/src/optim.rs.
WEIGHT_DECAY = 0.01
BETAS = (0.9, 0.999)
EPS = 1e-8


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--steps", type=int, default=50, help="timed steps [default: 50]")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first [default: 5]")
    p.add_argument("--batch-size", type=int, help=f"[default: {DEFAULT_TRAIN_BATCH}, {DEFAULT_EVAL_BATCH} with --eval]")
    p.add_argument("--eval", action="store_true", help="time forward-only inference instead of training")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="torch.set_num_threads [default: the CPUs this process may use]")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where to run (cuda: scripts/gpu-check.sh's ratio) [default: cpu]")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    args = p.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = DEFAULT_EVAL_BATCH if args.eval else DEFAULT_TRAIN_BATCH
    for name in ("steps", "batch_size", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    return args


def build_model(name):
    make, lr, expected_params = MODELS[name]
    model = make()
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params:,} parameters (Rust model: {expected_params:,})", file=sys.stderr)
    if params != expected_params:
        sys.exit(f"error: the PyTorch {name} has {params:,} parameters but the Rust one has {expected_params:,}; "
                 f"bring {__file__} in line with template/model/src/{name}.rs")
    return model, lr


def time_steps(step, warmup, steps):
    """Runs `step` warmup times untimed, then `steps` times; returns each timed step's seconds and the
    wall-clock seconds of the timed loop."""
    for _ in range(warmup):
        step()
    times = []
    wall = time.perf_counter()
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times, time.perf_counter() - wall


def percentile(values, q):
    """The nearest-rank quantile, as the Rust side computes it (template/training/src/bench.rs)."""
    xs = sorted(values)
    rank = math.ceil(q * len(xs))
    return xs[min(max(rank, 1), len(xs)) - 1]


def run(args):
    torch.manual_seed(42)
    torch.set_num_threads(args.threads)
    model, lr = build_model(args.model)
    device = torch.device(args.device)
    model = model.to(device)
    xs = torch.rand(args.batch_size, *INPUT_SHAPE, device=device)
    ys = torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device)
    # Like the Rust side's device.synchronize(): a step ends when the device has finished it.
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    if args.eval:
        model.eval()

        def step():
            with torch.inference_mode():
                model(xs).argmax(1)  # the Rust side takes the predictions too
            sync()
    else:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)

        def step():
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xs), ys)
            loss.backward()
            optimizer.step()
            loss.item()
            sync()

    times, seconds = time_steps(step, args.warmup, args.steps)
    return {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "model": args.model,
        "mode": "eval" if args.eval else "train",
        "device": args.device,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "samples_per_sec": round(args.batch_size * args.steps / seconds, 1),
        "step_ms_p50": round(1e3 * percentile(times, 0.5), 3),
        "step_ms_p90": round(1e3 * percentile(times, 0.9), 3),
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main():
    args = parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"pytorch {result['torch_version']} {result['model']} {result['mode']}: "
              f"batch {result['batch_size']}, {result['steps']} steps, {result['threads']} threads: "
              f"{result['samples_per_sec']:,.1f} samples/s, step p50 {result['step_ms_p50']:.2f} ms, "
              f"p90 {result['step_ms_p90']:.2f} ms, peak RSS {result['peak_rss_mb']:.1f} MB")


if __name__ == "__main__":
    main()
