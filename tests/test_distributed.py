"""DDP on the CPU with gloo: 2 processes x B/2 train like 1 process x B."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from genssl.config import validate_config
from genssl.data.prepare import prepare_dataset
from genssl.distributed import CPUSyncBatchNorm, convert_sync_batchnorm
from genssl.methods import build_method
from genssl.models import build_backbone

BATCH = 8


def _simclr() -> nn.Module:
    torch.manual_seed(0)
    config = validate_config(
        {
            "datasets": {"d": {"source": "digits"}},
            "pretrain": {"dataset": "d"},
            "methods": {"simclr": {"proj_hidden_dim": 16, "proj_output_dim": 8}},
        }
    )
    backbone, dim = build_backbone({"name": "small_resnet", "width": 4, "blocks": [1, 1]})
    return build_method("simclr", backbone, dim, config["methods"]["simclr"])


def _views() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(BATCH, 3, 12, 12, generator=g), torch.randn(BATCH, 3, 12, 12, generator=g)]


def _step(model: nn.Module, views: list[torch.Tensor], method: nn.Module) -> dict[str, torch.Tensor]:
    loss = model(views, torch.arange(views[0].shape[0]))
    loss.backward()
    result = {"loss": loss.detach().reshape(1)}
    result.update({f"grad/{n}": p.grad for n, p in method.named_parameters() if p.grad is not None})
    return result


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    method = convert_sync_batchnorm(_simclr(), "cpu")
    assert any(isinstance(m, CPUSyncBatchNorm) for m in method.modules())
    model = nn.parallel.DistributedDataParallel(method, broadcast_buffers=False)
    local = BATCH // world
    views = [v[rank * local : (rank + 1) * local] for v in _views()]
    result = _step(model, views, method)
    dist.all_reduce(result["loss"])
    result["loss"] /= world
    for name, buffer in method.named_buffers():
        if name.endswith("running_mean"):
            result[f"buffer/{name}"] = buffer
    if rank == 0:
        save_file({k: v.contiguous() for k, v in result.items()}, out)
    dist.destroy_process_group()


def test_two_processes_with_half_batches_match_one_process(tmp_path):
    single = _simclr()
    expected = _step(single, _views(), single)
    expected.update({f"buffer/{n}": b for n, b in single.named_buffers() if n.endswith("running_mean")})

    out = tmp_path / "ddp.safetensors"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    got = load_file(str(out))

    assert set(got) == set(expected)
    assert torch.allclose(got["loss"], expected["loss"], atol=1e-5, rtol=0)
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-5, rtol=1e-4), name
    # The comparison is not vacuous: without synchronised BN the half batches normalise differently.
    assert any(expected[n].abs().max() > 1e-3 for n in expected if n.startswith("grad/"))


def test_no_environment_means_one_process(monkeypatch):
    from genssl.distributed import init_from_env

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env("cpu") == (0, 1, 0)
    assert os.environ.get("WORLD_SIZE") is None


@pytest.mark.slow
def test_torchrun_pretraining_with_two_processes(tmp_path, env_with_venv):
    """The real launch path: torchrun, gloo, SyncBN, a global batch split over 2 processes, gradients accumulated
    over 2 forward passes (DDP synchronises in the second only), rank 0 writes."""
    config = {
        "datasets": {"digits": {"source": "digits", "image_size": 8}},
        "pretrain": {
            "dataset": "digits",
            "epochs": 1,
            "batch_size": 64,
            "sync_bn": True,
            "backbone": {"name": "small_resnet", "width": 4, "blocks": [1]},
        },
        "methods": {"simclr": {"proj_hidden_dim": 16, "proj_output_dim": 8, "accumulate_steps": 2}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    prepare_dataset(validate_config(config), "digits", tmp_path / "data")
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "genssl",
            "pretrain",
            "--config",
            str(tmp_path / "config.yaml"),
            "--method",
            "simclr",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "run"),
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env_with_venv,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["world_size"] == 2 and run["batch_size"] == 64
    assert run["accumulate_steps"] == 2 and run["steps"] == 1293 // 128
    assert "batch 64 (x2 processes) x 2 accumulated" in result.stderr
    assert (tmp_path / "run" / "encoder.safetensors").stat().st_size > 0
