"""Shard draws: each rank's rows of one process's draw, and the generator left as one process leaves it."""

import numpy as np
import pytest

import pyrnn
from pyrnn.distributed.rows import batch_rows, current_rows, uniform
from pyrnn.layers import Dropout


@pytest.mark.parametrize("shape, axis, k", [((10, 3), 0, 1), ((7, 10, 4), 1, 1), ((30, 2), 0, 3)])
def test_each_share_is_one_process_rows_and_the_generator_advances_alike(shape, axis, k):
    total = shape[axis] // k
    full_rng = np.random.default_rng(5)
    full = full_rng.random(shape, dtype=np.float32)
    bounds = [0, 4, 4, total] if total > 4 else [0, 1, total]  # an empty share too
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if start == stop:
            continue
        rng = np.random.default_rng(5)
        local = list(shape)
        local[axis] = (stop - start) * k
        with batch_rows(start, stop, total):
            got = uniform(rng, tuple(local), axis=axis, dtype=np.float32)
        want = np.take(full, np.arange(start * k, stop * k), axis=axis)
        np.testing.assert_array_equal(got, want)
        assert rng.bit_generator.state == full_rng.bit_generator.state


def test_outside_a_block_it_is_the_plain_draw_and_blocks_nest():
    assert current_rows() is None
    np.testing.assert_array_equal(uniform(np.random.default_rng(1), (3, 2)), np.random.default_rng(1).random((3, 2)))
    with batch_rows(0, 2, 5):
        with batch_rows(2, 5, 5):
            assert current_rows() == (2, 5, 5)
        assert current_rows() == (0, 2, 5)
    assert current_rows() is None


def test_dropout_masks_of_two_shares_are_one_process_mask():
    x = np.ones((6, 5), np.float32)
    with pyrnn.no_grad():
        whole = Dropout(0.5, seed=3).forward(x)
        layer_a, layer_b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
        with batch_rows(0, 4, 6):
            a = layer_a.forward(x[:4])
        with batch_rows(4, 6, 6):
            b = layer_b.forward(x[4:])
    np.testing.assert_array_equal(np.concatenate([a, b]), whole)
    assert layer_a.rng_state() == layer_b.rng_state()


def test_bad_rows_are_refused():
    with pytest.raises(ValueError, match=r"expected 0 <= start <= stop <= total, got 3, 2, 5"):
        with batch_rows(3, 2, 5):
            pass
    with batch_rows(0, 2, 4):
        with pytest.raises(ValueError, match=r"expected a batch axis of a multiple of this rank's 2 rows \(rows \[0, 2\) of 4\), got shape \(3, 2\)"):
            uniform(np.random.default_rng(0), (3, 2))
