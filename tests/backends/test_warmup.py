"""Numba's first compilation is announced, and ``python -m pyrnn warmup`` compiles ahead of time
(issue 13, point 6). Each run is a child process with its own empty Numba cache."""

import subprocess
import sys

import pytest

pytest.importorskip("numba")

CODE = """
import numpy as np
from pyrnn.backends.warmup import warmup
for line in warmup("numba", ("float64",), families=("MaxPool1D",)):
    print(line)
"""


def _run(cache_dir, code=CODE, *args):
    env_code = f"import os; os.environ['NUMBA_CACHE_DIR'] = {str(cache_dir)!r}\n" + code
    return subprocess.run([sys.executable, "-W", "error", "-c", env_code, *args], capture_output=True, text=True, timeout=600)


def test_a_compiling_kernel_is_announced_once_then_the_cache_is_used(tmp_path):
    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "numba float64 MaxPool1D" in first.stdout and "warmup done" in first.stdout
    notices = [line for line in first.stderr.splitlines() if line.startswith("pyrnn: Numba is compiling")]
    assert notices and all("float64" in line and "python -m pyrnn warmup" in line for line in notices), first.stderr
    assert any("pool1d" in line.lower() for line in notices), notices
    second = _run(tmp_path)  # a new process, the same cache: loaded, not compiled, nothing said
    assert second.returncode == 0, second.stderr
    assert "Numba is compiling" not in second.stderr


def test_the_notice_can_be_silenced_with_logging(tmp_path):
    quiet = "import logging; logging.getLogger('pyrnn.numba').setLevel(logging.ERROR)\n" + CODE
    r = _run(tmp_path, quiet)
    assert r.returncode == 0, r.stderr
    assert "Numba is compiling" not in r.stderr and "warmup done" in r.stdout


def test_the_warmup_command_refuses_a_backend_that_does_not_compile():
    r = subprocess.run([sys.executable, "-m", "pyrnn", "warmup", "--backend", "cpp"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "invalid choice: 'cpp'" in r.stderr
