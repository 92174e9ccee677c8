"""backends.ordered.matmul: the same bits for 1 and 2 BLAS threads, and the product it stands for."""

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import ordered


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M, N", [(96, 16), (128, 32), (64, 512)])
def test_ordered_matmul_does_not_depend_on_the_thread_count(M, N, dtype):
    rng = np.random.default_rng(0)
    for K in (31, 32, 452, 1560, 1920, 2049):
        a, b = rng.standard_normal((K, M)).astype(dtype).T, rng.standard_normal((K, N)).astype(dtype)  # a transposed, as dW
        out = {}
        try:
            for threads in (1, 2):
                pyrnn.set_num_threads(threads)
                out[threads] = ordered.matmul(a, b)
        finally:
            pyrnn.set_num_threads(None)
        np.testing.assert_array_equal(out[1], out[2], err_msg=f"K={K}")
        np.testing.assert_allclose(out[1], a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4 if dtype == np.float32 else 1e-12,
                                   atol=1e-3 if dtype == np.float32 else 1e-11)


def test_ordered_matmul_adds_into_out():
    a, b = np.ones((2, 40)), np.ones((40, 3))
    out = np.full((2, 3), 1.0)
    assert ordered.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, np.full((2, 3), 41.0))
