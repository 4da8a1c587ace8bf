"""The pretraining engine end to end on digits: learning, resume byte identity, bad input and safety."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, safe_open

from genssl.augment import params as params_module
from genssl.cli import main
from genssl.config import load_config
from genssl.errors import ConfigError
from genssl.methods import METHODS
from genssl.methods.simclr import SimCLR
from genssl.models import build_backbone
from genssl.seeding import derive_seed
from genssl.store import ImageStore
from genssl.train.checkpoint import read_trainer_state
from genssl.train.trainer import NonFiniteLossError, pretrain
from tests.helpers import HEADS, REPO, tiny_pretrain_config


def _features(backbone, store, indices):
    images = torch.from_numpy(store.get_batch(indices)).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    backbone.eval()
    with torch.no_grad():
        return torch.nn.functional.normalize(backbone((images - mean) / std), dim=1)


def knn_accuracy(backbone, store, k=20, t=0.1):
    """Cosine kNN (temperature-weighted votes) of the test split against the train split."""
    train, test = store.split("train"), store.split("test")
    f_train, f_test = _features(backbone, store, train), _features(backbone, store, test)
    y_train = torch.from_numpy(store.labels[train])
    sims, neighbours = (f_test @ f_train.T).topk(k, dim=1)
    votes = torch.zeros(len(test), len(store.classes)).scatter_add_(1, y_train[neighbours], (sims / t).exp())
    return float((votes.argmax(1).numpy() == store.labels[test]).mean())


def _encoder(path, config):
    backbone, _ = build_backbone(config["pretrain"]["backbone"])
    backbone.load_state_dict(load_file(str(path)))
    return backbone


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_lowers_its_loss_and_beats_a_random_encoder(method, digits16, tmp_path):
    """With the default study's settings of the method (config/config.yaml says why each was chosen: crops of at
    least 30 % of a 16 px digit, no flips, DIET's, S-DIET's and BYOL's learning rates, ...), on a smaller backbone.
    MoCo v2+ takes the test's smaller heads: with the study's 512/128 its epoch-mean InfoNCE over a queue whose keys
    get harder as it learns stays flat in 20 epochs on this backbone (5.20 -> 5.27, under chance, ln 257 = 5.55).
    DIET takes the study's backbone: its 1,293-way instance classifier on the test backbone's 16 features moves
    its kNN a few points either side of the init's, with the bits of the run (73.3 % at init; 20 / 30 epochs: 77.2
    / 71.0 channels-first, 74.7 / 73.8 channels-last), where on the study's 64 it gains 5-8 points (83.3 -> 88.3 /
    91.6)."""
    study_config = load_config(REPO / "config" / "config.yaml")
    backbone = {"backbone": study_config["pretrain"]["backbone"]} if method == "diet" else {}
    config = tiny_pretrain_config(epochs=20, **backbone)
    study = study_config["methods"][method]
    config["methods"][method] = {**study, **HEADS[method]} if method == "mocov2plus" else study
    run = pretrain(config, method, "standard", digits16, tmp_path)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 21))
    losses = [float(r["loss"]) for r in rows]
    assert np.mean(losses[-3:]) < losses[0], losses
    assert run["final"]["loss"] == pytest.approx(losses[-1])

    store = ImageStore(digits16)
    torch.manual_seed(derive_seed(0, "init", method))
    random_encoder, _ = build_backbone(config["pretrain"]["backbone"])
    trained = knn_accuracy(_encoder(tmp_path / "encoder.safetensors", config), store)
    untrained = knn_accuracy(random_encoder, store)
    assert trained > untrained + 0.02, (trained, untrained)


def test_outputs_and_run_record(digits16, tmp_path):
    config = tiny_pretrain_config(epochs=2)
    pretrain(config, "simclr", "standard", digits16, tmp_path)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["method"] == "simclr" and run["augmentation"] == "standard" and run["seed"] == 0
    assert run["versions"]["torch"] == torch.__version__ and run["world_size"] == 1
    assert run["batch_size"] == 64 and run["steps"] == 2 * (len(ImageStore(digits16).split("train")) // 64)
    assert run["config"]["methods"]["simclr"]["lr"] == 0.4 and set(run["config"]["methods"]) == {"simclr"}
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header == "epoch,loss,lr,seconds,images_per_second"
    with safe_open(str(tmp_path / "encoder.safetensors"), "pt") as f:
        info = json.loads(f.metadata()["genssl.encoder"])
        assert info["backbone"]["width"] == 8 and info["feature_dim"] == 16
        assert set(f.keys()) == set(build_backbone(config["pretrain"]["backbone"])[0].state_dict())
    assert read_trainer_state(tmp_path / "checkpoint")["epoch"] == 2
    # A finished run is not trained again: rerunning resumes after the last epoch and rewrites the same encoder.
    before = (tmp_path / "encoder.safetensors").read_bytes()
    pretrain(config, "simclr", "standard", digits16, tmp_path)
    assert (tmp_path / "encoder.safetensors").read_bytes() == before


def test_a_checkpoint_of_another_configuration_is_not_resumed(digits16, tmp_path):
    pretrain(tiny_pretrain_config(epochs=1), "simclr", "standard", digits16, tmp_path / "a")
    other = tiny_pretrain_config(epochs=1)
    other["methods"]["simclr"]["temperature"] = 0.5
    pretrain(other, "simclr", "standard", digits16, tmp_path / "a")
    pretrain(other, "simclr", "standard", digits16, tmp_path / "b")
    assert (tmp_path / "a" / "encoder.safetensors").read_bytes() == (
        tmp_path / "b" / "encoder.safetensors"
    ).read_bytes()


def _run_cli(config_file, out, env):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genssl",
            "pretrain",
            "--config",
            str(config_file),
            "--method",
            "byol",
            "--data",
            str(out.parent.parent / "data"),
            "--out",
            str(out),
            "--threads",
            "1",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_killed_and_resumed_run_ends_byte_identical(digits16, tmp_path, env_with_venv):
    """SIGKILL mid-epoch, restart: encoder.safetensors equals an uninterrupted run's, byte for byte."""
    (tmp_path / "data").symlink_to(digits16)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(tiny_pretrain_config(epochs=4)))
    uninterrupted = tmp_path / "runs" / "a"
    assert _run_cli(config_file, uninterrupted, env_with_venv).wait() == 0

    resumed = tmp_path / "runs" / "b"
    process = _run_cli(config_file, resumed, env_with_venv)
    deadline = time.monotonic() + 120
    while (read_trainer_state(resumed / "checkpoint") or {}).get("epoch", 0) < 2:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (resumed / "encoder.safetensors").exists()
    assert read_trainer_state(resumed / "checkpoint")["epoch"] == 2

    restarted = _run_cli(config_file, resumed, env_with_venv)
    _, err = restarted.communicate()
    assert restarted.returncode == 0, err
    assert "resuming byol/standard from the checkpoint after epoch 2" in err
    assert (resumed / "encoder.safetensors").read_bytes() == (uninterrupted / "encoder.safetensors").read_bytes()
    losses = [
        [row.split(",")[1] for row in (d / "metrics.csv").read_text().splitlines()] for d in (uninterrupted, resumed)
    ]
    assert losses[0] == losses[1]


