"""View pipeline and LARS step before vs after the branch-free views and the foreach LARS, side by side, one run.

The reference ("before") is the implementation at commit ``REFERENCE`` (per-op gathers of the chosen samples and
per-op transfers of the parameters in the views; a Python loop of tensor ops per parameter in LARS), loaded from
git into the ``reference_impl`` package, so it is not kept as code. Printed, on ``--device``:

* views: ms per batch (all views of a method, from the config), reference vs now (eager, and with ``--compile``
  the torch.compile'd colour ops), in alternating rounds, and the largest difference of the views (0: the same
  views bit for bit);
* LARS: ms per ``step()`` of the SimCLR model (the config's backbone, and resnet18), reference vs now;
* op counts per batch of views and per LARS step: device ops counted at the dispatcher with the images or the
  parameters on the meta device, so that the host work picking the parameters does not count, views and
  allocations left out (about the kernels a CUDA run launches; a ``_foreach`` op counts once), with the
  host-to-device copies among them in brackets; with ``--compile`` the kernels inductor generated for the
  compiled colour ops; on CUDA also the kernels the profiler saw (memory copies included).

    python benchmarks/views.py [--device cpu] [--batch 256] [--size 32] [--methods simclr byol] [--rounds 5]
        [--steps 5] [--threads 0] [--compile]
"""

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from genssl.allocator import keep_freed_memory
from genssl.augment import BatchAugment, view_specs
from genssl.config import validate_config
from genssl.methods import build_method
from genssl.models import build_backbone
from genssl.optim import build_optimizer, scaled_lr

#: The commit before the branch-free views and the foreach LARS: the reference implementation.
REFERENCE = "9d52e84"
ROOT = Path(__file__).resolve().parent.parent
#: Ops that launch no kernel: allocations and metadata.
_NO_KERNEL = {"empty", "empty_like", "empty_strided", "detach", "lift_fresh", "set_", "resize_"}


def _reference_source(commit: str, path: str, directory: Path | None) -> str:
    """``src/genssl/{path}`` as at ``commit``, from git or, where there is no git history (a copied checkout), from
    ``directory/{path}`` (written beforehand with ``git show {commit}:src/genssl/{path}``)."""
    if directory is not None:
        return (directory / path).read_text()
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:src/genssl/{path}"], capture_output=True, text=True
    )
    if shown.returncode != 0:
        raise SystemExit(f"cannot read the reference src/genssl/{path} at commit {commit}: {shown.stderr.strip()}")
    return shown.stdout


def load_reference(commit: str, directory: Path | None = None) -> types.ModuleType:
    """The package ``reference_impl`` with ``ops``, ``pipeline`` (genssl.augment) and ``lars`` as at ``commit``."""
    package = types.ModuleType("reference_impl")
    package.__path__ = []
    sys.modules[package.__name__] = package
    for name, path in (("ops", "augment/ops.py"), ("pipeline", "augment/pipeline.py"), ("lars", "optim/lars.py")):
        module = types.ModuleType(f"reference_impl.{name}")
        sys.modules[module.__name__] = module
        source = _reference_source(commit, path, directory)
        source = source.replace("from genssl.augment import ops", "from reference_impl import ops")
        exec(compile(source, f"{commit}:src/genssl/{path}", "exec"), module.__dict__)
        setattr(package, name, module)
    return package


