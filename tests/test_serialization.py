"""Save -> load -> identical predictions; damaged files refused; a crash mid-save keeps the previous
checkpoint; resuming from a checkpoint continues bit for bit like an uninterrupted run."""

import os

import numpy as np
import pytest

import pyrnn
from pyrnn.checkpoint import CheckpointError
from pyrnn.layers import Conv1D, Dense, Dropout, LastStep


def _model():
    return pyrnn.Sequential([Conv1D(1, 4, 3, padding="causal", seed=0), pyrnn.GRU(4, 8, num_layers=2, dropout=0.1, seed=1),
                             LastStep(), Dropout(0.1, seed=2), Dense(8, 1, seed=3)])


def _data(n=96, T=10):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, T, 1)).astype(np.float32)
    return x, x.sum(axis=(1, 2))[:, None] / np.sqrt(T)


def test_save_load_identical_predictions(tmp_path):
    x, y = _data()
    model = _model().compile("adam", "mse", lr=0.01, metrics=["mae"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    again = pyrnn.load(path)
    np.testing.assert_array_equal(model.predict(x), again.predict(x))
    assert again.epochs_done == 2 and again.history.history["loss"] == model.history.history["loss"]
    assert [m.name for m in again.metrics] == ["mae"]


def test_resume_equals_uninterrupted_training_bit_for_bit(tmp_path):
    x, y = _data()
    straight = _model().compile("adam", "mse", lr=0.01, clip_norm=1.0)
    straight.fit(x, y, epochs=4, batch_size=16, verbose=0, seed=5)

    first = _model().compile("adam", "mse", lr=0.01, clip_norm=1.0)
    first.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=5)
    first.save(tmp_path / "half.safetensors")
    resumed = pyrnn.load(tmp_path / "half.safetensors")
    resumed.fit(x, y, epochs=2, batch_size=16, verbose=0)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert straight.history.history["loss"] == resumed.history.history["loss"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoints_are_refused(tmp_path, damage):
    path = tmp_path / "m.safetensors"
    _model().save(path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 17]
    else:
        data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated|corrupted|checksum"):
        pyrnn.load(path)


def test_crash_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    x, _ = _data(16)
    path = tmp_path / "m.safetensors"
    model = _model()
    model.save(path)
    before = model.predict(x)
    for p in model.parameters():
        p += 1.0

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        model.save(path)
    monkeypatch.undo()
    np.testing.assert_array_equal(pyrnn.load(path).predict(x), before)
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_functional_model_round_trip(tmp_path):
    src, tgt = pyrnn.Input(), pyrnn.Input()
    _, (h, c) = pyrnn.LSTM(2, 4, seed=0)(src)
    y, _ = pyrnn.LSTM(2, 4, seed=1)(tgt, initial_state=(h, c))
    model = pyrnn.Model([src, tgt], Dense(4, 2, seed=2)(y))
    model.save(tmp_path / "f.safetensors", include_optimizer=False)
    xs = [np.ones((1, 3, 2), np.float32), np.ones((1, 2, 2), np.float32)]
    np.testing.assert_array_equal(pyrnn.load(tmp_path / "f.safetensors").predict(xs), model.predict(xs))


def test_an_integer_tensor_where_the_architecture_has_a_float_parameter_is_refused(tmp_path):
    from pyrnn.checkpoint import CheckpointError, save_checkpoint

    model = pyrnn.Sequential([pyrnn.Dense(2, 3, seed=0)])
    weights = {k: v.astype(np.int32) if k == "0.weight" else v for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path / "m.safetensors", weights=weights, config={"model": model.get_config(), "compile": None})
    with pytest.raises(CheckpointError, match=r"state_dict\['0.weight'\]: expected a floating-point array, got dtype int32"):
        pyrnn.load(tmp_path / "m.safetensors")
