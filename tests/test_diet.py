"""DIET and S-DIET: the multistep AdamW catch-up, the disk-backed head against an in-memory reference, the head
store's write ordering, resume byte identity with the writer in flight, and bad input."""

import itertools
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from genssl.config import validate_config
from genssl.errors import ConfigError, GensslError
from genssl.methods import RunContext, build_method
from genssl.methods.diet import diet_loss
from genssl.methods.head_store import ARRAYS, LAST_STEP, HeadStore, create_head
from genssl.models import build_backbone
from genssl.optim import WarmupCosine
from genssl.optim.multistep_adamw import RowAdamW, RowState
from genssl.train.checkpoint import read_trainer_state
from tests.helpers import tiny_pretrain_config

BETAS = (0.9, 0.999)


def _schedule(kind: str, total: int, lr: float) -> np.ndarray:
    if kind == "constant":
        return np.full(total, lr)
    schedule = WarmupCosine(total, total // 5, warmup_start=0.01, min_factor=0.0)
    return np.array([lr * schedule.factor(t) for t in range(total)])


def _torch_adamw_zero_grad_steps(theta, m, v, last, target, lrs, eps, weight_decay):
    """torch.optim.AdamW applied step by step (steps last+1 .. target, zero gradient) to one row."""
    p = nn.Parameter(theta.clone())
    optimizer = torch.optim.AdamW([p], lr=1.0, betas=BETAS, eps=eps, weight_decay=weight_decay)
    p.grad = torch.zeros_like(p)
    optimizer.step()  # creates the state, which is then overwritten
    state = optimizer.state[p]
    state["exp_avg"].copy_(m)
    state["exp_avg_sq"].copy_(v)
    state["step"].fill_(float(last))
    p.data.copy_(theta)
    for t in range(last + 1, target + 1):
        optimizer.param_groups[0]["lr"] = float(lrs[t - 1])
        p.grad = torch.zeros_like(p)
        optimizer.step()
    return p.data, state["exp_avg"], state["exp_avg_sq"]


def _rows(n: int, m: int, seed: int) -> RowState:
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, m, generator=g, dtype=torch.float64)
    exp_avg = torch.randn(n, m, generator=g, dtype=torch.float64) * 1e-3
    # sqrt(v) in [1e-4, 1e-3]: the scale of per-row gradients of a batch cross-entropy
    exp_avg_sq = (torch.rand(n, m, generator=g, dtype=torch.float64) * 9e-4 + 1e-4) ** 2
    return RowState(theta, exp_avg, exp_avg_sq)


def _overshoot_bound(sqrt_v: torch.Tensor, s: int, target: int, lrs: np.ndarray, eps: float, wd: float):
    """The docstring's bound for one row: the |update|-weighted mean of delta_j over its missed steps."""
    beta1, beta2 = BETAS
    weights, deltas = [], []
    for j in range(1, target - s + 1):
        i = s + j
        decay = math.prod(1 - lrs[q - 1] * wd for q in range(i + 1, target + 1))
        exact = beta2 ** (j / 2) * sqrt_v + eps * math.sqrt(1 - beta2**i)
        approx = beta2 ** (j / 2) * sqrt_v + eps * beta2 ** ((j - 1) / 2) * math.sqrt(1 - beta2 ** (s + 1))
        weights.append(lrs[i - 1] / (1 - beta1**i) * math.sqrt(1 - beta2**i) * beta1**j * decay / approx)
        deltas.append((exact - approx) / approx)
    w = torch.stack(weights)
    return (w * torch.stack(deltas)).sum(0) / w.sum(0)