def test_a_nan_loss_stops_the_run_naming_epoch_and_step_and_keeps_the_checkpoint(digits16, tmp_path, monkeypatch):
    class NaNAfter(SimCLR):
        """SimCLR whose loss turns NaN at its 25th forward pass (step 5 of epoch 2 with 20 steps per epoch)."""

        calls = 0

        def forward(self, views, indices):
            loss = super().forward(views, indices)
            NaNAfter.calls += 1
            return loss * float("nan") if NaNAfter.calls >= 25 else loss

    monkeypatch.setitem(METHODS, "simclr", NaNAfter)
    with pytest.raises(NonFiniteLossError) as info:
        pretrain(tiny_pretrain_config(epochs=3), "simclr", "standard", digits16, tmp_path)
    message = str(info.value)
    assert "the loss is nan at epoch 2, step 5 of 20 (global step 25)" in message
    assert str(tmp_path / "checkpoint") in message
    state = read_trainer_state(tmp_path / "checkpoint")
    assert state["epoch"] == 1 and np.isfinite(state["metrics"][0]["loss"])
    assert not (tmp_path / "encoder.safetensors").exists()


def test_bad_input_is_refused_before_training(digits16, tmp_path, capsys):
    config = tiny_pretrain_config()
    config["pretrain"]["batch_size"] = 5000
    with pytest.raises(ConfigError, match=r"pretrain.batch_size: batch of 5000 is larger than the 1293 training"):
        pretrain(config, "simclr", "standard", digits16, tmp_path)
    config = tiny_pretrain_config()
    del config["methods"]["byol"]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    for method, augmentation, problem in [
        ("byol", "standard", "methods.byol: not configured; configured methods: barlowtwins, diet, mocov2plus"),
        ("simclr", "generative", "augmentations.generative: not configured; configured: standard"),
    ]:
        args = ["--config", str(config_file), "--method", method, "--augmentation", augmentation]
        assert main(["pretrain", *args, "--data", str(digits16), "--out", str(tmp_path / "run")]) == 2
        assert problem in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_gradient_clipping_bounds_the_global_norm():
    from genssl.augment import BatchAugment, view_specs
    from genssl.methods import build_method
    from genssl.optim import build_optimizer
    from genssl.train.trainer import train_step

    config = tiny_pretrain_config()
    mcfg = config["methods"]["simclr"]
    images = torch.randint(0, 256, (16, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    norms = {}
    for clip in (0.0, 0.05):
        torch.manual_seed(0)
        method = build_method("simclr", *build_backbone(config["pretrain"]["backbone"]), mcfg)
        optimizer = build_optimizer(method.param_groups()[0][0], "sgd", lr=0.1, weight_decay=0.0)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        augment = BatchAugment(view_specs(mcfg["views"]), out_size=16)
        params = augment.draw(16, 16, 16, torch.Generator().manual_seed(1))
        train_step(method, method, optimizer, scaler, augment, images, torch.arange(16), params, 0, 10, grad_clip=clip)
        norms[clip] = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in method.parameters()])).item()
    assert norms[0.0] > 0.05 and norms[0.05] == pytest.approx(0.05, rel=1e-4)


