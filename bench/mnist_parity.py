#!/usr/bin/env python3
"""The PyTorch side of the full-MNIST parity benchmark (bench/mnist_parity.sh): PyTorch's examples/mnist
`Net` (the template's cnn, layer for layer) trained with the generated project's default settings.

    python bench/mnist_parity.py --data ../shared/data/mnist-full --epochs 3 --seed 1 --json

The settings are those of the template's config.json, not of examples/mnist (which uses Adadelta and a
step schedule): AdamW (lr 1e-3, weight decay 0.01, betas 0.9/0.999, eps 1e-8), constant learning rate,
batch 64 reshuffled every epoch, the last smaller batch kept, pixels scaled to [0, 1] and normalised with
mean 0.1307 and std 0.3081, dropout 0.25 and 0.5, cross-entropy; all 60,000 training digits, no validation
split; the test set scored once after the last epoch. An epoch's time is the training loop alone (the
batches are sliced from tensors already in memory, as the Rust side's are).

`--init candle` replaces PyTorch's default initialisation with candle 0.11's (weights Kaiming-normal with
the ReLU gain, std sqrt(2 / fan_in); biases uniform in +-1/sqrt(fan_in)): with it, this script measures
what the initialisation alone does to the accuracy.
"""

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(9216, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


def candle_init(net):
    """candle-nn 0.11's `linear` / `conv2d` initialisation, for the experiment."""
    with torch.no_grad():
        for layer in (net.conv1, net.conv2, net.fc1, net.fc2):
            fan_in = layer.weight[0].numel()
            layer.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
            bound = 1.0 / math.sqrt(fan_in)
            layer.bias.uniform_(-bound, bound)


def read_idx(path):
    """An IDX file, plain or gzip, as a uint8 tensor of its dimensions."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(f">{rank}I", data[4 : 4 + 4 * rank])
    return torch.frombuffer(bytearray(data[4 + 4 * rank :]), dtype=torch.uint8).reshape(dims)


def load(folder, prefix):
    def find(stem):
        for name in (stem, stem + ".gz"):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
        sys.exit(f"{folder}: no {stem}[.gz]; it needs the four MNIST files")

    images = read_idx(find(f"{prefix}-images-idx3-ubyte")).float().div_(255.0).sub_(MEAN).div_(STD)
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte")).long()
    return images.unsqueeze(1), labels


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder with the four MNIST files (plain or .gz)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="0: all CPUs")
    p.add_argument("--init", choices=["torch", "candle"], default="torch")
    p.add_argument("--json", action="store_true", help="print one JSON line at the end")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_x, train_y = load(args.data, "train")
    test_x, test_y = load(args.data, "t10k")
    net = Net()
    if args.init == "candle":
        candle_init(net)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)

    epoch_seconds = []
    for epoch in range(1, args.epochs + 1):
        net.train()
        order = torch.randperm(len(train_y))
        start = time.perf_counter()
        loss_sum = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            opt.zero_grad()
            loss = F.cross_entropy(net(train_x[idx]), train_y[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        epoch_seconds.append(time.perf_counter() - start)
        print(f"torch epoch {epoch}: train loss {loss_sum / len(order):.4f}, {epoch_seconds[-1]:.1f}s", file=sys.stderr)

    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_y), 1000):
            correct += (net(test_x[i : i + 1000]).argmax(1) == test_y[i : i + 1000]).sum().item()
    accuracy = correct / len(test_y)
    print(f"torch test accuracy {accuracy:.4f}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "framework": "torch", "init": args.init, "seed": args.seed, "threads": torch.get_num_threads(),
            "epoch_seconds": epoch_seconds, "test_accuracy": accuracy, "torch_version": torch.__version__,
        }))


if __name__ == "__main__":
    main()