@pytest.mark.parametrize("schedule", ["constant", "warmup_cosine"])
@pytest.mark.parametrize("eps", [0.0, 1e-8])
def test_catch_up_equals_step_by_step_adamw_with_zero_gradients(schedule, eps):
    total, wd = 400, 0.05
    lrs = _schedule(schedule, total, 0.01)
    adamw = RowAdamW(lrs, BETAS, eps, wd)
    rows = _rows(5, 7, seed=1)
    last = np.array([0, 1, 37, 180, 399])
    target = 400
    got = adamw.catch_up(rows, last, target)
    for r, s in enumerate(last):
        theta, m, v = _torch_adamw_zero_grad_steps(*(x[r] for x in rows), int(s), target, lrs, eps, wd)
        torch.testing.assert_close(got.exp_avg[r], m, rtol=1e-12, atol=0)
        torch.testing.assert_close(got.exp_avg_sq[r], v, rtol=1e-12, atol=0)
        if s == target:
            assert torch.equal(got.weight[r], rows.weight[r])
            continue
        decayed = rows.weight[r] * math.prod(1 - lrs[t - 1] * wd for t in range(s + 1, target + 1))
        adam_got, adam_expected = decayed - got.weight[r], decayed - theta  # the m / sqrt(v) part, G r
        overshoot = (adam_got - adam_expected) / adam_expected
        if eps == 0:
            assert float(((got.weight[r] - theta).abs() / theta.abs()).max()) < 1e-10
            assert float(overshoot.abs().max()) < 1e-10
        else:
            # The approximate denominators are never larger: an overshoot, within the docstring's bound.
            bound = _overshoot_bound(rows.exp_avg_sq[r].sqrt(), int(s), target, lrs, eps, wd)
            assert float(overshoot.min()) > -1e-10
            assert bool((overshoot <= bound * (1 + 1e-6) + 1e-10).all()), float((overshoot - bound).max())
            assert float(overshoot.max()) < 1e-3


def test_a_row_never_updated_only_decays():
    lrs = _schedule("warmup_cosine", 50, 0.1)
    adamw = RowAdamW(lrs, BETAS, 1e-8, 0.1)
    theta = torch.randn(3, 4, dtype=torch.float64)
    zeros = torch.zeros_like(theta)
    got = adamw.catch_up(RowState(theta, zeros, zeros), np.zeros(3, dtype=np.int64), 50)
    torch.testing.assert_close(got.weight, theta * float(np.prod(1 - lrs * 0.1)), rtol=1e-13, atol=0)
    assert not got.exp_avg.any() and not got.exp_avg_sq.any()


def test_a_row_step_is_torch_adamw():
    lrs = _schedule("warmup_cosine", 20, 0.01)
    adamw = RowAdamW(lrs, BETAS, 1e-8, 0.05)
    rows = _rows(4, 6, seed=2)
    grad = torch.randn(4, 6, dtype=torch.float64) * 1e-3
    got = adamw.step(rows, grad, 9)
    p = nn.Parameter(rows.weight.clone())
    optimizer = torch.optim.AdamW([p], lr=lrs[8], betas=BETAS, eps=1e-8, weight_decay=0.05)
    p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.state[p]["exp_avg"].copy_(rows.exp_avg)
    optimizer.state[p]["exp_avg_sq"].copy_(rows.exp_avg_sq)
    optimizer.state[p]["step"].fill_(8.0)
    p.data.copy_(rows.weight)
    p.grad = grad
    optimizer.step()
    torch.testing.assert_close(got.weight, p.data, rtol=1e-13, atol=1e-16)
    torch.testing.assert_close(got.exp_avg, optimizer.state[p]["exp_avg"], rtol=1e-13, atol=1e-19)


def test_betas_without_a_decaying_update_are_refused(tmp_path):
    config = _config({"betas": [0.99, 0.9]})
    with pytest.raises(ConfigError, match=r"methods.sdiet: betas \[0.99, 0.9\]: .* beta1 < sqrt\(beta2\)"):
        _sdiet(config, tmp_path, n=16, total=4)


# --- the method against a reference that keeps the whole head in memory --------------------------------------


def _config(overrides: dict) -> dict:
    sdiet = {"proj_hidden_dim": 16, "proj_output_dim": 8, "lr": 0.05, **overrides}
    return validate_config(
        {
            "datasets": {"d": {"source": "digits"}},
            "pretrain": {"dataset": "d", "batch_size": 4},
            "methods": {"sdiet": sdiet, "diet": {}},
        }
    )