class OpCounter(TorchDispatchMode):
    """Counts the ops that touch a tensor on the meta device, and the copies onto it, leaving out views and
    allocations."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.copies = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in torch.utils._pytree.tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
        on_meta = [t.device.type == "meta" for t in tensors]
        if any(on_meta) and not func.is_view and func.__name__.split(".")[0] not in _NO_KERNEL:
            self.ops += 1
            self.copies += not all(on_meta)
        return out


def count_ops(fn: Callable[[], object]) -> OpCounter:
    """The meta-device ops of one call of ``fn``, after a first call (which may set things up)."""
    fn()
    with OpCounter() as counter:
        fn()
    return counter


def cuda_kernels(fn: Callable[[], object]) -> int:
    """The CUDA kernels and memory copies the profiler records in one call of ``fn``, after a first call."""
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for event in prof.events() if event.device_type == torch.autograd.DeviceType.CUDA)


def interleaved_ms(fns: dict[str, Callable[[], object]], rounds: int, repeat: int, device: str) -> dict[str, float]:
    """Median ms per call of each of ``fns`` over ``rounds`` alternating rounds of ``repeat`` calls."""
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            for _ in range(repeat):
                fn()
            sync()
            times[name].append(1000 * (time.perf_counter() - start) / repeat)
    return {name: statistics.median(t) for name, t in times.items()}


def _augment_call(augment: Callable, images: torch.Tensor) -> Callable[[], object]:
    """``augment(images, generator)`` with a new seed each call."""
    seeds = iter(range(10**9))
    return lambda: augment(images, torch.Generator().manual_seed(next(seeds)))


def _generated_kernels() -> int:
    from torch._inductor import metrics

    return metrics.generated_kernel_count


def views(reference: types.ModuleType, config: dict, args: argparse.Namespace) -> None:
    print(f"\nviews: batch {args.batch} images of {args.size} px (uint8, channels last) -> all views of the method")
    header = f"{'method':<9} {'reference ms':>13} {'now ms':>9} {'now/ref':>8} {'max |diff|':>11}"
    print(header + (f" {'compiled ms':>12}" if args.compile else ""))
    counts = []
    for name in args.methods:
        specs = view_specs(config["methods"][name]["views"])
        old_specs = [reference.pipeline.ViewSpec(**dataclasses.asdict(s)) for s in specs]
        augments = {
            "reference": reference.pipeline.BatchAugment(old_specs, args.size),
            "now": BatchAugment(specs, args.size),
        }
        if args.compile:
            augments["compiled"] = BatchAugment(specs, args.size, compile=True)
        images = torch.randint(0, 256, (args.batch, args.size, args.size, 3), dtype=torch.uint8).to(args.device)
        kernels_before = _generated_kernels()
        ms = interleaved_ms(
            {k: _augment_call(a, images) for k, a in augments.items()}, args.rounds, args.steps, args.device
        )
        compiled_kernels = _generated_kernels() - kernels_before
        now, then = (augments[k](images, torch.Generator()) for k in ("now", "reference"))
        diff = max(float((a - b).abs().max()) for a, b in zip(now, then, strict=True))
        line = f"{name:<9} {ms['reference']:>13.1f} {ms['now']:>9.1f} {ms['now'] / ms['reference']:>8.2f} {diff:>11.2g}"
        print(line + (f" {ms['compiled']:>12.1f}" if args.compile else ""))
        meta = images.to("meta")
        counted = {k: count_ops(_augment_call(augments[k], meta)) for k in ("reference", "now")}
        cells = [f"{c.ops} ({c.copies})" for c in counted.values()]
        if args.compile:
            cells.append(f"{compiled_kernels} colour kernels")
        if args.device == "cuda":
            cells += [str(cuda_kernels(_augment_call(a, images))) for a in augments.values()]
        counts.append((name, len(specs), cells))
    print("\nview op counts per batch: device ops (host-to-device copies)")
    columns = ["reference", "now", *(["compiled"] if args.compile else [])]
    if args.device == "cuda":
        columns += [f"CUDA kernels {k}" for k in augments]
    print(f"{'method':<9} {'views':>5} " + " ".join(f"{c:>20}" for c in columns))
    for name, n_views, cells in counts:
        print(f"{name:<9} {n_views:>5} " + " ".join(f"{c:>20}" for c in cells))


def lars(reference: types.ModuleType, config: dict, args: argparse.Namespace) -> None:
    print("\nLARS step of the SimCLR model (backbone, projector), random gradients")
    columns = f"{'reference ms':>13} {'now ms':>9} {'now/ref':>8} {'ops ref':>8} {'ops now':>8}"
    cuda_columns = f" {'kernels ref':>12} {'kernels now':>12}" if args.device == "cuda" else ""
    print(f"{'backbone':<14} {'tensors':>7} {columns}{cuda_columns}")
    mcfg = config["methods"]["simclr"]
    for backbone_cfg in (config["pretrain"]["backbone"], {"name": "resnet18", "small_stem": True}):
        optimizers = {
            device: _lars_pair(reference, backbone_cfg, mcfg, args.batch, device) for device in (args.device, "meta")
        }
        timed = optimizers[args.device]
        ms = interleaved_ms({k: o.step for k, o in timed.items()}, args.rounds, args.steps, args.device)
        ops = {k: count_ops(o.step).ops for k, o in optimizers["meta"].items()}
        tensors = sum(len(g["params"]) for g in timed["now"].param_groups)
        line = (
            f"{backbone_cfg['name']:<14} {tensors:>7} {ms['reference']:>13.2f} {ms['now']:>9.2f} "
            f"{ms['now'] / ms['reference']:>8.2f} {ops['reference']:>8} {ops['now']:>8}"
        )
        if args.device == "cuda":
            line += "".join(f" {cuda_kernels(o.step):>12}" for o in timed.values())
        print(line)


def _lars_pair(
    reference: types.ModuleType, backbone_cfg: dict, mcfg: dict, batch: int, device: str
) -> dict[str, torch.optim.Optimizer]:
    """The reference and the current LARS over a SimCLR model of ``backbone_cfg`` on ``device``, with gradients."""
    torch.manual_seed(0)
    backbone, dim = build_backbone(backbone_cfg)
    method = build_method("simclr", backbone, dim, mcfg).to(device)
    now = build_optimizer(method.param_groups()[0][0], "lars", scaled_lr(mcfg["lr"], batch), mcfg["weight_decay"])
    then = reference.lars.LARS([dict(g) for g in now.param_groups], lr=now.param_groups[0]["lr"])
    for p in method.parameters():
        p.grad = torch.empty_like(p) if device == "meta" else torch.randn_like(p)
    return {"reference": then, "now": now}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml", help="study config (views, backbone, heads)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--methods", nargs="+", default=["simclr", "byol"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=5, help="calls per round")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="also time BatchAugment(..., compile=True)")
    parser.add_argument("--reference-dir", type=Path, help="the reference's files, where there is no git history")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `genssl pretrain` does
    with open(args.config) as f:
        config = validate_config(yaml.safe_load(f))
    reference = load_reference(REFERENCE, args.reference_dir)
    print(
        f"reference: commit {REFERENCE}; {args.device}, {torch.get_num_threads()} threads; "
        f"{args.rounds} alternating rounds of {args.steps} calls"
    )
    views(reference, config, args)
    lars(reference, config, args)


if __name__ == "__main__":
    main()
