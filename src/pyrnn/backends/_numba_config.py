"""JIT flags for every Numba kernel, in one place (never hard-coded per function).

``cache=True`` keeps compiled kernels on disk between runs; ``nogil=True`` lets
other Python threads run while a kernel does; ``fastmath`` stays off so the
Numba backend matches the NumPy reference to float64 rounding; ``error_model="numpy"``
makes a division by zero give inf or NaN, as NumPy does, instead of raising. No kernel is
``parallel``: on top of the BLAS's thread pool, Numba's threads oversubscribe the cores.
"""

JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
