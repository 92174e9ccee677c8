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
    assert _blas_threads() == before
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
    from pyrnn import threads
    from pyrnn.layers import dense

    seen = []
    real = threads.gemm_threads
    monkeypatch.setattr(dense, "gemm_threads", lambda flops: seen.append(flops) or real(flops))
    layer = pyrnn.Dense(400, 120, seed=0)
    x = np.ones((64, 400), np.float32)
    layer.backward(np.ones_like(layer.forward(x)))
    assert seen == [2 * 64 * 400 * 120] * 2 + [2 * 64 * 120] and threads.ONE_THREAD_GEMM_FLOPS <= seen[0] < threads.SMALL_GEMM_FLOPS
    assert not isinstance(real(seen[0]), contextlib.nullcontext)
    for flops in (2 * 64 * 84 * 10, 2 * 512 * 1024 * 1024):  # OpenBLAS' own one thread; big enough for every thread
        assert isinstance(real(flops), contextlib.nullcontext)
