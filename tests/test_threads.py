"""pyrnn.set_num_threads caps every BLAS pool and Numba, and undoes the cap."""

import contextlib

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import pyrnn


def _blas_threads():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_set_num_threads_caps_blas_and_the_kernel_team():
    before = _blas_threads()
    assert before, "expected NumPy/SciPy's BLAS to be loaded"
    try:
        pyrnn.set_num_threads(1)
        assert set(_blas_threads().values()) == {1}
        assert pyrnn.get_num_threads() == 1
        if "cpp" in pyrnn.available_backends():
            from pyrnn import _C

            assert _C.get_num_threads() == 1  # the C++ kernels' own team
    finally:
        pyrnn.set_num_threads(None)
    after = _blas_threads()  # a BLAS loaded meanwhile (SciPy's, by the cpp backend's first import) is not compared
    assert {k: after.get(k) for k in before} == before
    if "cpp" in pyrnn.available_backends():
        assert _C.get_num_threads() == pyrnn.get_num_threads()


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_thread_counts_are_named(bad, exc):
    with pytest.raises(exc, match="set_num_threads: n: expected an integer"):
        pyrnn.set_num_threads(bad)


def test_absurd_thread_counts_are_capped_at_the_cpus_with_a_warning():
    """Regression: set_num_threads(10**6) was accepted and started 158 threads."""
    from pyrnn.threads import _cpu_count

    try:
        with pytest.warns(RuntimeWarning, match=rf"set_num_threads: 1000000 threads requested, using {_cpu_count()}"):
            pyrnn.set_num_threads(10**6)
        assert pyrnn.get_num_threads() == _cpu_count()
        if "cpp" in pyrnn.available_backends():
            from pyrnn import _C

            assert _C.get_num_threads() == _cpu_count()
    finally:
        pyrnn.set_num_threads(None)


def _numpy_blas_threads():
    from pyrnn import threads

    lib = threads._numpy_openblas_threads()
    if lib is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS with get/set_num_threads")
    return lib[0]()


def test_blas_one_thread_runs_numpys_blas_on_one_thread_then_restores_it():
    from pyrnn.threads import blas_one_thread

    before = _numpy_blas_threads()
    if before < 2:
        pytest.skip("NumPy's BLAS already runs on one thread")
    with blas_one_thread():
        assert _numpy_blas_threads() == 1
        with blas_one_thread():
            assert _numpy_blas_threads() == 1
        assert _numpy_blas_threads() == 1  # the outer block is still open
    assert _numpy_blas_threads() == before


def test_blas_one_thread_covers_scipys_blas_too():
    """SciPy's OpenBLAS is the one behind Numba's np.dot (the Numba team's members call it)."""
    from pyrnn import threads

    lib = threads._openblas_threads("scipy")
    if lib is None:
        pytest.skip("SciPy's BLAS is not an OpenBLAS with get/set_num_threads")
    before = lib[0]()
    if before < 2:
        pytest.skip("SciPy's BLAS already runs on one thread")
    with threads.blas_one_thread():
        assert lib[0]() == 1
    assert lib[0]() == before


def test_blas_one_thread_blocks_in_two_threads_share_one_count():
    import threading

    from pyrnn.threads import blas_one_thread

    before = _numpy_blas_threads()
    inside, leave, seen = threading.Event(), threading.Event(), []

    def other():
        with blas_one_thread():
            inside.set()
            leave.wait(10)
        seen.append(_numpy_blas_threads())

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with blas_one_thread():
        pass
    seen.append(_numpy_blas_threads())  # the other block is still open: still one thread
    leave.set()
    t.join(10)
    assert seen == [1, before] or before == 1
    assert _numpy_blas_threads() == before


def test_a_block_opened_while_the_count_is_one_leaves_it_to_whoever_set_it():
    """As a C++ kernel's single-thread section (csrc/common/gemm.h): entered during one, the block
    must not restore 1 after the section has restored the library's count."""
    from threadpoolctl import threadpool_limits

    from pyrnn.threads import blas_one_thread

    before = _numpy_blas_threads()
    limiter = threadpool_limits(1)
    with blas_one_thread():
        limiter.restore_original_limits()
    assert _numpy_blas_threads() == before


def test_dense_runs_small_products_on_one_blas_thread(monkeypatch):
    """NumPy's products (the numpy and numba backends; with the cpp backend they run on the kernels' team)."""
    from pyrnn import threads
    from pyrnn.layers import dense

    seen = []
    real = threads.gemm_threads
    monkeypatch.setattr(dense, "gemm_threads", lambda flops: seen.append(flops) or real(flops))
    layer = pyrnn.Dense(400, 120, seed=0)
    x = np.ones((64, 400), np.float32)
    with pyrnn.use_backend("numpy"):
        layer.backward(np.ones_like(layer.forward(x)))
    assert seen == [2 * 64 * 400 * 120] * 2 + [2 * 64 * 120] + [2 * 64 * 400 * 120] and threads.ONE_THREAD_GEMM_FLOPS <= seen[0] < threads.SMALL_GEMM_FLOPS
    assert not isinstance(real(seen[0]), contextlib.nullcontext)
    with _machine(others=0):
        for flops in (2 * 64 * 84 * 10, 2 * 512 * 1024 * 1024):  # OpenBLAS' own one thread; big enough for every thread
            assert isinstance(real(flops), contextlib.nullcontext)


