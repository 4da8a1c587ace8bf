import ast
import os
import subprocess
import sys

import yaml

from genssl.cli import main


def _write_config(path, datasets):
    path.write_text(yaml.safe_dump({"seed": 0, "datasets": datasets}))
    return str(path)


def test_prepare_verify_and_info(tmp_path, capsys):
    config = _write_config(tmp_path / "c.yaml", {"digits": {"source": "digits", "image_size": 8}})
    out = tmp_path / "store"
    assert main(["prepare", "--config", config, "--dataset", "digits", "--out", str(out)]) == 0
    assert main(["store", "verify", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: ok"
    assert main(["store", "info", str(out)]) == 0
    info = yaml.safe_load(capsys.readouterr().out)
    assert info["n"] == 1797 and info["shape"] == [8, 8, 3] and info["encoding"] == "raw"

    shard = out / "images-00000.u8"
    shard.write_bytes(b"\x01" + shard.read_bytes()[1:])
    assert main(["store", "verify", str(out)]) == 1
    report = capsys.readouterr().out
    assert "1 problem(s)" in report and "images-00000.u8: sha256" in report


def test_bad_config_fails_before_any_work(tmp_path, capsys):
    config = _write_config(tmp_path / "c.yaml", {"digits": {"source": "digits", "image_size": -3}})
    out = tmp_path / "store"
    assert main(["prepare", "--config", config, "--dataset", "digits", "--out", str(out)]) == 2
    assert "datasets.digits.image_size: -3 is less than the minimum of 8" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_dataset_lists_the_configured_ones(tmp_path, capsys):
    config = _write_config(tmp_path / "c.yaml", {"digits": {"source": "digits"}, "shapes": {"source": "shapes"}})
    assert main(["prepare", "--config", config, "--dataset", "mnist", "--out", str(tmp_path / "o")]) == 2
    assert "datasets.mnist: no such dataset in the configuration; configured: digits, shapes" in capsys.readouterr().err


def test_missing_root_is_an_input_error(tmp_path, capsys):
    config = _write_config(tmp_path / "c.yaml", {"c": {"source": "stl10", "root": str(tmp_path / "none")}})
    assert main(["prepare", "--config", config, "--dataset", "c", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("genssl: error: dataset 'c' (source stl10)") and "stl10_binary.tar.gz" in err


def test_console_script_is_installed(env_with_venv, tmp_path):
    config = _write_config(tmp_path / "c.yaml", {"digits": {"source": "digits"}})
    result = subprocess.run(
        ["genssl", "config", "--config", config], capture_output=True, text=True, env=env_with_venv, check=True
    )
    assert yaml.safe_load(result.stdout)["datasets"]["digits"]["resize"] == "center_crop"


def test_evaluation_commands_name_their_bad_input(tmp_path, capsys):
    config = _write_config(tmp_path / "c.yaml", {"digits": {"source": "digits"}})
    assert main(["features", "--config", config, "--downstream", "digits"]) == 2
    assert "give --method (and --run) or --generator" in capsys.readouterr().err
    assert main(["features", "--config", config, "--downstream", "shapes", "--method", "simclr"]) == 2
    assert "datasets.shapes: no such dataset" in capsys.readouterr().err
    out = tmp_path / "sim"
    assert main(["similarity", "--config", config, "--features", "a=x.npz", "b", "--out", str(out)]) == 2
    assert "--features takes NAME=PATH items, got 'b'" in capsys.readouterr().err
    assert main(["similarity", "--config", config, "--features", "a=x.npz", "b=y.npz", "--out", str(out)]) == 1
    assert "x.npz: no feature file" in capsys.readouterr().err
    assert main(["probe", "--config", config, "--features", str(tmp_path / "f.npz"), "--out", str(out)]) == 1
    assert "f.npz: no feature file" in capsys.readouterr().err
    assert not out.exists()


def test_features_and_probe_take_several_datasets_of_an_encoder(digits16, tmp_path, capsys):
    """`genssl features` and `genssl probe` take several datasets of an encoder in one process; their lists pair up
    item by item."""
    import json
    from pathlib import Path

    from genssl.config import to_json, validate_config
    from genssl.data.prepare import prepare_dataset

    config = validate_config(
        {
            "datasets": {
                "digits": {"source": "digits", "image_size": 16},
                "shapes": {"source": "shapes", "image_size": 16, "n_per_class": 10},
            },
            "pretrain": {"dataset": "digits", "backbone": {"width": 4, "blocks": [1]}},
            "probe": {"C": [1.0], "knn_k": [5]},
        }
    )
    prepare_dataset(config, "shapes", tmp_path / "shapes")
    text = to_json(config)
    encoder = tmp_path / "init"
    assert main(["init-encoder", "--config-json", text, "--method", "simclr", "--out", str(encoder)]) == 0
    features = [str(tmp_path / f"{d}.npz") for d in ("digits", "shapes")]
    common = ["--config-json", text, "--method", "simclr", "--run", "init", "--downstream", "digits", "shapes"]
    stores = ["--data", str(digits16), str(tmp_path / "shapes")]
    encoder_file = str(encoder / "encoder.safetensors")
    assert main(["features", *common, "--encoder", encoder_file, *stores, "--out", *features]) == 0
    results = [str(tmp_path / f"{d}.json") for d in ("digits", "shapes")]
    assert main(["probe", "--config-json", text, "--features", *features, "--out", *results]) == 0
    assert [json.loads(Path(r).read_text())["dataset"] for r in results] == ["digits", "shapes"]

    assert main(["probe", "--config-json", text, "--features", *features, "--out", results[0]]) == 2
    assert "--out: give one result file per item (2), got 1" in capsys.readouterr().err


def test_threads_limit_the_blas_pools_that_load_later():
    """``--threads 1`` holds to one thread the OpenBLAS that scikit-learn's first import loads (SciPy's own, which
    threadpoolctl cannot reach before it exists), as well as torch's pool; a fresh process, so nothing is loaded
    before the command starts."""
    script = (
        "import threadpoolctl\n"
        "from genssl.cli import thread_limit\n"
        "with thread_limit(1):\n"
        "    import sklearn.linear_model, torch\n"
        "    pools = {p['internal_api']: p['num_threads'] for p in threadpoolctl.threadpool_info()}\n"
        "    print(torch.get_num_threads(), pools)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    torch_threads, pools = out.split(" ", 1)
    assert torch_threads == "1"
    assert "openblas" in pools and set(ast.literal_eval(pools).values()) == {1}, pools
