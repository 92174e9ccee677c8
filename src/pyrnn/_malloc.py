"""glibc's malloc tuned for large arrays that live for one layer call: opt-in, ``PYRNN_MALLOC_TUNING=1``.

Every layer returns fresh NumPy arrays, and a training step frees most of them a moment later. With
glibc's defaults, a freed block of more than 128 kB at the top of the heap is handed back to the
kernel (``M_TRIM_THRESHOLD``, adapted upwards at run time) and blocks above the mmap threshold are
mapped afresh, so the next step's arrays of the same size are new pages again: a page fault and a
zeroed page per 4 kB. On this project's machines (virtual machines, where a fault costs a few
microseconds) that is the largest cost after the convolutions themselves: a U-Net inference on
B=8 64x64 images took 17.6 ms with the defaults and 12.5 ms with the settings below (PyTorch, in the
same process: 10.8 and 10.2 ms). The settings are those of the allocators PyTorch's CPU performance
guide recommends preloading (jemalloc, tcmalloc), which keep freed memory for reuse:

- ``M_MMAP_THRESHOLD`` = 64 MB: blocks up to it come from the heap, which reuses freed ones;
- ``M_TRIM_THRESHOLD`` = 256 MB: freed memory at the top of the heap is kept up to that much.

Why not by default: the heap then fragments, and the peak resident set can grow. Measured (one
training step, fresh processes, benchmarks/memory.py): pyrnn's C++ backend unchanged (LSTM 138.6 MB,
U-Net 37.7 MB), the NumPy backend's LSTM 295 -> 340 MB, PyTorch's U-Net 40 -> 46 MB; and a process
that loads many crafted checkpoints in a row kept +111 MB instead of < 80 MB. A process-wide setting
with that cost is the application's call, not a library's: ``PYRNN_MALLOC_TUNING=1`` before
``import pyrnn`` (or :func:`tune` at any time) turns it on. Nothing is done on other C libraries.
"""

from __future__ import annotations

import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20

tuned = False  # whether tune() changed the settings


def tune(force=True):
    """Apply the settings above (once) if the C library is glibc; returns whether they are in effect.
    ``force=False`` (what ``import pyrnn`` does) applies them only when ``PYRNN_MALLOC_TUNING=1``."""
    global tuned
    if tuned:
        return True
    if os.environ.get("PYRNN_MALLOC_TUNING", "0").strip() != "1" and not force:
        return False
    import ctypes  # here, not at the top: `import pyrnn` without the opt-in loads neither
    import platform

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return tuned


tune(force=False)  # at import (pyrnn/__init__.py imports this module first): only with PYRNN_MALLOC_TUNING=1
