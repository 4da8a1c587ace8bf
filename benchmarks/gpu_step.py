"""Where a pretraining step's time goes, against the engine's own bare backbone, side by side in one run.

For each shape (ResNet-18 small stem at 32 px, batch 512; ResNet-50 at 224 px, batch 256) it prints images/s of:

- ``bare``: the backbone alone, forward + backward on ready device tensors (one per view of the method), under the same
  autocast and memory layout as the trainer (plus a no-grad forward of both for momentum methods, which compute
  one by design);
- ``model``: the method's forward + backward + optimiser step on ready views;
- ``views``: the batched views alone, from a uint8 batch on the device (their random parameters drawn ahead, as the
  loader draws them);
- ``draw``: the drawing of those parameters alone, on the host (in the loader's workers in ``genssl pretrain``);
- ``train_step``: :func:`genssl.train.trainer.train_step` on a uint8 batch and its view parameters already on the
  device;
- ``pretrain``: ``genssl pretrain`` itself (store -> loader -> device prefetch -> views -> step), the last of its
  epochs on a synthetic raw store (random images), from its ``metrics.csv``; with ``--compile`` also the same with
  ``pretrain.compile: true`` (``compiled``), with ``--graph-views`` with ``pretrain.cuda_graph_views: true``
  (``graphed``; then also ``vgraph``, the views alone as a CUDA graph);
- ``peer``: a peer-style pipeline: per-image torchvision v2 transforms on the CPU in DataLoader workers, then the
  same model step.

and the ratio of each to ``bare``; on CUDA also every place where ``train_step`` makes the host wait for the device
(CUDA's sync debug mode). Then S-DIET against DIET: the step time of each (ResNet-50, 224 px, the
trainer's step with the next batch named ahead, N training images) and their ratio (target <= 1.10).

    python benchmarks/gpu_step.py [--device cuda] [--shapes r18 r50] [--methods simclr byol ...] [--out FILE]

On the CPU it runs the same table at small sizes (``--device cpu --small``).
"""

import argparse
import csv
import json
import shutil
import statistics
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genssl.augment import BatchAugment, view_specs
from genssl.config import validate_config
from genssl.data.splits import make_splits
from genssl.methods import METHODS, RunContext, build_method
from genssl.models import build_backbone
from genssl.optim import WarmupCosine
from genssl.store import StoreWriter
from genssl.train.plan import StepPlan
from genssl.train.trainer import method_optimizer, pretrain, train_step

MOMENTUM = {"byol", "mocov2plus"}
#: (backbone, image side, batch, synthetic store size) of each shape; --small divides sizes for the CPU.
SHAPES = {
    "r18": ({"name": "resnet18", "small_stem": True}, 32, 512, 50_000),
    "r50": ({"name": "resnet50", "small_stem": False}, 224, 256, 10_240),
}
HEADS = {"proj_hidden_dim": 2048, "proj_output_dim": 256}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[], None], images: int, device: torch.device, steps: int, warmup: int = 3) -> float:
    """Images/s of ``fn`` (one step of ``images`` images): the median of 3 timed rounds of ``steps`` steps."""
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(3):
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        _sync(device)
        rounds.append(images * steps / (time.perf_counter() - start))
    return statistics.median(rounds)


def study(method: str, backbone: dict[str, Any], size: int, batch: int, device: str, epochs: int = 3) -> dict:
    heads = {k: v for k, v in HEADS.items() if method != "diet"}
    if method == "mocov2plus":
        heads["queue_size"] = batch * 16
    return validate_config(
        {
            "datasets": {"synthetic": {"source": "digits", "image_size": size}},
            "pretrain": {
                "dataset": "synthetic",
                "epochs": epochs,
                "batch_size": batch,
                "warmup_epochs": 0,
                "device": device,
                "num_workers": 4 if device == "cuda" else 0,
                "backbone": backbone,
                "finite_check_every": 1000,
            },
            "methods": {method: heads},
        }
    )


def synthetic_store(path: Path, n: int, size: int) -> Path:
    """A raw store of ``n`` random ``size`` px images, all in the train split."""
    path.mkdir(parents=True)
    writer = StoreWriter(path, "raw", (size, size, 3), max_shard_bytes=1 << 30)
    rng = np.random.default_rng(0)
    chunk = 1024
    for start in range(0, n, chunk):
        for image in rng.integers(0, 256, size=(min(chunk, n - start), size, size, 3), dtype=np.uint8):
            writer.add(image.tobytes())
    labels = np.arange(n) % 10
    splits, _ = make_splits(labels, None, 0.0, 0.0, 0, "synthetic")
    writer.close(labels, [str(c) for c in range(10)], splits, {"source": "synthetic"})
    return path