@contextlib.contextmanager
def _machine(others):
    """The C++ kernels' load sample pretends `others` other threads run (skips without the cpp backend)."""
    if "cpp" not in pyrnn.available_backends():
        pytest.skip("the load sample is the cpp backend's")
    from pyrnn import _C

    before = _C.get_num_threads()
    _C.set_num_threads(2)
    _C._set_others_running(others)
    try:
        yield
    finally:
        _C._set_others_running(-1)
        _C.set_num_threads(before)


def test_large_numpy_products_run_on_one_blas_thread_while_the_machine_is_busy():
    from pyrnn import threads

    big = 2 * 512 * 1024 * 1024
    with _machine(others=10**4):
        assert not isinstance(threads.gemm_threads(big), contextlib.nullcontext)
        assert isinstance(threads.gemm_threads(2 * 64 * 84 * 10), contextlib.nullcontext)  # OpenBLAS' one thread


# ------------------------------------------------------------ PYRNN_NUM_THREADS
def test_environment_variable_sets_the_cap():
    from pyrnn.threads import _apply_environment

    try:
        assert _apply_environment({"PYRNN_NUM_THREADS": " 1 "}) == 1
        assert pyrnn.get_num_threads() == 1 and set(_blas_threads().values()) == {1}
        if "cpp" in pyrnn.available_backends():
            from pyrnn import _C

            assert _C.get_num_threads() == 1
    finally:
        pyrnn.set_num_threads(None)
    assert _apply_environment({}) is None and _apply_environment({"PYRNN_NUM_THREADS": ""}) is None


@pytest.mark.parametrize("bad", ["abc", "0", "-2", "1.5", "2 threads", "0x2"])
def test_bad_environment_values_warn_naming_the_value_and_change_nothing(bad):
    from pyrnn.threads import _apply_environment

    before = pyrnn.get_num_threads(), _blas_threads()
    with pytest.warns(RuntimeWarning, match=rf"PYRNN_NUM_THREADS: expected an integer >= 1, got '{bad}'; ignored"):
        assert _apply_environment({"PYRNN_NUM_THREADS": bad}) is None
    assert (pyrnn.get_num_threads(), _blas_threads()) == before


@pytest.mark.parametrize("value, expect", [("1", "1 []"), ("zero", "None ['RuntimeWarning']")])
def test_environment_variable_is_read_at_import(value, expect):
    """In a fresh interpreter: the cap applies from ``import pyrnn`` on; a bad value warns at import."""
    import os
    import subprocess
    import sys

    code = ("import warnings\nwith warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n"
            "    import pyrnn\nfrom pyrnn import threads\n"
            "print(threads._state['n'], [x.category.__name__ for x in w if 'PYRNN_NUM_THREADS' in str(x.message)])")
    env = dict(os.environ, PYRNN_NUM_THREADS=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expect


def test_gradient_norms_of_small_models_do_not_wake_the_blas_pool(monkeypatch):
    """Regression: clip_norm's np.dot over an LSTM(64)'s 16384 W_hh gradients woke OpenBLAS' pool at every
    step (OpenBLAS splits dot products above 10000 elements)."""
    from pyrnn import optim, threads
    from pyrnn.models import training

    entered = []
    real = threads.dot_threads

    def spy(n):
        ctx = real(n)
        entered.append((n, isinstance(ctx, contextlib.nullcontext)))
        return ctx

    monkeypatch.setattr(optim, "dot_threads", spy)
    monkeypatch.setattr(training, "dot_threads", spy)
    grads = [np.ones((256, 64)), np.ones(256)]
    with _machine(others=0):
        assert optim.clip_grad_norm_(grads, 1.0) == pytest.approx(np.sqrt(256 * 64 + 256))
        assert entered == [(256 * 64, False)]  # one BLAS thread for the norm
        assert isinstance(real(threads.THREADED_DOT_ELEMENTS), contextlib.nullcontext)  # OpenBLAS' one thread
        assert isinstance(real(threads.SMALL_GEMM_FLOPS), contextlib.nullcontext)  # large: every thread
    with _machine(others=10**4):
        assert not isinstance(real(threads.SMALL_GEMM_FLOPS), contextlib.nullcontext)  # busy: one thread
