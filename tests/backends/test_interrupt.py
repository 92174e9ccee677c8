"""Ctrl-C during a long C++ kernel lands within a fraction of a second and leaves everything usable.

Each case runs a child process that calls a long cpp kernel (an LSTM forward or backward, a Conv1D
or Conv2D backward; 2-4 s a call here) again and again and prints ``ready``; the parent waits ~1 s, writes
the time it sends SIGINT (``time.monotonic()``, one clock for every process) to a file, and sends
it. The child catches the KeyboardInterrupt, reports the latency from that time and whether it
came out of a kernel, and checks that the kernels still give the results they gave before (the
thread team works), that the float mode (FTZ/DAZ) and the BLAS thread count came back, and that
an interrupted backward added nothing to the weight gradients. A kernel run by a thread other
than the main one is not interrupted (Python handles signals on the main thread only): it runs
to its end.
"""

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import pyrnn

from helpers import cpp_team

if "cpp" not in pyrnn.available_backends():  # pragma: no cover - a plain `pip install .` always builds it
    pytest.skip("the cpp backend is not built", allow_module_level=True)
if not hasattr(signal, "SIGINT") or sys.platform == "win32":  # pragma: no cover
    pytest.skip("needs POSIX signals", allow_module_level=True)

LATENCY_BOUND = 1.0  # seconds; the kernels poll every 50 ms, the rest is a busy machine

