"""Provenance: identities, what a checkpoint may be resumed from, reads that check what they read, damaged artifacts
named in one line, artifacts with the umask's mode, and errors a retry cannot fix."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from genssl import failures
from genssl.atomic import atomic_file, check_writable
from genssl.cli import main
from genssl.config import read_config, seed_override_error, validate_config, weight_path_errors
from genssl.errors import ConfigError, GensslError, StoreError
from genssl.provenance import code_version, differences, digest, store_identity
from genssl.store import ImageStore
from genssl.train.checkpoint import read_trainer_state
from genssl.train.trainer import pretrain, stale_reason
from tests.helpers import tiny_pretrain_config


def test_differences_name_the_dotted_keys_that_differ():
    recorded = {"config": {"methods": {"diet": {"lr": 0.01, "wd": 0.05}}}, "inputs": {"data": "a"}, "code": "x"}
    expected = {"config": {"methods": {"diet": {"lr": 0.02, "wd": 0.05}}}, "inputs": {"data": "b"}, "code": "x"}
    assert differences(recorded, expected) == ["config.methods.diet.lr", "inputs.data"]
    assert differences(recorded, recorded) == []
    assert differences({"a": 1}, {"b": 1}) == ["a", "b"]
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1}) != digest({"a": 2, "b": 2})


def test_the_code_version_is_the_package_version_and_a_digest_of_its_sources():
    version, sources = code_version().split("+")
    assert version == "0.1.0" and len(sources) == 12 and int(sources, 16) >= 0
    command = [sys.executable, "-c", "from genssl.provenance import code_version; print(code_version())"]
    assert subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip() == code_version()


IDENTITY = {"method": "simclr", "seed": 0, "config": {"pretrain": {"epochs": 3}}, "inputs": {"data": "d"}, "code": "c"}


@pytest.mark.parametrize(
    ("previous", "policy", "reason"),
    [
        ({"epoch": 1, "identity": IDENTITY}, "auto", None),
        ({"epoch": 1, "identity": IDENTITY}, "never", "pretrain.resume is 'never'"),
        (
            {"epoch": 3, "identity": IDENTITY},
            "auto",
            "it holds the finished run (3 of 3 epochs); a rerun trains afresh",
        ),
        ({"epoch": 1, "identity": {**IDENTITY, "inputs": {"data": "e"}}}, "auto", "it was made with other inputs.data"),
        ({"epoch": 1, "identity": {**IDENTITY, "code": "b"}}, "auto", "it was made with other code"),
        ({"epoch": 1, "config_digest": "x"}, "auto", "it records no identity of its inputs (made by an older genssl)"),
    ],
)
def test_a_checkpoint_is_resumed_only_for_an_unfinished_run_of_the_same_identity(previous, policy, reason):
    assert stale_reason(previous, IDENTITY, 3, policy) == reason


def test_a_run_on_changed_data_sets_its_checkpoint_aside_and_retrains(digits16, tmp_path, caplog):
    """Reproduction 1: the data changed under an existing checkpoint (here: the store of another split seed)."""
    from genssl.data.prepare import prepare_dataset

    config = tiny_pretrain_config(epochs=1)
    other = tmp_path / "other"
    prepare_dataset(validate_config({**config, "seed": 1}), "digits", other)
    pretrain(config, "simclr", "standard", digits16, tmp_path / "run")
    stale = (tmp_path / "run" / "encoder.safetensors").read_bytes()
    pretrain(config, "simclr", "standard", other, tmp_path / "run")
    pretrain(config, "simclr", "standard", other, tmp_path / "clean")
    retrained = (tmp_path / "run" / "encoder.safetensors").read_bytes()
    assert retrained != stale and retrained == (tmp_path / "clean" / "encoder.safetensors").read_bytes()
    reason = (tmp_path / "run" / "checkpoint.set-aside" / "reason.txt").read_text()
    assert reason == "it was made with other inputs.data\n"
    assert "set aside checkpoint" in caplog.text and "inputs.data; the run starts afresh" in caplog.text
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["provenance"]["code"] == code_version()
    assert run["provenance"]["inputs"] == {"data": store_identity(other), "variants": None}


def test_a_finished_run_rerun_trains_afresh_with_the_same_bytes(digits16, tmp_path):
    """`snakemake --forcerun pretrain` retrains: the finished run's checkpoint is set aside."""
    config = tiny_pretrain_config(epochs=1)
    pretrain(config, "byol", "standard", digits16, tmp_path)
    first = (tmp_path / "encoder.safetensors").read_bytes()
    pretrain(config, "byol", "standard", digits16, tmp_path)
    assert (tmp_path / "checkpoint.set-aside" / "reason.txt").read_text().startswith("it holds the finished run")
    assert (tmp_path / "encoder.safetensors").read_bytes() == first


def test_a_truncated_checkpoint_is_one_line_naming_it_and_the_fix(digits16, tmp_path, capsys):
    """Reproduction 4."""
    config = tiny_pretrain_config(epochs=2, checkpoint_every=1)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["pretrain", "--config", str(tmp_path / "config.yaml"), "--method", "simclr", "--data", str(digits16)]
    pretrain(tiny_pretrain_config(epochs=1), "simclr", "standard", digits16, tmp_path / "run")
    state = tmp_path / "run" / "checkpoint" / "state.json"  # an unfinished run of 2 epochs: resumable
    saved = json.loads(state.read_text())
    saved["trainer"]["identity"]["config"] = json.loads(json.dumps(_slice(config)))
    state.write_text(json.dumps(saved))
    model = tmp_path / "run" / "checkpoint" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"genssl: error: checkpoint {tmp_path / 'run' / 'checkpoint'}: cannot be read")
    assert err.endswith(f"delete {tmp_path / 'run' / 'checkpoint'} and rerun (rule pretrain): the run starts afresh")
    with pytest.raises(GensslError):
        main(["--debug", *args, "--out", str(tmp_path / "run")])


