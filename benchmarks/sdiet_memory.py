"""S-DIET memory and speed: peak training memory vs DIET and SimCLR, memory as N grows, step time vs DIET.

Every measurement is a separate child process (``--child``) that builds one method as ``genssl pretrain`` does
(``keep_freed_memory``, the backbone, ``build_method`` with a ``RunContext`` of N training images, the trainer's
optimiser and loss scaler, the method's batched views) and runs ``genssl.train.trainer.train_step`` on random
uint8 batches whose indices are B distinct random rows of ``[0, N)``, fresh each step, so that S-DIET reads,
catches up and writes rows spread over its whole head; then ``close_external(True)`` (S-DIET's final catch-up of
all N rows, included in the memory). The steps run from the middle of a ``--total-steps`` schedule
(``open_external(None, T / 2)``), so S-DIET's rows catch up gaps of realistic length.

"Training memory" = the process's peak resident set (VmHWM: anonymous memory plus mapped file pages, S-DIET's
mapped head pages included) minus its resident set after importing torch and genssl, before the model is
built; with ``--device cuda`` also ``torch.cuda.max_memory_allocated``. Three tables, one run:

1. SimCLR, DIET and S-DIET at one N, same backbone and batch: training memory. Target: S-DIET <= 0.55 x SimCLR.
2. S-DIET (head dim m) as N grows: growth of its training memory over the smallest N. Target: below 5 % of the
   N x m x 16 bytes (head, gradient and both AdamW moments in fp32) that in-memory DIET needs for the same N.
3. Median step time of S-DIET vs DIET at N where both fit, both in one process, in alternating rounds (ABBA),
   so that machine noise hits both alike. Target: ratio <= 1.10.

    python benchmarks/sdiet_memory.py [--batch 128] [--size 32] [--backbone resnet18] [--n 50000]
        [--ns 10000 100000 1000000] [--scale-backbone small_resnet] [--imagenet-stem]
        [--time-ns 10000 100000] [--steps 3]
        [--warmup 2] [--rounds 4] [--repeats 2] [--threads 0] [--device cpu] [--workdir DIR]

Defaults take about 7 minutes on 2 CPU cores.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genssl.allocator import keep_freed_memory
from genssl.augment import BatchAugment, view_specs
from genssl.config import validate_config
from genssl.devices import autocast_dtype
from genssl.methods import Method, RunContext, build_method
from genssl.models import build_backbone
from genssl.optim import WarmupCosine, scaled_lr
from genssl.train.trainer import method_optimizer, train_step

MIB = 2**20
MEMORY_RATIO_TARGET = 0.55
GROWTH_FRACTION_TARGET = 0.05
TIME_RATIO_TARGET = 1.10


# ----------------------------------------------------------------------------------------------------- child


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM, RssAnon, RssFile)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


class Run:
    """One method set up as the trainer sets it up, with its own random batches."""

    def __init__(self, name: str, spec: dict[str, Any], out_dir: Path, device: torch.device) -> None:
        self.device = device
        self.batch, self.size, self.n = spec["batch"], spec["size"], spec["n"]
        self.total_steps = spec["total_steps"]
        self.step = spec["start_step"]
        config = validate_config(
            {"datasets": {"digits": {"source": "digits"}}, "methods": {name: spec["method_configs"].get(name, {})}}
        )
        mcfg = config["methods"][name]
        lr = scaled_lr(mcfg["lr"], self.batch)
        self.schedule = WarmupCosine(self.total_steps, self.total_steps // 10)
        context = RunContext(
            num_samples=self.n,
            total_steps=self.total_steps,
            lr=lambda t: lr * self.schedule.factor(t - 1),
            out_dir=out_dir,
            seed=0,
        )
        torch.manual_seed(0)
        backbone, feature_dim = build_backbone(spec["backbone"])
        self.method: Method = build_method(name, backbone, feature_dim, mcfg, context).to(device).train()
        self.optimizer = method_optimizer(self.method, mcfg, lr)
        self.autocast_dtype = autocast_dtype("auto", device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.augment = BatchAugment(view_specs(mcfg["views"]), out_size=self.size)
        self.method.open_external(None, self.step)  # a fresh head, start_step steps done
        self.images = torch.randint(
            0, 256, (self.batch, self.size, self.size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
        ).to(device)
        # the views' random parameters, drawn once ahead as the loader draws them (in its workers)
        self.view_params = self.augment.draw(self.batch, self.size, self.size, torch.Generator().manual_seed(2)).to(
            device
        )

    def _rows(self, k: int) -> np.ndarray:
        """The rows of step ``k``: the ``k``-th batch of a seeded permutation of [0, N) per pass (distinct rows,
        known ahead as the trainer's sampler knows them)."""
        per_pass = self.n // self.batch
        order = np.random.default_rng([1, k // per_pass]).permutation(self.n)
        return order[(k % per_pass) * self.batch : (k % per_pass + 1) * self.batch].astype(np.int64)

    def train_step(self) -> float:
        """One trainer step on the next B rows, with the next batch's rows named first as the trainer does
        (S-DIET reads them ahead); returns its wall time in seconds."""
        host = torch.from_numpy(self._rows(self.step))
        indices = host if self.method.host_indices else host.to(self.device)
        self.schedule.set_step(self.optimizer, self.step)
        start = time.perf_counter()
        self.method.prefetch_external(torch.from_numpy(self._rows(self.step + 1)))
        train_step(
            self.method,
            self.method,
            self.optimizer,
            self.scaler,
            self.augment,
            self.images,
            indices,
            self.view_params,
            self.step,
            self.total_steps,
            self.autocast_dtype,
        )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.step += 1
        return time.perf_counter() - start

    def close(self) -> float:
        """``close_external(True)`` (S-DIET: catch every row up to the last step); returns its wall time."""
        start = time.perf_counter()
        self.method.close_external(True)
        return time.perf_counter() - start


def _child_setup(spec: dict[str, Any]) -> torch.device:
    keep_freed_memory()  # as `genssl pretrain` does: freed heap memory stays in the process
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)  # as the trainer does on the CPU
    return device


def child_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak memory (and step times) of one method: setup, warm-up + timed steps, close_external(True)."""
    device = _child_setup(spec)
    if device.type == "cuda":
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats(device)
    base = {field: _status_kib(field) for field in ("VmRSS", "RssAnon", "RssFile")}
    hwm: dict[str, int] = {}
    file_samples = []
    with tempfile.TemporaryDirectory(prefix="sdiet-bench-", dir=spec["workdir"]) as tmp:
        run = Run(spec["method"], spec, Path(tmp), device)
        hwm["setup"] = _status_kib("VmHWM")
        times = []
        for _ in range(spec["warmup"] + spec["steps"]):
            times.append(run.train_step())
            file_samples.append(_status_kib("RssFile"))
        hwm["steps"] = _status_kib("VmHWM")
        close_seconds = run.close()
        hwm["close"] = _status_kib("VmHWM")
        result = {
            "method": spec["method"],
            "n": spec["n"],
            "train_kib": hwm["close"] - base["VmRSS"],
            "hwm_kib": hwm["close"],
            "setup_kib": hwm["setup"] - base["VmRSS"],
            "close_extra_kib": hwm["close"] - hwm["steps"],
            # Freed heap memory stays in the process (keep_freed_memory), so RssAnon at the end ~ its peak.
            "anon_kib": _status_kib("RssAnon") - base["RssAnon"],
            # Mapped file pages right after each step (a lower bound of their peak).
            "file_kib": max(file_samples) - base["RssFile"],
            "step_seconds": times[spec["warmup"] :],
            "close_seconds": close_seconds,
        }
        if device.type == "cuda":
            result["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
    return result


def child_timing(spec: dict[str, Any]) -> dict[str, Any]:
    """Step times of several methods in one process, in alternating rounds (ABBA) of ``steps`` steps."""
    device = _child_setup(spec)
    with tempfile.TemporaryDirectory(prefix="sdiet-bench-", dir=spec["workdir"]) as tmp:
        runs = {name: Run(name, spec, Path(tmp) / name, device) for name in spec["methods"]}
        for run in runs.values():
            for _ in range(spec["warmup"]):
                run.train_step()
        times: dict[str, list[list[float]]] = {name: [] for name in runs}
        for r in range(spec["rounds"]):
            for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
                times[name].append([runs[name].train_step() for _ in range(spec["steps"])])
        for run in runs.values():
            run.close()
    return {"n": spec["n"], "step_seconds": times}


# ---------------------------------------------------------------------------------------------------- parent


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    """Run a child process on ``spec`` and return its JSON result (the last line of its stdout)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child {spec.get('method') or spec.get('methods')} at N={spec['n']} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(common: dict[str, Any], method: str, n: int, backbone: dict[str, Any], repeats: int) -> dict[str, Any]:
    """``repeats`` memory processes of ``method``: per key the median over them, and the runs themselves."""
    runs = [
        _spawn({**common, "mode": "memory", "method": method, "n": n, "backbone": backbone}) for _ in range(repeats)
    ]
    merged: dict[str, Any] = {"runs": runs}
    for key in ("train_kib", "hwm_kib", "setup_kib", "close_extra_kib", "anon_kib", "file_kib", "close_seconds"):
        merged[key] = statistics.median(r[key] for r in runs)
    merged["step_seconds"] = statistics.median(t for r in runs for t in r["step_seconds"])
    if "cuda_peak_bytes" in runs[0]:
        merged["cuda_peak_bytes"] = statistics.median(r["cuda_peak_bytes"] for r in runs)
    return merged


def _mib(kib: float) -> float:
    return kib / 1024


def _range(result: dict[str, Any]) -> str:
    values = [_mib(r["train_kib"]) for r in result["runs"]]
    return f"{min(values):.0f}..{max(values):.0f}"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _backbone_config(name: str, width: int, small_stem: bool = True) -> dict[str, Any]:
    config: dict[str, Any] = {"name": name, "small_stem": small_stem}
    if name == "small_resnet":
        config["width"] = width
    return config


def _describe(backbone: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in backbone.items() if k != "name")
    return f"{backbone['name']} ({options})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32, help="image size in px")
    parser.add_argument("--backbone", default="resnet18", help="backbone of tables 1 and 3 (small_stem)")
    parser.add_argument(
        "--scale-backbone", default="small_resnet", help="backbone of table 2 (the N-dependence); 'same': --backbone"
    )
    parser.add_argument("--width", type=int, default=16, help="small_resnet width")
    parser.add_argument(
        "--imagenet-stem", action="store_true", help="7x7 stride-2 stem and max-pool in tables 1 and 3 (224 px)"
    )
    parser.add_argument("--head-dim", type=int, default=128, help="S-DIET head dim m (its proj_output_dim)")
    parser.add_argument("--n", type=int, default=50_000, help="N of table 1")
    parser.add_argument("--ns", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="N of table 2")
    parser.add_argument("--time-ns", type=int, nargs="+", default=[10_000, 100_000], help="N of table 3")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process (per round in table 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (per method)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per method in table 3")
    parser.add_argument("--repeats", type=int, default=2, help="processes per memory measurement (tables 1, 2)")
    parser.add_argument("--total-steps", type=int, default=10_000, help="T of the schedule (S-DIET's catch-ups)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--workdir", default=None, help="where S-DIET's head files go (default: the temp dir)")
    args = parser.parse_args()

    if args.child is not None:
        spec = json.loads(args.child)
        result = child_memory(spec) if spec["mode"] == "memory" else child_timing(spec)
        print(json.dumps(result))
        return

    started = time.perf_counter()
    main_backbone = _backbone_config(args.backbone, args.width, not args.imagenet_stem)
    scale_name = args.backbone if args.scale_backbone == "same" else args.scale_backbone
    scale_backbone = _backbone_config(scale_name, args.width)
    common = {
        "batch": args.batch,
        "size": args.size,
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "total_steps": args.total_steps,
        "start_step": args.total_steps // 2,
        "threads": args.threads,
        "device": args.device,
        "workdir": args.workdir,
        "method_configs": {"sdiet": {"proj_output_dim": args.head_dim}},
    }
    cuda = args.device.startswith("cuda")
    print(
        f"batch {args.batch} at {args.size} px on {args.device}, torch {torch.__version__}, "
        f"{args.threads or torch.get_num_threads()} threads; {args.warmup} warm-up + {args.steps} timed steps per "
        f"process; S-DIET head dim m = {args.head_dim}, other method settings at the schema defaults"
    )
    print(
        "training memory = peak RSS (VmHWM) - RSS before the model is built, median of "
        f"{args.repeats} processes (range: min..max)\n"
    )

    # Table 1 ---------------------------------------------------------------------------------------------------
    print(f"1. Peak training memory, N = {args.n:,}, backbone {_describe(main_backbone)}")
    header = f"{'method':<7} {'train MiB':>9} {'range':>11} {'x SimCLR':>8} {'anon MiB':>8} {'file MiB':>8}"
    header += f" {'setup MiB':>9} {'close +MiB':>10} {'step s':>7}" + (f" {'cuda MiB':>9}" if cuda else "")
    print(header)
    table1 = {m: _measure(common, m, args.n, main_backbone, args.repeats) for m in ("simclr", "diet", "sdiet")}
    simclr = _mib(table1["simclr"]["train_kib"])
    for name, r in table1.items():
        line = (
            f"{name:<7} {_mib(r['train_kib']):>9.0f} {_range(r):>11} {_mib(r['train_kib']) / simclr:>8.2f}"
            f" {_mib(r['anon_kib']):>8.0f} {_mib(r['file_kib']):>8.0f} {_mib(r['setup_kib']):>9.0f}"
            f" {_mib(r['close_extra_kib']):>10.0f} {r['step_seconds']:>7.2f}"
        )
        print(line + (f" {r['cuda_peak_bytes'] / MIB:>9.0f}" if cuda else ""))
    ratio = _mib(table1["sdiet"]["train_kib"]) / simclr
    print(
        f"target S-DIET <= {MEMORY_RATIO_TARGET} x SimCLR (RSS): {ratio:.2f}  {_verdict(ratio <= MEMORY_RATIO_TARGET)}"
    )
    if cuda:
        gpu = table1["sdiet"]["cuda_peak_bytes"] / table1["simclr"]["cuda_peak_bytes"]
        print(
            f"target S-DIET <= {MEMORY_RATIO_TARGET} x SimCLR (CUDA): {gpu:.2f}  {_verdict(gpu <= MEMORY_RATIO_TARGET)}"
        )
    print(
        "anon: RssAnon at the end - before (~ the anonymous peak: freed heap memory is kept); file: mapped file\n"
        "pages after a step - before (libraries' code and S-DIET's head files); setup: peak after building the\n"
        "model, optimiser and head files; close +: what close_external adds to the peak\n"
    )

    # Table 2 ---------------------------------------------------------------------------------------------------
    print(f"2. S-DIET training memory as N grows, m = {args.head_dim}, backbone {_describe(scale_backbone)}")
    if scale_backbone != main_backbone:
        print("   (a smaller backbone than table 1, to save time: the point is the dependence on N)")
    print(
        f"{'N':>10} {'train MiB':>9} {'range':>11} {'growth':>7} {'anon +':>7} {'file +':>7} {'DIET Nm16':>9}"
        f" {'5 %':>6} {'close s':>7} {'target':>7}"
    )
    table2 = [_measure(common, "sdiet", n, scale_backbone, args.repeats) for n in args.ns]
    first = table2[0]
    for n, r in zip(args.ns, table2, strict=True):
        growth = _mib(r["train_kib"] - first["train_kib"])
        diet_mib = n * args.head_dim * 16 / MIB
        allowed = GROWTH_FRACTION_TARGET * diet_mib
        verdict = "(base)" if r is first else _verdict(growth < allowed)
        print(
            f"{n:>10,} {_mib(r['train_kib']):>9.1f} {_range(r):>11} {growth:>7.1f}"
            f" {_mib(r['anon_kib'] - first['anon_kib']):>7.1f} {_mib(r['file_kib'] - first['file_kib']):>7.1f}"
            f" {diet_mib:>9.0f} {allowed:>6.1f} {r['close_seconds']:>7.1f} {verdict:>7}"
        )
    print(
        f"growth, anon +, file +: over N = {args.ns[0]:,} (MiB); DIET Nm16: the MiB in-memory DIET needs for the\n"
        "head, its gradient and moments; 5 %: the allowed growth; close s: close_external (catch-up of all N rows)\n"
    )

    # Table 3 ---------------------------------------------------------------------------------------------------
    print(
        f"3. Step time S-DIET vs DIET, backbone {_describe(main_backbone)}: one process per N, {args.rounds} "
        f"alternating rounds (ABBA) of {args.steps} steps each, after {args.warmup} warm-up steps"
    )
    print(f"{'N':>10} {'DIET s':>8} {'S-DIET s':>9} {'ratio':>6} {'per round':>24} {'target':>7}")
    for n in args.time_ns:
        r = _spawn({**common, "mode": "timing", "methods": ["diet", "sdiet"], "n": n, "backbone": main_backbone})
        diet_rounds, sdiet_rounds = r["step_seconds"]["diet"], r["step_seconds"]["sdiet"]
        diet = statistics.median(t for ts in diet_rounds for t in ts)
        sdiet = statistics.median(t for ts in sdiet_rounds for t in ts)
        per_round = " ".join(
            f"{statistics.median(s) / statistics.median(d):.2f}" for d, s in zip(diet_rounds, sdiet_rounds, strict=True)
        )
        print(
            f"{n:>10,} {diet:>8.3f} {sdiet:>9.3f} {sdiet / diet:>6.2f} {per_round:>24} "
            f"{_verdict(sdiet / diet <= TIME_RATIO_TARGET):>7}"
        )
    print("(seconds: median over all timed steps of each method; per round: ratio of the rounds' medians)")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
