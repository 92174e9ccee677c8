"""The C++ backend of the concatenation family: the Python side of ``pyrnn._C``'s concat kernels.

Contract: :mod:`pyrnn.backends.concat_reference`. Checks with the contract's ``check_*``, allocates
the outputs (recycled memory, :mod:`pyrnn._buffers`) and hands them to ``csrc/copy/concat.cpp``
(whose binding checks every array again and releases the GIL).
"""

from __future__ import annotations

from .. import _C, _buffers
from .concat_reference import check_concat_last, check_split_last


def concat_last(xs):
    """See :mod:`pyrnn.backends.concat_reference`."""
    lead, sizes, dtype = check_concat_last(xs)
    y = _buffers.empty(lead + (sum(sizes),), dtype)
    _C.concat_last(list(xs), y)
    return y


def split_last(y, sizes):
    """See :mod:`pyrnn.backends.concat_reference`."""
    sizes = check_split_last(y, sizes)
    parts = [_buffers.empty(y.shape[:-1] + (s,), y.dtype) for s in sizes]
    _C.split_last(y, parts)
    return parts
