"""pyrnn.plots.save_lines: a PNG where asked, its absolute path printed; without matplotlib, a line
saying so and no file."""

import builtins
import os

import pytest

from pyrnn.plots import save_lines


def test_save_lines_writes_a_png_and_says_where(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    path = save_lines(os.path.join("out", "curves.png"), {"a": [3, 2, 1], "b": ([0, 2], [1, 1])}, title="t", logy=True)
    assert path == str(tmp_path / "out" / "curves.png")
    assert (tmp_path / "out" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out == f"wrote {path}\n"


def test_save_lines_without_matplotlib_says_so(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert save_lines(str(tmp_path / "x.png"), {"a": [1, 2]}) is None
    assert capsys.readouterr().out == "matplotlib is not installed: x.png not written (pip install matplotlib)\n"
    assert not (tmp_path / "x.png").exists()
