"""`python -m pyrnn` and the README's example run as documented."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, "-W", "error", "-m", "pyrnn", *args], capture_output=True, text=True, timeout=300)


def test_info_lists_backends():
    r = _run("info")
    assert r.returncode == 0, r.stderr
    assert "backends (fastest first): ['cpp', 'numba', 'numpy']" in r.stdout
    assert "cpp GEMM: NumPy's OpenBLAS (ILP64)" in r.stdout
    from pyrnn import _C

    assert f"cpp loops: {_C.supported_isas()[-1]} (this CPU runs " in r.stdout


def test_check_compares_every_backend_and_times_a_step():
    r = _run("check", "--batch", "2", "--time", "5", "--input", "4", "--hidden", "8", "--repeat", "1")
    assert r.returncode == 0, r.stderr
    errors = [float(e) for e in re.findall(r"(?:cpp|numba) (\d\.\de[-+]\d+)", r.stdout)]
    assert len(errors) == 8 and max(errors) < 1e-9, r.stdout
    assert len(re.findall(r"^\s+(cpp|numba|numpy)\s+\d+\.\d+ ms$", r.stdout, re.M)) == 3, r.stdout
    assert r.stdout.rstrip().endswith("check: OK")


def test_help_lists_the_commands():
    r = _run("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("demo", "info", "check", "bench", "warmup"))


def test_no_arguments_prints_the_help_and_succeeds():
    r = _run()
    assert r.returncode == 0, r.stderr
    assert r.stdout == _run("--help").stdout and "usage: python -m pyrnn" in r.stdout


def test_version():
    import pyrnn

    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"pyrnn {pyrnn.__version__}"


def test_every_flag_of_every_command_has_help():
    from pyrnn.__main__ import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "demo" in a.choices)
    for name in ("demo", "check", "bench", "warmup"):
        for action in sub.choices[name]._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help"
        r = _run(name, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: python -m pyrnn {name}")


def test_readme_examples_run(tmp_path):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2, "README.md should show the layer example and the training example"
    for block in blocks:
        r = subprocess.run([sys.executable, "-W", "error", "-c", block], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "(4, 50, 64) (4, 50, 8)" in r.stdout or "val_mae" in r.stdout or "held-out accuracy" in r.stdout or "Forecaster" in r.stdout
