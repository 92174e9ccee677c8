"""fit/evaluate on datasets (issue 13, point 3): a WindowDataset streams its batches lazily, Keras-style
PyDatasets and iterables of batches train, one-step targets are squeezed to the model's output when
that is unambiguous, and every other mismatch names the fix."""

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Dense, LastStep
from pyrnn.models.data_adapter import fit_target
from pyrnn.timeseries import WindowDataset

from helpers import assert_weights_are


def _series(n=300):
    t = np.arange(n)
    return (np.sin(2 * np.pi * t / 25) + 0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)


def _model(outputs=1):
    return pyrnn.Sequential([pyrnn.GRU(1, 8, seed=0), LastStep(), Dense(8, outputs, seed=1)]).compile("adam", "mse", lr=1e-2)


class CountingWindows(WindowDataset):
    """A WindowDataset that records how many windows each batch() call gathered."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def batch(self, indices):
        self.calls.append(len(np.arange(len(self))[indices]))
        return super().batch(indices)

    def arrays(self):
        raise AssertionError("fit built every window at once")


def test_fit_on_a_window_dataset_equals_fit_on_its_arrays_and_streams_batches():
    ds = CountingWindows(_series(), input_len=20, horizon=1, stop=240)
    val = WindowDataset(_series(), input_len=20, horizon=1, start=240)
    x, y = WindowDataset(_series(), input_len=20, horizon=1, stop=240).arrays()
    assert y.shape == (len(ds), 1, 1)  # the issue: (B, 1, 1) targets against a (B, 1) head
    vx, vy = val.arrays()
    want = _model()
    h_arrays = want.fit(x, y[:, 0], epochs=2, batch_size=32, seed=0, verbose=0, validation_data=(vx, vy[:, 0]))
    got = _model()
    h_ds = got.fit(ds, epochs=2, batch_size=32, seed=0, verbose=0, validation_data=val)
    assert_weights_are(got, want.state_dict())
    assert h_ds.history == h_arrays.history
    assert max(ds.calls) == 32 and sum(ds.calls) == 1 + 2 * len(ds)  # one window for the dry run, then batches only
    assert got.evaluate(val) == want.evaluate(vx, vy[:, 0])


def test_fit_on_arrays_squeezes_a_one_step_target_too():
    ds = WindowDataset(_series(), input_len=20, horizon=1)
    x, y = ds.arrays()
    a, b = _model(), _model()
    a.fit(x, y, epochs=1, batch_size=64, seed=0, verbose=0)
    b.fit(x, y.reshape(len(y), 1), epochs=1, batch_size=64, seed=0, verbose=0)
    assert_weights_are(a, b.state_dict())


def test_a_horizon_that_the_model_cannot_output_names_the_fix():
    ds = WindowDataset(_series(), input_len=20, horizon=3)
    with pytest.raises(ValueError, match=r"the dataset.s y: expected targets of shape \(batch, 1\) .* got shape \(1, 3, 1\); the model predicts 1 "
                                         r"value\(s\) per sample and the data has 3: give the model's last layer 3 outputs"):
        _model().fit(ds, epochs=1, verbose=0)
    _model(outputs=3).fit(ds, epochs=1, verbose=0)  # (B, 3, 1) against (B, 3): squeezed


def test_fit_target_rules():
    y = np.zeros((4, 1, 1))
    assert fit_target(y, (1,), "y").shape == (4, 1)
    assert fit_target(np.zeros((4, 3, 1)), (3,), "y").shape == (4, 3)
    assert fit_target(np.zeros((4, 3)), (3, 1), "y").shape == (4, 3, 1)
    same = np.zeros((4, 2))
    assert fit_target(same, (2,), "y") is same
    with pytest.raises(ValueError, match=r"ambiguous: reshape \(or transpose\) them yourself, e\.g\. y\.reshape\(len\(y\), 3, 2\)"):
        fit_target(np.zeros((4, 2, 3)), (3, 2), "y")


class Batches:
    """A Keras PyDataset in miniature: __len__ batches, __getitem__(i) -> (x, y), on_epoch_end."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size, self.epochs_ended = x, y, batch_size, 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[sl], self.y[sl]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_a_pydataset_and_a_list_of_batches_train_like_the_arrays_in_order():
    x, y = WindowDataset(_series(), input_len=20, horizon=1).arrays()
    y = y[:, 0]
    want = _model()
    want.fit(x, y, epochs=2, batch_size=50, shuffle=False, verbose=0)
    seq = Batches(x, y, 50)
    got = _model()
    got.fit(seq, epochs=2, verbose=0)
    assert_weights_are(got, want.state_dict())
    assert seq.epochs_ended == 2
    listed = _model()
    listed.fit([seq[i] for i in range(len(seq))], epochs=2, verbose=0)
    assert_weights_are(listed, want.state_dict())


def test_a_one_shot_iterator_is_refused_after_its_first_epoch():
    x, y = WindowDataset(_series(), input_len=20, horizon=1).arrays()
    gen = ((x[i : i + 50], y[i : i + 50]) for i in range(0, len(x), 50))
    with pytest.raises(TypeError, match="is an iterator, used up after one epoch; pass a re-iterable"):
        _model().fit(gen, epochs=2, verbose=0)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(validation_split=0.2), "validation_split: expected 0 with a dataset"),
    (dict(mask=np.ones(5)), "mask, lengths: expected None with a dataset"),
])
def test_dataset_arguments_that_do_not_apply_are_refused(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        _model().fit(WindowDataset(_series(), input_len=20), verbose=0, **kwargs)


def test_arrays_without_targets_say_what_is_missing():
    with pytest.raises(ValueError, match="y: expected targets, got None"):
        _model().fit(np.zeros((4, 20, 1), np.float32), verbose=0)


def test_a_bad_batch_names_itself():
    with pytest.raises(TypeError, match=r"batch 0: expected a batch \(x, y\) or \(x, y, mask\), got a tuple of length 1"):
        _model().fit([(np.zeros((2, 20, 1), np.float32),)], verbose=0)
