"""The main job, `python -m pyrnn demo`, in a reduced form: its printed metrics are finite and the plots exist."""

import math
import re
import subprocess
import sys

import pytest


def test_demo_prints_finite_metrics_and_writes_plots(tmp_path):
    r = subprocess.run([sys.executable, "-W", "error", "-m", "pyrnn", "demo", "--epochs", "4", "--verbose", "2", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    metrics = dict(re.findall(r"^(MAE|RMSE|sMAPE|MASE|skill_vs_naive|naive_MAE)\s+(\S+)$", r.stdout, re.M))
    assert set(metrics) == {"MAE", "RMSE", "sMAPE", "MASE", "skill_vs_naive", "naive_MAE"}, r.stdout
    values = {k: float(v) for k, v in metrics.items()}
    assert all(math.isfinite(v) for v in values.values()), values
    assert values["MAE"] > 0 and values["MASE"] > 0 and values["skill_vs_naive"] < 1
    assert "held-out tail 1979-2008" in r.stdout and "Epoch 4/" in r.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pytest.skip("matplotlib not installed: the demo prints metrics only")
    for name in ("demo_forecast.png", "demo_training.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        assert f"wrote {tmp_path / name}" in r.stdout, "the demo says where the plots went"
