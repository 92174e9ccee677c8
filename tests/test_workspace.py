"""pyrnn.workspace: buffers reused across calls, never shared by two users at once."""

import gc
import threading

import numpy as np

from pyrnn.workspace import MAX_FREE, Workspace, current


def test_a_buffer_given_back_is_taken_again_and_a_smaller_shape_takes_a_view_of_it():
    ws = Workspace()
    a = ws.take("gates", (4, 3, 8), np.float32)
    assert a.shape == (4, 3, 8) and a.dtype == np.float32 and a.flags.c_contiguous
    base = a.base
    ws.give(a)
    b = ws.take("gates", (2, 3, 8), np.float32)  # smaller: the same memory
    assert b.base is base and b.shape == (2, 3, 8) and b.flags.c_contiguous
    ws.give(b)
    assert ws.nbytes() == 4 * 3 * 8 * 4


def test_every_buffer_starts_on_a_cache_line():
    """The kernels' 512-bit stores and AMX tile rows read or write one line each only where rows start on one."""
    from pyrnn.workspace import LINE

    ws = Workspace()
    for dtype in (np.float32, np.float64, np.int64):
        for n in (1, 3, 17, 1000, 4097):
            a = ws.take(f"a{n}", (n,), dtype)
            b = ws.take(f"a{n}", (n,), dtype)  # the first in use: a fresh one
            assert a.ctypes.data % LINE == 0 and b.ctypes.data % LINE == 0
            a[...] = 7  # the whole of each is writable and they do not overlap
            b[...] = 8
            assert (a == 7).all() and a.nbytes == n * np.dtype(dtype).itemsize
            ws.give(a)
            c = ws.take(f"a{n}", (max(n // 2, 1),), dtype)  # a view of a free one
            assert c.ctypes.data % LINE == 0 and c.base is a.base


def test_buffers_in_use_are_never_handed_out_twice():
    ws = Workspace()
    first = ws.take("cs", (5, 2), np.float64)
    second = ws.take("cs", (5, 2), np.float64)  # the first is in use: a fresh one
    assert not np.shares_memory(first, second)
    first[...] = 1
    second[...] = 2
    assert (first == 1).all()


def test_a_larger_shape_grows_the_buffer_and_the_small_one_is_dropped():
    ws = Workspace()
    small = ws.take("x", (10,), np.float32)
    big = ws.take("x", (100,), np.float32)  # sized by the largest seen
    ws.give(small)  # smaller than the largest size seen: dropped
    ws.give(big)
    assert ws.nbytes() == 400
    assert ws.take("x", (10,), np.float32).base is big.base


def test_at_most_max_free_buffers_are_kept_and_foreign_arrays_are_ignored():
    ws = Workspace()
    arrays = [ws.take("x", (8,), np.float32) for _ in range(MAX_FREE + 2)]
    for a in arrays:
        ws.give(a)
    assert ws.nbytes() == MAX_FREE * 32
    ws.give(np.zeros(8, np.float32)[:4])  # not the workspace's: ignored
    ws.give(None)
    assert ws.nbytes() == MAX_FREE * 32


def test_dtypes_and_names_keep_their_own_buffers():
    ws = Workspace()
    a = ws.take("x", (8,), np.float32)
    ws.give(a)
    b = ws.take("x", (8,), np.float64)
    c = ws.take("y", (8,), np.float32)
    assert b.dtype == np.float64 and b.base is not a.base and c.base is not a.base


def test_release_drops_free_buffers_and_buffers_in_use_stay_valid():
    ws = Workspace()
    kept = ws.take("g", (16,), np.float32)
    free = ws.take("g", (16,), np.float32)
    ws.give(free)
    kept[...] = 3
    ws.release()
    assert ws.nbytes() == 0
    assert (kept == 3).all()  # the holder's array is untouched
    ws.give(kept)  # handed out before release: dropped, not kept
    assert ws.nbytes() == 0
    assert ws.take("g", (16,), np.float32).base is not kept.base


def test_a_buffer_never_given_back_is_freed_with_its_holder():
    ws = Workspace()
    a = ws.take("g", (1000,), np.float32)
    ref = a.base
    import weakref

    dead = weakref.ref(ref)
    del a, ref
    gc.collect()
    assert dead() is None, "the workspace must not keep a buffer that was never given back"
    for _ in range(50):  # its bookkeeping does not grow with dropped buffers either
        ws.take("g", (1000,), np.float32)
    gc.collect()
    assert not ws._out, "the bookkeeping of dropped buffers must go with them"


def test_active_is_per_thread_and_nests():
    outer, inner = Workspace(), Workspace()
    seen = []
    assert current() is None
    with outer.active():
        with inner.active():
            assert current() is inner
            t = threading.Thread(target=lambda: seen.append(current()))
            t.start()
            t.join()
        assert current() is outer
    assert current() is None and seen == [None]


def test_two_threads_taking_at_once_never_share_a_buffer():
    ws = Workspace()
    errors = []

    def user(value):
        for _ in range(300):
            a = ws.take("g", (64,), np.float64)
            a[...] = value
            if not (a == value).all():
                errors.append(value)
            ws.give(a)

    threads = [threading.Thread(target=user, args=(v,)) for v in (1.0, 2.0, 3.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
