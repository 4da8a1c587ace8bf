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
