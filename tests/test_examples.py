"""Every script in examples/ runs, in its reduced (--quick) form, and prints its results."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_is_one_example_per_scenario():
    names = {p.stem for p in EXAMPLES}
    assert {"forecasting", "classification", "generation", "seq2seq", "long_sequences", "time_scales", "unet_segmentation"} <= names, names


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_quick(script, tmp_path):
    r = subprocess.run([sys.executable, "-W", "error", str(script), "--quick"], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip(), "an example prints what it found"
    png = tmp_path / f"{script.stem}.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert f"matplotlib is not installed: {png.name} not written" in r.stdout or script.stem == "unet_segmentation"
        return
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{script.name} writes {png.name}"
    assert str(png) in r.stdout, "the example says where its plot went"


def test_examples_speak_of_the_users_task_not_of_notes_the_user_cannot_read():
    for script in EXAMPLES + [pathlib.Path(__file__).resolve().parents[1] / "src" / "pyrnn" / "demo.py"]:
        text = script.read_text().lower()
        assert "notes" not in text, f"{script.name} refers to notes a user cannot follow"
