"""pyrnn._malloc: with ``PYRNN_MALLOC_TUNING=1`` glibc's malloc keeps freed arrays for reuse after
``import pyrnn`` (fewer page faults per training step); by default glibc's settings are left alone."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="the tuning applies to glibc only")

# Two 8 MB arrays alive at once, freed, made again: a layer's output and its gradient, step after step.
# Prints whether the tuning is on and the minor page faults of the last 20 rounds.
CODE = """
import resource
import numpy as np
import pyrnn, pyrnn._malloc
def step():
    a = np.empty(2 << 20, np.float32); a.fill(1.0)
    b = np.empty(2 << 20, np.float32); b.fill(2.0)
    return float(a[0] + b[-1])
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(pyrnn._malloc.tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(**env):
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()
    return out[0] == "True", int(out[1])


def test_freed_arrays_are_reused_without_new_page_faults():
    tuned, faults = _run(PYRNN_MALLOC_TUNING="1")
    default, default_faults = _run(PYRNN_MALLOC_TUNING="")  # the default: untouched
    assert tuned and not default
    # 20 rounds x 16 MB (4,096 pages): with glibc's defaults every round faults again (~1,000 a round here)
    assert default_faults > 20 * 400, default_faults
    assert faults < default_faults / 20, (faults, default_faults)
