import os
import sys
from pathlib import Path

import pytest


@pytest.fixture
def env_with_venv():
    """Environment whose PATH starts with this interpreter's bin/ (where `genssl` and `snakemake` live)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="session")
def digits16(tmp_path_factory):
    """The digits store at 16 px (seed 0), prepared once for the whole test run and shared by every test that
    reads digits (tests must not write into it)."""
    from genssl.config import validate_config
    from genssl.data.prepare import prepare_dataset

    path = tmp_path_factory.mktemp("data") / "digits"
    prepare_dataset(validate_config({"datasets": {"digits": {"source": "digits", "image_size": 16}}}), "digits", path)
    return path
