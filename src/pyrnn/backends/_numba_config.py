"""JIT flags for every Numba kernel, in one place (never hard-coded per function).

``cache=True`` keeps compiled kernels on disk between runs; ``nogil=True`` lets
other Python threads run while a kernel does; ``fastmath`` stays off so the
Numba backend matches the NumPy reference to float64 rounding.
"""

JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")