def _sdiet(config: dict, out, n: int, total: int, name: str = "sdiet"):
    schedule = WarmupCosine(total, total // 4, warmup_start=0.1)
    lr = config["methods"][name]["lr"]
    context = RunContext(
        num_samples=n, total_steps=total, lr=lambda t: lr * schedule.factor(t - 1), out_dir=out, seed=3
    )
    torch.manual_seed(0)
    backbone, dim = build_backbone({"name": "small_resnet", "width": 4, "blocks": [1], "small_stem": True})
    return build_method(name, backbone, dim, config["methods"][name], context), context


def _batches(n: int, batch: int, steps: int) -> list[np.ndarray]:
    """Permutation batches (distinct rows), epoch after epoch, so rows recur after gaps of different lengths,
    including in consecutive steps across an epoch boundary."""
    rng = np.random.default_rng(0)
    order = np.concatenate([rng.permutation(n) for _ in range(steps * batch // n + 1)])
    return [np.sort(order[i * batch : (i + 1) * batch]) for i in range(steps)]


@pytest.mark.parametrize(("eps", "atol"), [(1e-30, 1e-6), (1e-8, 2e-6)])
def test_sdiet_steps_equal_adamw_on_the_whole_head_in_memory(tmp_path, eps, atol):
    """eps = 1e-30: the catch-up is exact (and torch's 0 / (0 + eps) = 0 for rows never updated), so only float32
    rounding differs; eps = 1e-8 adds the catch-up's stated approximation."""
    n, batch, steps = 12, 4, 14
    config = _config({"eps": eps})
    method, context = _sdiet(config, tmp_path, n, steps)
    reference = _sdiet(config, tmp_path / "unused", n, steps)[0]
    reference.load_state_dict(method.state_dict())
    method.open_external(None, 0)
    head_file = tmp_path / "head" / ARRAYS["weight"]
    initial = np.fromfile(head_file, dtype=np.float32).reshape(n, -1)
    head = nn.Parameter(torch.from_numpy(initial.copy()))
    cfg = config["methods"]["sdiet"]
    adamw = dict(betas=tuple(cfg["betas"]), eps=cfg["eps"], weight_decay=cfg["weight_decay"])
    optimizer = torch.optim.AdamW(method.parameters(), lr=1.0, **adamw)
    ref_optimizer = torch.optim.AdamW([*reference.parameters(), head], lr=1.0, **adamw)
    g = torch.Generator().manual_seed(5)
    for t, rows in enumerate(_batches(n, batch, steps), start=1):
        views = [torch.randn(batch, 3, 8, 8, generator=g)]
        indices = torch.from_numpy(rows)
        for opt in (optimizer, ref_optimizer):
            for group in opt.param_groups:
                group["lr"] = context.lr(t)
            opt.zero_grad()
        method(views, indices).backward()
        optimizer.step()
        method.update_external(t, 1.0, skipped=False)

        z = F.normalize(reference.projector(reference.backbone(views[0])), dim=1)
        logits = z @ head[indices].T / cfg["temperature"]
        F.cross_entropy(logits, torch.arange(batch)).backward()
        ref_optimizer.step()
    method.close_external(completed=True)

    got = np.fromfile(head_file, dtype=np.float32).reshape(n, -1)
    state = ref_optimizer.state[head]
    np.testing.assert_allclose(got, head.detach().numpy(), rtol=0, atol=1e-6)
    for key in ("exp_avg", "exp_avg_sq"):
        stored = np.fromfile(tmp_path / "head" / ARRAYS[key], dtype=np.float32).reshape(n, -1)
        np.testing.assert_allclose(stored, state[key].numpy(), rtol=1e-4, atol=1e-9)  # gradient-scale values
    assert (np.fromfile(tmp_path / "head" / LAST_STEP, dtype=np.int64) == steps).all()
    for (name, p), q in zip(method.named_parameters(), reference.parameters(), strict=True):
        if name != "projector.0.bias":  # a bias before BatchNorm: zero gradient, Adam steps on rounding noise
            torch.testing.assert_close(p, q, rtol=0, atol=atol, msg=name)
    assert np.abs(got - initial).max() > 1e-2  # the head moved


def _train_sdiet(out, batches: list[np.ndarray], named: dict[int, np.ndarray]) -> dict[str, bytes]:
    """S-DIET steps over ``batches``, naming the rows ``named[t]`` ahead before step ``t`` (the trainer names the next
    batch: :func:`_next`); the bytes of the head files and of the parameters."""
    config = _config({})
    method, context = _sdiet(config, out, 12, len(batches))
    method.open_external(None, 0)
    optimizer = torch.optim.AdamW(method.parameters(), lr=1.0)
    g = torch.Generator().manual_seed(5)
    for t, rows in enumerate(batches, start=1):
        if t in named:
            method.prefetch_external(torch.from_numpy(named[t]))
        for group in optimizer.param_groups:
            group["lr"] = context.lr(t)
        optimizer.zero_grad()
        method([torch.randn(len(rows), 3, 8, 8, generator=g)], torch.from_numpy(rows)).backward()
        optimizer.step()
        method.update_external(t, 1.0, skipped=False)
    method.close_external(completed=True)
    files = {name: (out / "head" / name).read_bytes() for name in [*ARRAYS.values(), LAST_STEP]}
    return files | {name: p.detach().numpy().tobytes() for name, p in method.named_parameters()}


def _next(batches: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Before each step but the last, the next batch (as the trainer names it)."""
    return {t: batches[t] for t in range(1, len(batches))}


def test_reading_the_next_batch_ahead_gives_the_same_bytes(tmp_path):
    """Rows of the next batch are read and caught up while the step computes; those the step then writes
    (consecutive batches overlap across an epoch boundary here) are read again."""
    batches = _batches(12, 4, 14)
    assert any(np.intersect1d(a, b).size for a, b in itertools.pairwise(batches))
    assert _train_sdiet(tmp_path / "ahead", batches, _next(batches)) == _train_sdiet(tmp_path / "plain", batches, {})


def test_rows_read_ahead_for_a_later_step_are_caught_up_to_the_step_they_train_at(tmp_path):
    """A read ahead catches rows up to the step after the current one. Rows named before step 2 but trained at step
    5, untouched by the steps in between, missed three more steps and are caught up again, to step 4."""
    batches = [np.array(rows) for rows in ([0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [4, 5, 8, 9], [0, 1, 2, 3])]
    named = {2: batches[4]}
    assert _train_sdiet(tmp_path / "ahead", batches, named) == _train_sdiet(tmp_path / "plain", batches, {})


def test_the_trainer_reads_sdiets_next_rows_ahead_with_the_same_result(digits16, tmp_path, monkeypatch):
    from genssl.methods.sdiet import SDIET
    from genssl.train.trainer import pretrain

    config = tiny_pretrain_config(epochs=2)
    ahead = []
    original = SDIET.prefetch_external
    monkeypatch.setattr(SDIET, "prefetch_external", lambda self, i: (ahead.append(len(i)), original(self, i)))
    pretrain(config, "sdiet", "standard", digits16, tmp_path / "ahead")
    assert len(ahead) == 2 * (1293 // 64) - 2  # every step but each epoch's last names the next batch
    monkeypatch.setattr(SDIET, "prefetch_external", lambda self, indices: None)
    pretrain(config, "sdiet", "standard", digits16, tmp_path / "plain")
    for name in ["encoder.safetensors", *(f"head/{f}" for f in [*ARRAYS.values(), LAST_STEP])]:
        assert (tmp_path / "ahead" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name


def test_a_batch_with_a_repeated_image_is_refused(tmp_path):
    method, _ = _sdiet(_config({}), tmp_path, n=8, total=4)
    method.open_external(None, 0)
    with pytest.raises(GensslError, match="the same training image twice"):
        method([torch.randn(4, 3, 8, 8)], torch.tensor([0, 3, 3, 5]))
    method.close_external(completed=False)


def test_diet_is_a_label_smoothed_cross_entropy_over_all_images(tmp_path):
    method, _ = _sdiet(_config({}), tmp_path, n=10, total=4, name="diet")
    assert method.head.weight.shape == (10, method.feature_dim) and method.head.bias is None
    views = [torch.randn(3, 3, 8, 8)]
    indices = torch.tensor([2, 7, 9])
    logits = method.head(method.backbone(views[0]))
    q = torch.full((3, 10), 0.8 / 10).scatter_add(1, indices[:, None], torch.full((3, 1), 0.2))
    expected = -(q * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(method(views, indices), expected)
    torch.testing.assert_close(diet_loss(logits, indices, 0.0), F.cross_entropy(logits, indices))


# --- the head store --------------------------------------------------------------------------------------------


def test_a_read_waits_for_the_queued_write_of_its_rows(tmp_path, monkeypatch):
    create_head(tmp_path, 100, 4, seed=0)
    store = HeadStore(tmp_path)
    slow_store = HeadStore._store
    started = threading.Event()

    def slow(self, rows, values, ready):
        started.set()
        time.sleep(0.3)
        slow_store(self, rows, values, ready)

    monkeypatch.setattr(HeadStore, "_store", slow)
    rows = np.array([3, 50, 97])
    new = np.full((3, 4), 7.0, dtype=np.float32)
    store.write(rows, new, new * 2, new * 3, step=11)
    started.wait()
    weight, exp_avg, exp_avg_sq, last = store.read(np.array([50, 60]))  # row 50 is being written
    assert (weight[0] == 7).all() and (exp_avg[0] == 14).all() and (exp_avg_sq[0] == 21).all() and last[0] == 11
    assert last[1] == 0 and not exp_avg[1].any()
    store.close()
    reopened = HeadStore(tmp_path)
    assert (reopened.read(rows)[3] == 11).all()
    reopened.close()


def test_rows_and_ranges_round_trip_through_files_that_memmap_reads(tmp_path):
    create_head(tmp_path, 50, 6, seed=1)
    rows = np.array([49, 0, 17])
    values = np.arange(18, dtype=np.float32).reshape(3, 6)
    with HeadStore(tmp_path) as store:
        store.write(rows, values, -values, values**2, step=5)
        weight, exp_avg, exp_avg_sq, last = store.read(rows)
        assert (weight == values).all() and (exp_avg == -values).all() and (exp_avg_sq == values**2).all()
        assert (last == 5).all()
        store.flush()
        block = np.ones((4, 6), dtype=np.float32)
        store.write_range(46, block, block * 2, block * 3, step=9)
        weight, exp_avg, _, last = store.read_range(44, 60)  # clipped to N = 50
        assert weight.shape == (6, 6) and (weight[2:] == 1).all() and (exp_avg[2:] == 2).all()
        assert last.tolist() == [0, 0, 9, 9, 9, 9]
    on_disk = np.memmap(tmp_path / ARRAYS["weight"], dtype=np.float32, mode="r", shape=(50, 6))
    assert (on_disk[[0, 17]] == values[[1, 2]]).all() and (on_disk[46:] == 1).all()
    last_step = np.memmap(tmp_path / LAST_STEP, dtype=np.int64, mode="r", shape=(50,))
    assert last_step[[0, 17, 30, 49]].tolist() == [5, 5, 0, 9]


def _resident_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_scattered_reads_keep_only_the_batch_rows_resident(tmp_path):
    rows, dim = 200_000, 64
    create_head(tmp_path, rows, dim, seed=0)
    rng = np.random.default_rng(0)
    with HeadStore(tmp_path) as store:
        before = _resident_file_kib()
        for _ in range(20):
            batch = np.sort(rng.choice(rows, 128, replace=False))
            weight, exp_avg, exp_avg_sq, _ = store.read(batch)
            store.write(batch, weight, exp_avg, exp_avg_sq, step=1)
        store.flush()
        grown = _resident_file_kib() - before
    # a mapping of the files would hold up to 16 pages per touched row and array (fault-around): ~100 MiB here
    assert grown < 2048, f"resident file pages grew by {grown} KiB"


def test_the_fresh_head_is_deterministic_and_chunked(tmp_path):
    create_head(tmp_path / "a", 20000, 3, seed=4)
    create_head(tmp_path / "b", 20000, 3, seed=4)
    a = (tmp_path / "a" / ARRAYS["weight"]).read_bytes()
    assert a == (tmp_path / "b" / ARRAYS["weight"]).read_bytes()
    weight = np.frombuffer(a, dtype=np.float32)
    assert np.abs(weight).max() <= 1 / math.sqrt(3) and weight.std() > 0.3
    assert not (tmp_path / "a" / ARRAYS["exp_avg"]).read_bytes().strip(b"\0")


def test_a_head_file_of_the_wrong_size_is_named(tmp_path):
    create_head(tmp_path, 10, 4, seed=0)
    with open(tmp_path / ARRAYS["exp_avg"], "r+b") as f:
        f.truncate(12)
    with pytest.raises(GensslError, match=r"exp_avg.f32: expected 160 bytes"):
        HeadStore(tmp_path)


# --- kill -9 mid-epoch with the writer in flight, restart: byte identity ---------------------------------------


def _run(config_file, data, out, env):
    command = [sys.executable, "-m", "genssl", "pretrain", "--config", str(config_file), "--method", "sdiet"]
    command += ["--data", str(data), "--out", str(out), "--threads", "1"]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def _head_bytes(run) -> dict[str, bytes]:
    return {name: (run / "head" / name).read_bytes() for name in [*ARRAYS.values(), LAST_STEP]}


@pytest.mark.slow
def test_sdiet_killed_mid_epoch_and_resumed_ends_byte_identical(tmp_path, env_with_venv):
    from genssl.data.prepare import prepare_dataset

    config = tiny_pretrain_config(epochs=4)
    data = tmp_path / "data"
    prepare_dataset(config, "digits", data)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    uninterrupted = tmp_path / "a"
    assert _run(config_file, data, uninterrupted, env_with_venv).wait() == 0

    resumed = tmp_path / "b"
    process = _run(config_file, data, resumed, env_with_venv)
    deadline = time.monotonic() + 120
    last_step = resumed / "head" / LAST_STEP
    # Past the checkpoint after epoch 2 and a few steps into epoch 3: rows written since the checkpoint.
    while (read_trainer_state(resumed / "checkpoint") or {}).get("epoch", 0) < 2 or np.fromfile(
        last_step, dtype=np.int64
    ).max() < read_trainer_state(resumed / "checkpoint")["step"] + 3:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (resumed / "encoder.safetensors").exists()
    assert _head_bytes(resumed) != {
        name: (resumed / "checkpoint" / "head" / name).read_bytes() for name in [*ARRAYS.values(), LAST_STEP]
    }

    restarted = _run(config_file, data, resumed, env_with_venv)
    _, err = restarted.communicate()
    assert restarted.returncode == 0, err
    assert "resuming sdiet/standard from the checkpoint after epoch 2" in err
    assert (resumed / "encoder.safetensors").read_bytes() == (uninterrupted / "encoder.safetensors").read_bytes()
    assert _head_bytes(resumed) == _head_bytes(uninterrupted)
    steps = read_trainer_state(uninterrupted / "checkpoint")["step"]
    assert (np.fromfile(uninterrupted / "head" / LAST_STEP, dtype=np.int64) == steps).all()


# --- DDP: 2 processes x B/2 train like 1 x B (global-batch logits, head rows shared through the files) ---------

DDP_N, DDP_BATCH, DDP_STEPS = 8, 4, 5


def _ddp_train(out, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
    from genssl.distributed import convert_sync_batchnorm

    method, context = _sdiet(_config({}), out, DDP_N, DDP_STEPS)
    if world > 1:
        method = convert_sync_batchnorm(method, "cpu")
    model = nn.parallel.DistributedDataParallel(method) if world > 1 else method
    method.open_external(None, 0)
    optimizer = torch.optim.AdamW(method.parameters(), lr=1.0, eps=1e-8, weight_decay=0.05)
    g = torch.Generator().manual_seed(7)
    local = DDP_BATCH // world
    for t, rows in enumerate(_batches(DDP_N, DDP_BATCH, DDP_STEPS), start=1):
        views = torch.randn(DDP_BATCH, 3, 8, 8, generator=g)
        part = slice(rank * local, (rank + 1) * local)
        for group in optimizer.param_groups:
            group["lr"] = context.lr(t)
        optimizer.zero_grad()
        model([views[part]], torch.from_numpy(rows[part])).backward()
        optimizer.step()
        method.update_external(t, 1.0, skipped=False)
    method.close_external(completed=True)
    return {n: p.detach().clone() for n, p in method.named_parameters()}


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    params = _ddp_train(Path(out), rank, world)
    if rank == 0:
        save_file(params, str(Path(out) / "params.safetensors"))
    dist.destroy_process_group()


def test_two_processes_with_half_batches_train_like_one(tmp_path):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    expected = _ddp_train(tmp_path / "one")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "two")), nprocs=2, join=True)
    got = load_file(str(tmp_path / "two" / "params.safetensors"))
    for name, value in expected.items():
        if name != "projector.0.bias":  # a bias before BatchNorm: zero gradient, Adam steps on rounding noise
            torch.testing.assert_close(got[name], value, rtol=0, atol=1e-5, msg=name)
    for name in [*ARRAYS.values(), LAST_STEP]:
        one = np.fromfile(tmp_path / "one" / "head" / name, dtype=np.int64 if name == LAST_STEP else np.float32)
        two = np.fromfile(tmp_path / "two" / "head" / name, dtype=np.int64 if name == LAST_STEP else np.float32)
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-6, err_msg=name)
    create_head(tmp_path / "fresh", DDP_N, 8, seed=3)
    fresh = np.fromfile(tmp_path / "fresh" / ARRAYS["weight"], dtype=np.float32)
    assert np.abs(np.fromfile(tmp_path / "two" / "head" / ARRAYS["weight"], dtype=np.float32) - fresh).max() > 1e-2