CHILD = textwrap.dedent(
    r"""
    import json, signal, sys, threading, time
    import numpy as np
    import pyrnn
    from pyrnn import _C
    from pyrnn.backends import contract

    # Python's own Ctrl-C handler, which it installs only where SIGINT is not ignored at start: a runner that
    # started the tests as a shell's background job or under nohup passes SIGINT on ignored, and the signal
    # below would then never arrive (the test hung until its timeout)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    case, sent_file = sys.argv[1], sys.argv[2]
    T_SMALL, B, I, H = 20, 4, 256, 2048  # big steps, so that a few thousand of them run for seconds
    rng = np.random.default_rng(0)
    weights = contract.Weights(*(0.02 * rng.standard_normal(s, dtype=np.float32)
                                 for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]))
    h0 = np.zeros((B, H), np.float32)
    out = {}

    def inputs(T):
        return np.ascontiguousarray(rng.standard_normal((T, B, I), dtype=np.float32))

    def forward(x, cache=None):  # LSTM, one layer-direction, inference unless a cache is given
        T = len(x)
        cache = cache or contract.Cache(np.empty((T, B, H), np.float32), np.empty((T, B, H), np.float32))
        _C.recurrent_forward(2, False, x, None, (h0, h0), tuple(weights), tuple(cache))
        return cache

    def backward_args(T):  # a saved cache of plausible values (0.5); fresh gradients for every call
        half = lambda *s: np.full(s, 0.5, np.float32)  # noqa: E731
        cache = contract.Cache(half(T, B, H), half(T, B, H), half(T, B, 4 * H))
        dout = (np.ones((T, B, H), np.float32), np.zeros((B, H), np.float32), np.zeros((B, H), np.float32))
        x = inputs(T)

        def prepare():
            grads = tuple(np.zeros_like(w) for w in weights)
            dres = (np.empty((T, B, I), np.float32), np.empty((B, H), np.float32), np.empty((B, H), np.float32))
            return 2, False, x, None, (h0, h0), tuple(cache), tuple(weights), dout, grads, dres

        return prepare

    def small_problem():  # forward + backward of a small 2-layer bidirectional LSTM on the team
        layer = pyrnn.LSTM(8, 64, num_layers=2, bidirectional=True, dtype=np.float32, seed=1)
        r = np.random.default_rng(1)
        x, dy = r.standard_normal((16, 30, 8)).astype(np.float32), r.standard_normal((16, 30, 128)).astype(np.float32)
        with pyrnn.use_backend("cpp"):
            y, _ = layer.forward(x)
            dx, _ = layer.backward(dy)
        return [y, dx] + [g.copy() for g in layer.grads.values()]

    def blas_threads():
        from threadpoolctl import threadpool_info
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    # steps for a call of `run` of ~4 s (the signal, ~1 s after the first call starts, lands inside it), at
    # most ~600 MB of arrays. The per-step time is measured on a call of ~1 s after a short one, so that a
    # call's fixed cost hardly counts: the backward's weight-gradient sums (75 MB here, written once per chunk
    # of steps) made the short call's steps look 2.5x dearer, and its calls came out at ~1.5 s, the signal
    # sometimes landing between two of them
    def long_steps(run, per_step_bytes, least):
        cap, n = int(600e6 / per_step_bytes), T_SMALL
        for _ in range(2):
            t = time.perf_counter()
            run(n)
            per_step = (time.perf_counter() - t) / n
            n = int(min(max(1.0 / per_step, n), cap))
        return int(min(max(4.0 / per_step, least), cap))

    def latency():
        caught = time.monotonic()
        with open(sent_file) as f:
            return caught - float(f.read())

    # kernel(*prepare()), again and again (a machine that got faster cannot end a call before the
    # signal), until Ctrl-C; returns the arguments of the interrupted call
    def until_interrupted(prepare, kernel):
        print("ready", flush=True)
        args, where, stopped = None, "python", _C._cancelled_calls()
        try:
            while True:
                args = prepare()
                where = "kernel"
                kernel(*args)
                where = "python"
        except KeyboardInterrupt:
            out["latency"] = latency()
            out["in_kernel"] = where == "kernel"
            # the kernel took the signal and stopped; else it came after the call's last poll (the call ran to
            # its end and Python raised the signal as it returned)
            out["kernel_stopped"] = _C._cancelled_calls() > stopped
        return args

    before = small_problem()
    mode, blas = _C._float_mode(), blas_threads()
    if case == "forward":
        T = long_steps(lambda n: forward(inputs(n)), B * (I + 2 * H) * 4, least=100)
        x = inputs(T)
        until_interrupted(lambda: (x,), forward)
    elif case == "backward":
        T = long_steps(lambda n: _C.recurrent_backward(*backward_args(n)()), B * (2 * I + 9 * H) * 4, least=50)
        args = until_interrupted(backward_args(T), _C.recurrent_backward)
        out["grads_untouched"] = not any(g.any() for g in args[8])
    elif case == "conv":  # Conv1D backward: the 2-D kernel on images of height 1, dx's region then dw's
        C, K, L = 512, 16, 250  # channels in and out, kernel size, sequence length
        w = 0.02 * rng.standard_normal((C, C, 1, K), dtype=np.float32)

        def conv_args(n):
            x, dy = rng.standard_normal((n, 1, L, C), dtype=np.float32), np.ones((n, 1, L - K + 1, C), np.float32)
            return lambda: (x, w, dy, np.empty_like(x), np.zeros_like(w), np.zeros(C, np.float32), (1, 1), (0, 0, 0, 0),
                            (1, 1), 1)

        T = long_steps(lambda n: _C.conv2d_backward(*conv_args(n)()), L * 3 * C * 4, least=20)
        args = until_interrupted(conv_args(T), _C.conv2d_backward)
        out["grads_untouched"] = not (args[4].any() or args[5].any())
    elif case == "conv2d":  # Conv2D backward (3x3, padding 1), the output lines split over the team
        C, S = 64, 32  # channels in and out, image side
        w2 = 0.02 * rng.standard_normal((C, C, 3, 3), dtype=np.float32)

        def conv2d_args(n):
            x, dy = rng.standard_normal((n, S, S, C), dtype=np.float32), np.ones((n, S, S, C), np.float32)
            return lambda: (x, w2, dy, np.empty_like(x), np.zeros_like(w2), np.zeros(C, np.float32), (1, 1), (1, 1, 1, 1),
                            (1, 1), 1)

        T = long_steps(lambda n: _C.conv2d_backward(*conv2d_args(n)()), S * S * C * 3 * 4, least=20)
        args = until_interrupted(conv2d_args(T), _C.conv2d_backward)
        out["grads_untouched"] = not (args[4].any() or args[5].any())
    else:  # "thread": the kernel runs on a worker thread; the main thread waits and takes the signal
        T = long_steps(lambda n: forward(inputs(n)), B * (I + 2 * H) * 4, least=100)
        x = inputs(T)
        result, stop, done = {}, threading.Event(), threading.Event()

        def work():  # forward again and again until told to stop
            try:
                while not stop.is_set():
                    result["hs"] = forward(x).hs
                    result["calls"] = result.get("calls", 0) + 1
            finally:
                done.set()

        worker = threading.Thread(target=work)
        worker.start()
        print("ready", flush=True)
        try:  # sleep, not join: before Python 3.13 a Ctrl-C inside Thread.join could mark a live thread dead
            while not done.is_set():
                time.sleep(0.01)
        except KeyboardInterrupt:
            out["latency"] = latency()
            out["in_kernel"] = True  # the worker's
        stop.set()
        while not done.is_set():
            time.sleep(0.01)
        worker.join()
        out["worker_calls"] = result.get("calls", 0)
        out["worker_result_ok"] = "hs" in result and bool(np.array_equal(forward(x[:T_SMALL]).hs, result["hs"][:T_SMALL]))
    after = small_problem()
    out["same_results"] = all(np.array_equal(a, b) for a, b in zip(before, after))
    out["float_mode_restored"] = _C._float_mode() == mode
    out["blas_threads_restored"] = blas_threads() == blas
    out["team"] = _C.get_num_threads()
    print(json.dumps(out), flush=True)
    """
)