def _slice(config):
    from genssl.stages import config_slice, pretrain_keys

    return config_slice(config, pretrain_keys(config, "simclr", "standard"))


def test_a_damaged_store_file_stops_the_read_naming_it(digits16, tmp_path):
    """Reproduction 3, the read: flipped bytes in a shard are found when the shard is first used."""
    import shutil

    copy = tmp_path / "digits"
    shutil.copytree(digits16, copy)
    shard = copy / "images-00000.u8"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    store = ImageStore(copy)
    assert store.split("train").size > 0  # the other files are intact
    with pytest.raises(StoreError, match=rf"{shard}: damaged \(sha256 .*\); check the store with `genssl store verify"):
        store.get_batch([0])
    with pytest.raises(StoreError, match=r"images-00000\.u8: damaged"):
        pretrain(tiny_pretrain_config(epochs=1), "simclr", "standard", copy, tmp_path / "run")
    assert not (tmp_path / "run" / "encoder.safetensors").exists()


def test_artifacts_get_the_umasks_mode(digits16, tmp_path):
    old = os.umask(0o027)
    try:
        pretrain(tiny_pretrain_config(epochs=1), "diet", "standard", digits16, tmp_path)
        with atomic_file(tmp_path / "x.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    for path in [tmp_path / "encoder.safetensors", tmp_path / "x.txt", *(tmp_path / "checkpoint").iterdir()]:
        assert oct(path.stat().st_mode & 0o777) == oct(0o640), path


def test_an_unwritable_output_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user the file mode does not stop (root)")
        with pytest.raises(GensslError, match=r"locked/run/encoder.safetensors: cannot write it \(Permission denied: "):
            check_writable(locked / "run" / "encoder.safetensors")
    finally:
        locked.chmod(0o700)


def test_an_unwritable_output_is_refused_as_root_too(tmp_path):
    """A file where a directory must go cannot be written by anyone."""
    (tmp_path / "file").write_text("")
    with pytest.raises(GensslError, match=r"file/run/out.npz: cannot write it \(Not a directory: .*file\)"):
        check_writable(tmp_path / "file" / "run" / "out.npz")
    check_writable(tmp_path / "new" / "run" / "out.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing created


def test_a_retry_of_an_error_a_retry_cannot_fix_ends_at_once(tmp_path, capsys):
    record = tmp_path / "job.log.failed"
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {d: {source: digits, image_size: -3}}\n")
    args = ["--failure-record", str(record), "config", "--config", str(bad)]
    assert main(["--attempt", "1", *args]) == 2
    assert failures.previous(record)["status"] == 2
    first = capsys.readouterr().err
    bad.write_text("datasets: {d: {source: digits}}\n")  # the attempt of the same job does not look again
    assert main(["--attempt", "2", *args]) == 2
    retried = capsys.readouterr().err
    assert "attempt 1 of this job ended with this error, which a retry cannot fix: not retried" in retried
    assert "image_size: -3 is less than the minimum of 8" in first and "image_size: -3" in retried
    assert main(["--attempt", "1", *args]) == 0 and failures.previous(record) is None  # a new run looks again


def test_seed_alone_on_the_command_line_is_refused_with_the_spelling_for_both():
    problem = seed_override_error({"seed": 1})
    assert "--config seed=1 'seeds=[1]'" in problem and "`seeds`" in problem
    assert seed_override_error({"seed": 1, "seeds": [1]}) is None and seed_override_error({"seeds": [3]}) is None


def test_yaml_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("seed: 0\ndatasets:\n  digits: {source: digits\nmethods: {}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:4:8: not valid YAML"):
        read_config(bad)


def test_missing_local_weights_are_named(tmp_path):
    config = validate_config(
        {
            "datasets": {"d": {"source": "digits"}},
            "pretrain": {"dataset": "d"},
            "generators": {"sd": {"backend": "sd_unclip", "path": str(tmp_path / "none")}},
            "augmentations": {"standard": {}, "gen": {"generator": "sd"}},
        }
    )
    assert weight_path_errors(config, ["sd"]) == [
        f"generators.sd.path: {tmp_path / 'none'} does not exist (the local directory of its diffusers weights)"
    ]
    (tmp_path / "none").mkdir()
    assert weight_path_errors(config, ["sd"]) == []


def test_the_trainer_state_of_a_damaged_checkpoint_is_named(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text("{")
    with pytest.raises(GensslError, match=r"state.json is damaged .*; delete .* and rerun"):
        read_trainer_state(tmp_path / "checkpoint")


def test_store_files_are_the_manifest_then_every_file_it_lists(digits16, tmp_path):
    from genssl.stages import store_files

    files = store_files(str(digits16))
    assert files[0] == f"{digits16}/manifest.json" and f"{digits16}/images-00000.u8" in files
    assert len(files) == 1 + len(json.loads((digits16 / "manifest.json").read_text())["files"])
    assert store_files(str(tmp_path / "absent")) == [f"{tmp_path / 'absent'}/manifest.json"]
    assert np.all([os.path.isfile(f) for f in files])