class Setup:
    """One method set up as the trainer sets it up, on ``device``, with ready batches."""

    def __init__(self, config: dict, method_name: str, device: torch.device, num_train: int) -> None:
        pcfg, mcfg = config["pretrain"], config["methods"][method_name]
        self.device, self.batch = device, pcfg["batch_size"]
        size = config["datasets"]["synthetic"]["image_size"]
        plan = StepPlan.resolve(config, method_name, num_train)
        self.total_steps = 100_000  # a schedule longer than any timing (S-DIET's catch-up indexes it by step)
        schedule = WarmupCosine(self.total_steps, 0)
        self.out = Path(tempfile.mkdtemp(prefix="gpu-step-"))  # S-DIET's head files
        context = RunContext(num_train, self.total_steps, lambda t: plan.lr * schedule.factor(t - 1), self.out, 0)
        torch.manual_seed(0)
        backbone, dim = build_backbone(pcfg["backbone"])
        self.method = build_method(method_name, backbone, dim, mcfg, context).to(device).train()
        self.channels_last = pcfg["channels_last"]  # as the trainer's backend sets it, on any device
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.optimizer = method_optimizer(self.method, mcfg, plan.lr)
        schedule.set_step(self.optimizer, 0)
        self.dtype = torch.bfloat16 if device.type == "cuda" else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.augment = BatchAugment(view_specs(mcfg["views"]), out_size=size)
        self.images = torch.randint(0, 256, (self.batch, size, size, 3), dtype=torch.uint8).to(device)
        # the views' random parameters, drawn once ahead as the loader draws them (in its workers)
        self.graphed: BatchAugment | None = None
        self.draw_rng = torch.Generator().manual_seed(1)
        self.view_params = self.augment.draw(self.batch, size, size, self.draw_rng).to(device)
        self.method.open_external(None, 0)
        self.num_train, self.step = num_train, 0
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        views = self.augment.apply(self.images, self.view_params)
        self.views = [v.contiguous(memory_format=layout) for v in views]

    def _rows(self, k: int) -> torch.Tensor:
        per_pass = self.num_train // self.batch
        order = np.random.default_rng([1, k // per_pass]).permutation(self.num_train)
        return torch.from_numpy(order[(k % per_pass) * self.batch : (k % per_pass + 1) * self.batch].astype(np.int64))

    def _indices(self) -> torch.Tensor:
        host = self._rows(self.step)
        self.method.prefetch_external(self._rows(self.step + 1))
        return host if self.method.host_indices else host.to(self.device, non_blocking=True)

    def train_step(self) -> None:
        train_step(
            self.method,
            self.method,
            self.optimizer,
            self.scaler,
            self.augment,
            self.images,
            self._indices(),
            self.view_params,
            self.step,
            self.total_steps,
            self.dtype,
            self.channels_last,
        )
        self.step += 1

    def model_step(self) -> None:
        """Forward + backward + optimiser step (+ momentum update) on the ready views."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            loss = self.method(self.views, self._indices())
        self.optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        self.optimizer.step()
        self.method.update_external(self.step + 1, 1.0, skipped=False)
        self.method.after_step(self.step + 1, self.total_steps)
        self.step += 1

    def views_only(self) -> None:
        self.augment.apply(self.images, self.view_params)

    def views_graphed(self) -> None:
        """The views as a CUDA graph (BatchAugment(cuda_graph=True); captured on the first call)."""
        if self.graphed is None:
            self.graphed = BatchAugment(self.augment.views, out_size=self.augment.out_size, cuda_graph=True)
        self.graphed.apply(self.images, self.view_params)

    def draw_only(self) -> None:
        """The views' random parameters of one batch, on the host (the loader's share of the views)."""
        _, height, width, _ = self.images.shape
        self.augment.draw(self.batch, height, width, self.draw_rng)

    def close(self) -> None:
        self.method.close_external(False)
        shutil.rmtree(self.out, ignore_errors=True)


def bare_step(
    backbone: dict, size: int, batch: int, device: torch.device, momentum: bool, views: int, channels_last: bool
) -> Callable[[], None]:
    torch.manual_seed(0)
    net, _ = build_backbone(backbone)
    net = net.to(device).train()
    if channels_last:
        net.to(memory_format=torch.channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    ready = [torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=layout) for _ in range(views)]
    dtype = torch.bfloat16 if device.type == "cuda" else None

    def step() -> None:
        net.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = sum(net(v).float().sum() for v in ready)
            if momentum:
                with torch.no_grad():
                    for v in ready:
                        net(v)
        loss.backward()

    return step


def peer_rate(setup: Setup, size: int, workers: int, steps: int) -> float:
    """Images/s of per-image torchvision v2 transforms in DataLoader workers feeding the same model step."""
    from torchvision.transforms import v2

    view = v2.Compose(
        [
            v2.RandomResizedCrop(size, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            v2.RandomGrayscale(0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    pool = torch.randint(0, 256, (4096, 3, size, size), dtype=torch.uint8)

    class Views(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 10**9

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            image = pool[i % len(pool)]
            return view(image), view(image)

    loader = torch.utils.data.DataLoader(
        Views(), batch_size=setup.batch, num_workers=workers, pin_memory=setup.device.type == "cuda",
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )  # fmt: skip
    batches = iter(loader)

    def step() -> None:
        v1, v2_ = next(batches)
        layout = torch.channels_last if setup.channels_last else torch.contiguous_format
        setup.views = [v.to(setup.device, non_blocking=True).contiguous(memory_format=layout) for v in (v1, v2_)]
        setup.model_step()

    return rate(step, setup.batch, setup.device, steps)


def sync_sites(fn: Callable[[], None], device: torch.device, calls: int = 3) -> list[str]:
    """Where ``calls`` calls of ``fn`` make the host wait for the device: CUDA's sync debug mode warns at each
    synchronising operation; one entry per distinct site (the innermost frame of genssl or this script, else the
    innermost one) with its count per call. Empty on the CPU."""
    if device.type != "cuda":
        return []
    sites: Counter[str] = Counter()

    def record(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        if "synchroniz" not in str(message):
            return
        stack = [f for f in traceback.extract_stack()[:-1] if f.filename != warnings.__file__]
        ours = [f for f in stack if "genssl" in f.filename or f.filename.endswith("gpu_step.py")]
        frame = (ours or stack)[-1]
        sites[f"{Path(frame.filename).name}:{frame.lineno} ({frame.line})"] += 1

    torch.cuda.synchronize(device)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(calls):
                fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [f"{site} x{count / calls:g}" for site, count in sites.most_common()]


def pretrain_rate(config: dict, method: str, store: Path, out: Path) -> float:
    """images/s of the last epoch of ``genssl pretrain`` (its metrics.csv)."""
    pretrain(config, method, "standard", store, out)
    with open(out / "metrics.csv") as f:
        return float(list(csv.DictReader(f))[-1]["images_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS))
    parser.add_argument("--pretrain-methods", nargs="+", default=None, help="methods timed through genssl pretrain")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=15, help="DataLoader workers of the peer-style pipeline")
    parser.add_argument("--compile", nargs="*", default=[], help="methods also timed with pretrain.compile: true")
    parser.add_argument(
        "--graph-views", nargs="*", default=[], help="methods also timed with pretrain.cuda_graph_views: true"
    )
    parser.add_argument("--sdiet-n", type=int, default=100_000, help="N of the S-DIET vs DIET comparison (0: skip)")
    parser.add_argument("--small", action="store_true", help="CPU sizes: 1/4 image side, batch 32, 512 images")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    print(f"device {results['device']}, torch {torch.__version__}")
    root = Path(tempfile.mkdtemp(prefix="gpu-step-"))

    def save() -> None:
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    for shape in args.shapes:
        backbone, size, batch, n = SHAPES[shape]
        if args.small:
            backbone = {"name": "small_resnet", "width": 8, "blocks": [1, 1]}
            size, batch, n = max(8, size // 4), 32, 512
        store = synthetic_store(root / f"store-{shape}", n, size)
        table: dict[str, dict[str, float]] = {}
        results[shape] = {"backbone": backbone, "size": size, "batch": batch, "n": n, "methods": table}
        print(f"\n{shape}: {backbone['name']} at {size} px, batch {batch}, {n} images (images/s; ratio to bare)")
        print(f"{'method':<12}{'bare':>9}{'model':>9}{'views':>9}{'vgraph':>9}{'draw':>9}{'step':>9}{'pretrain':>10}"
              f"{'compiled':>10}{'graphed':>10}"
              f"{'peer':>9}{'step/bare':>11}{'pretrain/bare':>15}")  # fmt: skip
        for method in args.methods:
            row: dict[str, float] = {}
            config = study(method, backbone, size, batch, args.device, args.epochs)
            try:
                row["bare"] = rate(
                    bare_step(
                        backbone,
                        size,
                        batch,
                        device,
                        method in MOMENTUM,
                        METHODS[method].n_views,
                        config["pretrain"]["channels_last"],
                    ),
                    batch,
                    device,
                    args.steps,
                )
                setup = Setup(config, method, device, n)
                row["model"] = rate(setup.model_step, batch, device, args.steps)
                row["views"] = rate(setup.views_only, batch, device, args.steps)
                if method in args.graph_views:
                    row["vgraph"] = rate(setup.views_graphed, batch, device, args.steps)
                row["draw"] = rate(setup.draw_only, batch, torch.device("cpu"), args.steps)
                row["train_step"] = rate(setup.train_step, batch, device, args.steps)
                row["syncs"] = sync_sites(setup.train_step, device)
                if method == "simclr" and args.workers >= 0:
                    row["peer"] = peer_rate(setup, size, args.workers, args.steps)
                setup.close()
                if args.pretrain_methods is None or method in args.pretrain_methods:
                    row["pretrain"] = pretrain_rate(config, method, store, root / f"{shape}-{method}")
                    if method in args.compile:
                        compiled = study(method, backbone, size, batch, args.device, args.epochs)
                        compiled["pretrain"]["compile"] = True
                        row["compiled"] = pretrain_rate(compiled, method, store, root / f"{shape}-{method}-c")
                    if method in args.graph_views:
                        graphed = study(method, backbone, size, batch, args.device, args.epochs)
                        graphed["pretrain"]["cuda_graph_views"] = True
                        row["graphed"] = pretrain_rate(graphed, method, store, root / f"{shape}-{method}-g")
            except Exception as err:  # a benchmark row that fails is reported, the others still run
                row["error"] = f"{type(err).__name__}: {err}"  # type: ignore[assignment]
            table[method] = row
            narrow = ("bare", "model", "views", "vgraph", "draw", "train_step")
            cells = [f"{row[k]:>9.0f}" if k in row else f"{'—':>9}" for k in narrow]
            cells += [f"{row[k]:>10.0f}" if k in row else f"{'—':>10}" for k in ("pretrain", "compiled", "graphed")]
            cells.append(f"{row['peer']:>9.0f}" if "peer" in row else f"{'—':>9}")
            ratios = [row[k] / row["bare"] if k in row and "bare" in row else float("nan") for k in ("train_step",)]
            ratios.append(row["pretrain"] / row["bare"] if "pretrain" in row and "bare" in row else float("nan"))
            print(
                f"{method:<12}{''.join(cells)}{ratios[0]:>11.2f}{ratios[1]:>15.2f}"
                + (f"  {row['error']}" if "error" in row else "")
            )
            for site in row.get("syncs", []):
                print(f"{'':<12}host waits for the device per train_step at {site}")
            save()

    if args.sdiet_n:
        backbone, size, batch = SHAPES["r50"][:3]
        n = args.sdiet_n
        if args.small:
            backbone, size, batch, n = {"name": "small_resnet", "width": 8, "blocks": [1, 1]}, 16, 32, 2048
        times = {}
        for method in ("diet", "sdiet"):
            setup = Setup(study(method, backbone, size, batch, args.device), method, device, n)
            times[method] = batch / rate(setup.train_step, batch, device, args.steps)
            for site in sync_sites(setup.train_step, device):
                print(f"{method}: host waits for the device per step at {site}")
            setup.close()
        ratio = times["sdiet"] / times["diet"]
        results["sdiet_vs_diet"] = {"n": n, "batch": batch, "size": size, **times, "ratio": ratio}
        steps = f"{1000 * times['sdiet']:.1f} ms vs {1000 * times['diet']:.1f} ms"
        print(f"\nS-DIET vs DIET ({backbone['name']}, {size} px, batch {batch}, N = {n}): {steps}, ratio {ratio:.2f}")
        save()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
