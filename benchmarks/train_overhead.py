"""Engine overhead: images/s of the full pretraining step vs the bare backbone compute, same batch, one run.

Full step: genssl.train.trainer.train_step on a uint8 batch (both views' batched augmentations, backbone and
heads forward, loss, backward, optimiser step, momentum update). Bare: the backbone alone, forward + backward
on two ready float tensors of B images (one per view, as the methods run it) -- plus a no-grad forward of both
for the methods with a momentum target, which computes one by design. The ratio full / bare measures what the
engine, the augmentations, the heads and the optimiser cost on top of the backbone; the target is >= 0.85 on the
CPU. Both run in the memory layout of ``pretrain.channels_last`` (the trainer's, on any device), or in each of
``--layouts`` side by side (channels-last is what makes oneDNN's convolutions fast on the CPU).

    python benchmarks/train_overhead.py [--methods simclr byol] [--batch 128] [--size 32] [--steps 5]
        [--layouts channels_first channels_last] [--threads 1]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from genssl.allocator import keep_freed_memory
from genssl.augment import BatchAugment, view_specs
from genssl.config import validate_config
from genssl.methods import METHODS, RunContext, build_method
from genssl.models import build_backbone
from genssl.optim import WarmupCosine, build_optimizer, scaled_lr
from genssl.train.trainer import train_step

MOMENTUM_METHODS = {"byol", "mocov2plus"}


def _interleaved_rates(full, bare, batch: int, steps: int, rounds: int = 5) -> tuple[float, float]:
    """Median images/s of ``full`` and ``bare`` over ``rounds`` alternating rounds of ``steps`` steps each, so
    that both see the same machine conditions."""
    for _ in range(3):
        full()
        bare()
    rates: dict[str, list[float]] = {"full": [], "bare": []}
    for _ in range(rounds):
        for name, fn in (("full", full), ("bare", bare)):
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            rates[name].append(batch * steps / (time.perf_counter() - start))
    return statistics.median(rates["full"]), statistics.median(rates["bare"])


LAYOUTS = {"channels_first": torch.contiguous_format, "channels_last": torch.channels_last}


def measure(name: str, config: dict, batch: int, size: int, steps: int, layout_name: str) -> tuple[float, float]:
    """(full step images/s, bare backbone images/s) of method ``name`` in memory layout ``layout_name``, one
    source image per sample."""
    images = torch.randint(
        0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    indices = torch.arange(batch)
    if name not in config["methods"]:
        raise SystemExit(
            f"method {name!r} is not in the config's `methods`; configured: {', '.join(config['methods'])}"
        )
    mcfg = dict(config["methods"][name])
    if name == "mocov2plus":
        mcfg["queue_size"] = batch * max(1, mcfg["queue_size"] // batch)
    layout = LAYOUTS[layout_name]
    channels_last = layout == torch.channels_last
    lr = scaled_lr(mcfg["lr"], batch)
    heads = tempfile.TemporaryDirectory(prefix="train-overhead-")  # S-DIET's head files
    context = RunContext(batch, 1000, lambda t: lr, Path(heads.name), 0)
    torch.manual_seed(0)
    backbone, dim = build_backbone(config["pretrain"]["backbone"])
    method = build_method(name, backbone, dim, mcfg, context).train().to(memory_format=layout)
    method.open_external(None, 0)
    optimizer = build_optimizer(method.param_groups()[0][0], mcfg["optimizer"], lr, mcfg["weight_decay"])
    WarmupCosine(1000, 0).set_step(optimizer, 0)
    augment = BatchAugment(view_specs(mcfg["views"]), out_size=size)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    rng = torch.Generator().manual_seed(1)

    def full() -> None:
        params = augment.draw(batch, size, size, rng)  # in the step: the CPU default reads in the training process
        train_step(method, method, optimizer, scaler, augment, images, indices, params, 0, 1000, None, channels_last)

    bare_net, _ = build_backbone(config["pretrain"]["backbone"])
    bare_net.train().to(memory_format=layout)
    ready = [torch.randn(batch, 3, size, size).contiguous(memory_format=layout) for _ in range(2)]

    def bare() -> None:
        bare_net.zero_grad(set_to_none=True)
        sum(bare_net(v).sum() for v in ready).backward()
        if name in MOMENTUM_METHODS:
            with torch.no_grad():
                for v in ready:
                    bare_net(v)

    try:
        return _interleaved_rates(full, bare, batch, steps)
    finally:
        method.close_external(False)
        heads.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS))
    parser.add_argument("--config", default="config/config.yaml", help="study config (backbone and heads)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="steps per round (5 alternating rounds)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--layouts", nargs="+", choices=sorted(LAYOUTS), help="default: the config's")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `genssl pretrain` does
    with open(args.config) as f:
        config = validate_config(yaml.safe_load(f))
    layouts = args.layouts or ["channels_last" if config["pretrain"]["channels_last"] else "channels_first"]
    print(
        f"batch {args.batch} images at {args.size} px, 2 views, 5 alternating rounds of {args.steps} steps, "
        f"{torch.get_num_threads()} threads, backbone {config['pretrain']['backbone']}"
    )
    print(f"{'method':<12} {'layout':<15} {'full img/s':>11} {'bare img/s':>11} {'ratio':>7}")
    for name in args.methods:
        for layout in layouts:
            full_rate, bare_rate = measure(name, config, args.batch, args.size, args.steps, layout)
            print(f"{name:<12} {layout:<15} {full_rate:>11.0f} {bare_rate:>11.0f} {full_rate / bare_rate:>7.2f}")


if __name__ == "__main__":
    main()