def _run_child(case, tmp_path):
    sent_file = tmp_path / "sent"
    child = subprocess.Popen([sys.executable, "-c", CHILD, case, str(sent_file)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        # a child that hangs before it is ready fails the test after the timeout below, rather than blocking the run
        readable, _, _ = select.select([child.stdout], [], [], 300)
        assert readable, "the child printed nothing in 300 s"
        line = child.stdout.readline()
        assert line.strip() == "ready", (line, child.stderr.read() if child.poll() is not None else "")
        time.sleep(1.0)
        sent_file.write_text(repr(time.monotonic()))
        os.kill(child.pid, signal.SIGINT)
        stdout, stderr = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def _check_consistent(out):
    assert out["same_results"], "the kernels give other results after the interrupt"
    assert out["float_mode_restored"], "FTZ/DAZ leaked out of the kernel"
    assert out["blas_threads_restored"], "the BLAS thread count was not restored"


@pytest.mark.parametrize("case", ["forward", "backward", "conv", "conv2d"])
def test_ctrl_c_stops_a_long_kernel_quickly_and_leaves_it_usable(case, tmp_path):
    out = _run_child(case, tmp_path)
    assert out["in_kernel"], f"the signal landed between two kernel calls: {out}"
    assert out["latency"] < LATENCY_BOUND, out
    _check_consistent(out)
    if case != "forward" and out["kernel_stopped"]:  # a call that ran to its end added its gradients, rightly
        assert out["grads_untouched"], "an interrupted backward added into the weight gradients"


def test_a_kernel_on_another_thread_is_not_interrupted(tmp_path):
    out = _run_child("thread", tmp_path)
    assert out["latency"] < LATENCY_BOUND, out  # the main thread got the signal at once
    assert out["worker_calls"] >= 1 and out["worker_result_ok"], out  # the worker's kernel ran to its end
    _check_consistent(out)


@pytest.mark.parametrize("case", ["conv2d", "conv2d-dw", "conv2d-lanes", "conv2d-lanes-dw", "recurrent", "recurrent-rows"])
def test_a_backward_stopped_at_any_poll_adds_nothing_and_is_counted(case):
    """In process and deterministic (the bindings' countdown, _C._interrupt_next_kernel): a backward stopped at
    its 1st, 2nd, ... poll raises KeyboardInterrupt, adds nothing into the weight gradients and counts as a
    stopped call (_C._cancelled_calls, which the Ctrl-C test above reads); the same call left alone adds.
    conv2d-dw: no dx, so the polls are the Winograd weight gradient's own; conv2d-lanes(-dw): 8 -> 16 channels, the
    output-channel-lane gradients' (out_lanes.inc). recurrent-rows: a team of two
    splitting the batch (only the caller polls; the other member runs its rows to the end). The convolutions run
    on one thread here: their members take chunks from a queue, so a caller that the woken worker preempts may
    poll fewer times (or not at all) before the worker has taken every chunk; the Ctrl-C test above covers their
    team."""
    import numpy as np

    from pyrnn import _C
    from pyrnn.backends import contract

    rng = np.random.default_rng(5)
    last = {}  # the gradients of the latest call, read after it raised
    if case.startswith("conv2d"):
        B, C, O = (32, 8, 16) if "lanes" in case else (8, 32, 32)
        x, dy = rng.standard_normal((B, 16, 16, C), dtype=np.float32), rng.standard_normal((B, 16, 16, O), dtype=np.float32)
        w = rng.standard_normal((O, C, 3, 3), dtype=np.float32)

        def call():
            grads = last["grads"] = (np.zeros_like(w), np.zeros(O, np.float32))
            dx = None if case.endswith("-dw") else np.empty_like(x)
            _C.conv2d_backward(x, w, dy, dx, *grads, (1, 1), (1, 1, 1, 1), (1, 1), 1)
            return grads
    else:
        T, B, I, H = (60, 4, 8, 16) if case == "recurrent" else (20, 32, 8, 48)
        weights = contract.Weights(*(rng.standard_normal(s, dtype=np.float32) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]))
        half = lambda *s: np.full(s, 0.5, np.float32)  # noqa: E731
        x, h0 = rng.standard_normal((T, B, I), dtype=np.float32), np.zeros((B, H), np.float32)

        def call():
            cache = contract.Cache(half(T, B, H), half(T, B, H), half(T, B, 4 * H))
            grads = last["grads"] = tuple(np.zeros_like(a) for a in weights)
            dout = (np.ones((T, B, H), np.float32), np.ones((B, H), np.float32), np.ones((B, H), np.float32))
            dres = (np.empty_like(x), np.empty((B, H), np.float32), np.empty((B, H), np.float32))
            _C.recurrent_backward(2, False, x, None, (h0, h0), tuple(cache), tuple(weights), dout, grads, dres)
            return grads
    # the convolutions on one thread (the docstring); recurrent-rows: a team of two even on a busy machine
    threads, min_flops = (1, None) if case.startswith("conv2d") else (2, 0) if case == "recurrent-rows" else \
        (_C.get_num_threads(), None)
    with cpp_team(threads, min_flops=min_flops):  # restores the settings and clears a pending countdown
        for polls in (1, 2, 3):
            before = _C._cancelled_calls()
            _C._interrupt_next_kernel(polls)
            with pytest.raises(KeyboardInterrupt, match="_interrupt_next_kernel"):
                call()
            assert _C._cancelled_calls() == before + 1
            assert not any(g.any() for g in last["grads"]), polls
        before = _C._cancelled_calls()
        assert any(g.any() for g in call()) and _C._cancelled_calls() == before