def test_loader_workers_do_not_change_the_result(digits16, tmp_path):
    """Reading the store in DataLoader worker processes gives the same batches, so the same encoder."""
    pretrain(tiny_pretrain_config(epochs=1), "simclr", "standard", digits16, tmp_path / "in_process")
    pretrain(tiny_pretrain_config(epochs=1, num_workers=2), "simclr", "standard", digits16, tmp_path / "workers")
    encoders = [(tmp_path / d / "encoder.safetensors").read_bytes() for d in ("in_process", "workers")]
    assert encoders[0] == encoders[1]


def test_loader_workers_draw_the_view_parameters_off_the_training_process(digits16, tmp_path, monkeypatch):
    """The random parameters of the views are drawn where the batches are read: in the workers when there are any
    (forked, so their calls land in their own copy of ``calls``), else in the training process."""
    calls = []
    draw = params_module.draw_view_params
    monkeypatch.setattr(params_module, "draw_view_params", lambda *a: (calls.append(os.getpid()), draw(*a))[1])
    run = pretrain(tiny_pretrain_config(epochs=1, num_workers=2), "simclr", "standard", digits16, tmp_path / "w")
    assert calls == []
    pretrain(tiny_pretrain_config(epochs=1), "simclr", "standard", digits16, tmp_path / "in_process")
    assert calls == [os.getpid()] * (2 * run["steps"])  # two views per batch, each drawn once


def test_a_replicate_seed_changes_the_runs_own_draws_only(digits16, tmp_path):
    config = tiny_pretrain_config(epochs=1)
    first = pretrain(config, "simclr", "standard", digits16, tmp_path / "seed0")
    replicate = pretrain(config, "simclr", "standard", digits16, tmp_path / "seed1", seed=1)
    assert (first["seed"], first["config"]["seed"]) == (0, 0)
    assert (replicate["seed"], replicate["config"]["seed"]) == (1, 0)
    encoders = [load_file(str(tmp_path / name / "encoder.safetensors")) for name in ("seed0", "seed1")]
    assert any(not torch.equal(encoders[0][k], encoders[1][k]) for k in encoders[0])
    explicit = pretrain(config, "simclr", "standard", digits16, tmp_path / "explicit", seed=0)
    assert (tmp_path / "explicit" / "encoder.safetensors").read_bytes() == (
        tmp_path / "seed0" / "encoder.safetensors"
    ).read_bytes()
    assert explicit["final"]["peak_memory_kind"] == "cpu_rss" and explicit["final"]["peak_memory_mib"] > 50


class _ScaleReads(torch.amp.GradScaler):
    """A disabled loss scaler that counts the reads of its scale (under fp16 on CUDA, each waits for the device)."""

    def __init__(self) -> None:
        super().__init__("cuda", enabled=False)
        self.reads = 0

    def get_scale(self) -> float:
        self.reads += 1
        return super().get_scale()


@pytest.mark.parametrize(("method_name", "reads"), [("simclr", 0), ("diet", 0), ("sdiet", 2)])
def test_the_loss_scale_is_read_only_for_a_method_with_an_external_update(method_name, reads, tmp_path):
    from genssl.methods import RunContext, build_method
    from genssl.optim import build_optimizer
    from genssl.train.trainer import optimizer_step

    config = tiny_pretrain_config()
    context = RunContext(num_samples=16, total_steps=10, lr=lambda t: 0.1, out_dir=tmp_path, seed=0)
    backbone, dim = build_backbone(config["pretrain"]["backbone"])
    method = build_method(method_name, backbone, dim, config["methods"][method_name], context)
    assert method.updates_external == (method_name == "sdiet")
    optimizer = build_optimizer(method.param_groups()[0][0], "sgd", lr=0.1, weight_decay=0.0)
    scaler = _ScaleReads()
    method.open_external(None, 0)
    method([torch.rand(4, 3, 16, 16) for _ in range(method.n_views)], torch.arange(4)).backward()
    optimizer_step(method, optimizer, scaler, 0, 10)
    method.close_external(completed=False)
    assert scaler.reads == reads
