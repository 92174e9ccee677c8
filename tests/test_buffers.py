"""pyrnn._buffers: recycled memory is reused only when no array can see it, never grows past the
memory in use, and behaves as np.empty otherwise."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import pyrnn
from pyrnn import _buffers

BIG = (256, 257)  # float32: 263,168 bytes, above MIN_BYTES


@pytest.fixture(autouse=True)
def fresh_pool():
    pyrnn.empty_cache()
    yield
    pyrnn.empty_cache()


def test_enabled_here():
    assert _buffers._IDLE is not None and _buffers._enabled


def test_like_np_empty():
    a = _buffers.empty(BIG, np.float32)
    assert a.shape == BIG and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % _buffers.ALIGN == 0
    b = _buffers.empty_like(np.zeros((3, 100, 100), np.float64))
    assert b.shape == (3, 100, 100) and b.dtype == np.float64 and b.ctypes.data % _buffers.ALIGN == 0
    small = _buffers.empty((4, 4), np.float32)  # below MIN_BYTES: plain np.empty, not pooled
    assert small.base is None
    rounded = lambda n: -(-n // _buffers.ALIGN) * _buffers.ALIGN  # noqa: E731
    assert _buffers.cached_bytes() == (rounded(a.nbytes) + rounded(b.nbytes), _buffers.ARENA_BYTES)


def test_reused_only_when_dropped():
    a = _buffers.empty(BIG, np.float32)
    address = a.ctypes.data
    b = _buffers.empty(BIG, np.float32)  # a is alive: a new block
    assert b.ctypes.data != address and not np.shares_memory(a, b)
    del a
    c = _buffers.empty(BIG, np.float32)  # a's block, now idle
    assert c.ctypes.data == address


@pytest.mark.parametrize("keep", ["view", "slice", "reshape", "memoryview", "list"])
def test_any_reference_keeps_a_block_busy(keep):
    a = _buffers.empty(BIG, np.float32)
    a[...] = 7
    holder = {"view": lambda v: v.view(np.int32), "slice": lambda v: v[3:5], "reshape": lambda v: v.reshape(-1),
              "memoryview": memoryview, "list": lambda v: [v]}[keep](a)
    address = a.ctypes.data
    del a
    for _ in range(3):
        b = _buffers.empty(BIG, np.float32)
        assert b.ctypes.data != address
        b[...] = 0
    kept = holder[0] if keep == "list" else np.asarray(holder)
    assert (kept.view(np.float32) == 7).all()  # never overwritten


def _offset(a):
    arena = next(arena for arena in _buffers._arenas if np.shares_memory(arena.owner, a))
    return a.ctypes.data - arena.owner.ctypes.data - arena.start


def test_free_neighbours_merge_and_written_pages_come_first():
    a, b, c = (_buffers.empty(BIG, np.float32) for _ in range(3))
    size = _offset(b)
    assert (_offset(a), _offset(c)) == (0, 2 * size)
    del a, b
    both = _buffers.empty((2 * BIG[0], BIG[1]), np.float32)  # a's and b's ranges, merged
    assert _offset(both) == 0
    del both, c
    small = _buffers.empty((BIG[0] // 2, BIG[1]), np.float32)  # in written pages, not above them
    assert _offset(small) == 0


def test_a_request_that_finds_no_room_forgets_only_the_idle_blocks_in_its_way():
    """Written pages full of idle blocks: a new size takes the lowest range they cover and forgets those
    alone; the idle blocks of other sizes stay for their next requests (a training step asks for the same
    sizes again), and nothing grows past the written pages."""
    blocks = [_buffers.empty(BIG, np.float32) for _ in range(3)]
    offsets = [_offset(b) for b in blocks]
    top = _buffers._arenas[0].top
    del blocks
    wide = _buffers.empty((BIG[0] + 1, BIG[1]), np.float32)  # a little more than one block: over the first two
    assert _offset(wide) == 0
    again = _buffers.empty(BIG, np.float32)  # the third block, still pooled
    assert _offset(again) == offsets[2] and _buffers._arenas[0].top == top
    wide[...] = 1
    again[...] = 2
    assert (wide == 1).all()


def test_a_request_larger_than_an_arena_gets_its_own():
    a = _buffers.empty(BIG, np.float32)
    huge = _buffers.empty((_buffers.ARENA_BYTES // 4 + 1,), np.float32)
    assert huge.nbytes > _buffers.ARENA_BYTES and len(_buffers._arenas) == 2
    huge[-1] = a[-1, -1] = 3.0


def test_empty_cache_frees_unused_arenas_only():
    a = _buffers.empty(BIG, np.float32)
    b = _buffers.empty((_buffers.ARENA_BYTES // 4 + 1,), np.float32)
    del b
    pyrnn.empty_cache()
    busy, reserved = _buffers.cached_bytes()
    assert busy >= a.nbytes and reserved == _buffers.ARENA_BYTES
    a[...] = 1  # still valid
    del a
    pyrnn.empty_cache()
    assert _buffers.cached_bytes() == (0, 0)


def test_threads_never_share_a_block():
    errors = []

    def work(value):
        for _ in range(300):
            a = _buffers.empty(BIG, np.float32)
            a.fill(value)
            if not (a == value).all():
                errors.append(value)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_layers_return_arrays_nobody_else_sees():
    # two outputs of the same layer kept by the caller: distinct memory, values as computed
    conv = pyrnn.Conv2D(3, 8, 3, padding=1, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
    with pyrnn.no_grad():
        y1 = conv.forward(x)
        first = y1.copy()
        y2 = conv.forward(x + 1)
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, first)


def test_off_by_environment():
    code = ("from pyrnn import _buffers; import numpy as np; a = _buffers.empty((512, 512), np.float32); "
            "print(a.base is None, _buffers.cached_bytes())")
    env = dict(os.environ, PYRNN_RECYCLE_MEMORY="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "(0,", "0)"]
