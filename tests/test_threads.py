"""pyrnn.set_num_threads caps every BLAS pool and Numba, and undoes the cap."""

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
