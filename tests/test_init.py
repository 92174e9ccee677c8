"""``import pyrnn``: what it loads. SciPy (GELU's erf, the cpp backend's fallback BLAS), Numba and
tqdm load when first used, so the import costs little more than NumPy's (benchmarks/import_time.py
times it)."""

import subprocess
import sys


def test_import_pyrnn_loads_neither_scipy_nor_numba_nor_tqdm():
    code = "import sys, pyrnn; print(*sorted(m for m in ('scipy', 'numba', 'tqdm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


def test_gelu_still_imports_scipy_when_used():
    code = ("import sys, numpy as np, pyrnn\n"
            "with pyrnn.no_grad():\n"
            "    y = pyrnn.layers.GELU()(np.array([0.0, 1.0]))\n"
            "print('scipy' in sys.modules, round(float(y[1]), 6))")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "0.841345"]  # 1 * Phi(1)
