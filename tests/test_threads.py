"""pyrnn.set_num_threads caps every BLAS pool and Numba, and undoes the cap."""

import numba
import pytest
from threadpoolctl import threadpool_info

import pyrnn


def _blas_threads():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_set_num_threads_caps_blas_and_numba():
    before = _blas_threads()
    assert before, "expected NumPy/SciPy's BLAS to be loaded"
    try:
        pyrnn.set_num_threads(1)
        assert set(_blas_threads().values()) == {1}
        assert numba.get_num_threads() == 1 and pyrnn.get_num_threads() == 1
        if "cpp" in pyrnn.available_backends():
            from pyrnn import _C

            assert _C.get_num_threads() == 1  # the C++ kernels' own team
    finally:
        pyrnn.set_num_threads(None)
    assert _blas_threads() == before
    if "cpp" in pyrnn.available_backends():
        assert _C.get_num_threads() == pyrnn.get_num_threads()
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_thread_counts_are_named(bad):
    with pytest.raises(ValueError, match="set_num_threads: expected a positive integer or None"):
        pyrnn.set_num_threads(bad)
