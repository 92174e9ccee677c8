"""``python -m pyrnn forecast``: the table, the plot and the errors."""

import subprocess
import sys

import numpy as np
import pytest

from pyrnn.__main__ import main
from pyrnn.timeseries.forecast_cli import read_column


@pytest.fixture
def csv_file(tmp_path):
    t = np.arange(150)
    y = 20 + 0.05 * t + 3 * np.sin(2 * np.pi * t / 12) + 0.2 * np.random.default_rng(0).standard_normal(150)
    path = tmp_path / "series.csv"
    path.write_text("month,sales\n" + "".join(f"{i},{v:.4f}\n" for i, v in enumerate(y)))
    return path, y


def test_forecast_prints_the_table_and_writes_the_plot(csv_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path, y = csv_file
    plot = tmp_path / "out.png"
    assert main(["forecast", str(path), "--column", "sales", "--horizon", "6", "--season", "12", "--members", "1",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "season length 12 (given)" in lines[0] and "150 values" in lines[0]
    assert lines[1].split() == ["step", "forecast", "lo", "80%", "hi", "80%"]
    rows = np.array([[float(v) for v in line.split()] for line in lines[2:8]])
    np.testing.assert_array_equal(rows[:, 0], np.arange(1, 7))
    assert np.all(rows[:, 2] <= rows[:, 1]) and np.all(rows[:, 1] <= rows[:, 3])
    assert np.all(np.abs(rows[:, 1] - y[-12:].mean()) < 10)
    assert plot.stat().st_size > 1000 and f"wrote {plot}" in out


def test_forecast_as_a_module_and_its_errors(csv_file, tmp_path):
    path, _ = csv_file
    r = subprocess.run([sys.executable, "-m", "pyrnn", "forecast", str(path), "--column", "price", "--horizon", "3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "--column: expected one of the header's columns ['month', 'sales'], got 'price'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pyrnn", "forecast", "--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "--horizon" in r.stdout and "--plot" in r.stdout


def test_read_column_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 3, column 'b': expected a number, got 'x'"):
        read_column(bad, "b")
    np.testing.assert_array_equal(read_column(bad, "0"), [1.0, 3.0])
    empty = tmp_path / "empty.csv"
    empty.write_text("a\n")
    with pytest.raises(ValueError, match=r"expected a header row and at least one data row"):
        read_column(empty, "a")
