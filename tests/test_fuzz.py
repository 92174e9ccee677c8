"""Hypothesis fuzz of the public layer API on every backend: no input may crash the interpreter,
and every bad input must get a clear error.

The fuzz loop itself is ``tests/fuzz_api.py`` (its docstring lists what it draws and how it
classifies each call; ``tests/fuzz_cnn.py`` adds the image layers and ``pyrnn.vision`` models); it runs in a child process per backend, so a segfault or abort in a
kernel shows up here as a failed test naming the case, not as a dead test runner.

- CI budget: ``EXAMPLES`` cases per backend with a fixed seed (a few seconds each once the
  Numba cache is warm, which the backend tests before this file make it).
- ``PYRNN_FUZZ_LONG=1``: 20 times as many cases, with another seed per backend.

Every finding comes with its replay command: ``python tests/fuzz_api.py --backend B --seed S
--examples N --only K`` runs case K alone (all draws happen before anything runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("hypothesis")

import pyrnn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "fuzz_api.py")
LONG = os.environ.get("PYRNN_FUZZ_LONG", "") == "1"
EXAMPLES = 300 * (20 if LONG else 1)
SEEDS = {"cpp": 101, "numba": 202, "numpy": 303}
#: categories that must stay at zero (see fuzz_api.py): a bad input gets a clear error, a good one
#: the contract's output, and the driver itself works
MUST_BE_ZERO = ("unclear", "bad_output", "accepted_invalid", "refused_valid", "wrong_exc_type", "warning",
                "harness_error")


def _crash_report(backend, proc, trace, replay):
    """The call a dead child was in (the last line of its trace) and how to replay it."""
    text = trace.read_text() if trace.exists() else ""
    last = text.splitlines()[-1] if text else "(no call traced)"
    case = last.split("\t", 1)[0]
    how = (f"killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
           else f"exit code {proc.returncode}")
    return (f"fuzz child on backend {backend!r} died ({how}) in this call:\n  {last}\n"
            f"replay: {replay} --only {case}\nstderr (tail):\n{proc.stderr[-3000:]}")


def _child(backend, seed, examples, trace, extra=()):
    cmd = [sys.executable, DRIVER, "--backend", backend, "--seed", str(seed), "--examples", str(examples),
           *extra, "--trace", str(trace)]
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600 if LONG else 600, env=env, cwd=HERE)
    replay = " ".join(["python", "tests/fuzz_api.py"] + cmd[2:-2 - len(extra)])
    return proc, replay


def _run(backend, tmp_path):
    seed = SEEDS[backend] + (1000 if LONG else 0)
    trace = tmp_path / f"trace-{backend}.txt"
    proc, replay = _child(backend, seed, EXAMPLES, trace)
    if proc.returncode != 0:
        pytest.fail(_crash_report(backend, proc, trace, replay))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FUZZ_RESULT ")]
    assert lines, f"no FUZZ_RESULT line from the fuzz child; stdout tail:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}"
    return json.loads(lines[-1][len("FUZZ_RESULT "):]), replay


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_fuzz_public_api(backend, tmp_path):
    if backend not in pyrnn.available_backends():
        pytest.skip(f"backend {backend!r} does not load here")
    result, replay = _run(backend, tmp_path)
    counts = result["counts"]
    assert counts["cases"] >= 0.9 * EXAMPLES, f"hypothesis ran only {counts['cases']} of {EXAMPLES} cases"
    assert counts["ok"] > 0 and counts["clear"] > 0, f"the fuzz no longer reaches both outcomes: {counts}"
    # every layer family of the brief was built on this backend
    for name in ("RNN", "LSTM", "GRU", "Conv1D", "MaxPool1D", "AvgPool1D", "Dense", "Embedding", "Dropout",
                 "LastStep", "TimeDistributed", "Dilated", "Conv2D", "ConvTranspose2D", "MaxPool2D", "AvgPool2D",
                 "GlobalAvgPool2D", "Upsample2D", "Flatten", "BatchNorm1D", "BatchNorm2D", "vision"):
        assert result["coverage"].get(f"{name}@{backend}", 0) > 0, f"{name} never drawn: {result['coverage']}"
    bad = [f for f in result["findings"] if f["category"] in MUST_BE_ZERO]
    if bad:
        report = "\n".join(
            f"- [{f['category']}] {f['exc_type']} x{f['count']}: {f['call']}\n    -> {f['message']}\n"
            f"    replay: {replay} --only {f['case']}"
            for f in bad
        )
        pytest.fail(f"backend {backend!r}: {counts}\n{report}")
    for category in MUST_BE_ZERO:
        assert counts[category] == 0, counts


def test_a_crash_in_the_child_is_caught_and_named(tmp_path):
    """The harness itself: a segfault in the child is a failed test that names the case, not a dead runner."""
    trace = tmp_path / "trace.txt"
    proc, replay = _child("numpy", 0, 30, trace, extra=("--crash-at", "LSTM#0"))
    assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stderr[-2000:])
    report = _crash_report("numpy", proc, trace, replay)
    assert "killed by signal SIGSEGV" in report and "--only LSTM#0" in report, report


def test_conv1d_bad_alloc_in_the_kernel_team_is_a_memory_error(tmp_path):
    """Found by the long fuzz (PYRNN_FUZZ_LONG=1, cpp, Conv1D#249 of seed 1101): under an address-space
    limit, the caller's im2col buffer (std::vector) in the C++ conv1d_forward region throws
    std::bad_alloc; pybind turns it into MemoryError and returns while the second team member
    still runs the region on the returned frame's references -> SIGSEGV (or SIGABRT when its own
    allocation throws in the worker thread). It must be a MemoryError and nothing else."""
    if "cpp" not in pyrnn.available_backends():
        pytest.skip("the cpp backend does not load here")
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))\n"
        "import numpy as np, pyrnn\n"
        "from pyrnn.layers import Conv1D\n"
        "pyrnn.set_backend('cpp')\n"
        "layer = Conv1D(4, 2, 1, stride=3, padding=(0, 2**30))\n"
        "try:\n"
        "    y = layer.forward(np.zeros((2, 0, 4), np.float32))\n"
        "    print('shape', y.shape)\n"
        "except (MemoryError, ValueError) as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"child died with {proc.returncode} "
                                  f"({signal.Signals(-proc.returncode).name if proc.returncode < 0 else 'exit'}):\n"
                                  f"{proc.stdout[-1000:]}\n{proc.stderr[-2000:]}")
    # and it says so (Conv1D#247 of seed 1101 in the long fuzz: pybind's own message was "std::bad_alloc")
    if proc.stdout.startswith("MemoryError"):
        assert "allocate" in proc.stdout.lower(), proc.stdout  # what the fuzz takes for a clear MemoryError
