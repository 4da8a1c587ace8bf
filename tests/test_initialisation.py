"""A method's initialisation as an encoder (stage ``init_encoder``): weight for weight the backbone its runs start
from, written through the CLI like a trained run's encoder."""

import json

import pytest
import torch

from genssl.cli import main
from genssl.config import to_json
from genssl.models.encoder_file import load_encoder
from genssl.models.initialisation import initial_backbone
from genssl.stages import config_slice, init_keys
from genssl.train.backend import setup_backend
from genssl.train.plan import StepPlan
from genssl.train.trainer import _build_training
from tests.helpers import tiny_pretrain_config


@pytest.mark.parametrize("method", ["simclr", "byol", "sdiet"])
def test_the_initialisation_is_the_backbone_a_run_starts_from(method, tmp_path):
    config = tiny_pretrain_config()
    plan = StepPlan.resolve(config, method, 1293)
    training = _build_training(config, f"{method}/standard", 3, plan, setup_backend(config["pretrain"]), tmp_path, 16)
    started = training.method.backbone.state_dict()
    backbone, _ = initial_backbone(config["pretrain"]["backbone"], method, 3)
    assert started.keys() == backbone.state_dict().keys()
    assert all(torch.equal(started[k], v) for k, v in backbone.state_dict().items())
    other, _ = initial_backbone(config["pretrain"]["backbone"], method, 4)
    assert not torch.equal(other.state_dict()["stem.0.weight"], started["stem.0.weight"])


def test_the_command_writes_an_encoder_and_its_record_from_the_backbones_slice(tmp_path, capsys):
    config = tiny_pretrain_config()
    text = to_json(config_slice(config, init_keys()))
    out = tmp_path / "init-seed2"
    assert main(["init-encoder", "--config-json", text, "--method", "byol", "--seed", "2", "--out", str(out)]) == 0
    backbone, backbone_config, dim = load_encoder(out / "encoder.safetensors")
    expected, expected_dim = initial_backbone(config["pretrain"]["backbone"], "byol", 2)
    assert backbone_config == config["pretrain"]["backbone"] and dim == expected_dim
    assert all(torch.equal(backbone.state_dict()[k], v) for k, v in expected.state_dict().items())
    record = json.loads((out / "init.json").read_text())
    assert record["method"] == "byol" and record["seed"] == 2 and record["config"] == json.loads(text)
    first = (out / "encoder.safetensors").read_bytes()
    assert main(["init-encoder", "--config-json", text, "--method", "byol", "--seed", "2", "--out", str(out)]) == 0
    assert (out / "encoder.safetensors").read_bytes() == first

    assert main(["init-encoder", "--config-json", text, "--method", "moco", "--out", str(tmp_path / "x")]) == 2
    assert "--method: unknown method 'moco'; known: barlowtwins, byol" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
