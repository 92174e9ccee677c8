"""Sequential models: the user's Conv1D + GRU stack, skip connections, bidirectional layers and
variable lengths, gradient-checked end to end (float64)."""

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Conv1D, Dense, FirstStep, LastStep, MaxPool1D, TimeDistributed

from gradcheck import check_model_grads


@pytest.mark.parametrize("backend", pyrnn.available_backends())
def test_conv1d_pool_gru_dense_gradients(backend):
    rng = np.random.default_rng(0)
    model = pyrnn.Sequential([
        Conv1D(2, 4, 3, padding="causal", dtype=np.float64, seed=0),
        MaxPool1D(2),
        pyrnn.GRU(4, 5, dtype=np.float64, seed=1),
        LastStep(),
        Dense(5, 2, dtype=np.float64, seed=2),
    ])
    with pyrnn.use_backend(backend):
        check_model_grads(model, [rng.standard_normal((3, 8, 2))], every=3)


def test_stacked_skip_bidirectional_with_lengths_gradients():
    rng = np.random.default_rng(1)
    model = pyrnn.Sequential([
        pyrnn.LSTM(3, 4, num_layers=3, bidirectional=True, skip=True, dtype=np.float64, seed=3),
        TimeDistributed(Dense(8, 2, dtype=np.float64, seed=4)),
    ])
    check_model_grads(model, [rng.standard_normal((3, 6, 3))], every=3, lengths=np.array([6, 3, 1]))


def test_last_and_first_step_summarise_a_bidirectional_layer():
    x = np.random.default_rng(2).standard_normal((2, 5, 3))
    gru = pyrnn.GRU(3, 4, bidirectional=True, dtype=np.float64, seed=5)
    y, h = gru.forward(x, lengths=[5, 3])
    np.testing.assert_allclose(LastStep().forward(y, np.array([5, 3]))[:, :4], h[0])   # forward half: last valid step
    np.testing.assert_allclose(FirstStep().forward(y)[:, 4:], h[1])                     # reverse half: t = 0


def test_sequential_config_round_trip():
    model = pyrnn.Sequential([Conv1D(1, 3, 3, padding="same", seed=0), pyrnn.GRU(3, 4, seed=1), LastStep(), Dense(4, 1, seed=2)])
    again = pyrnn.Sequential.from_config(model.get_config())
    again.load_state_dict(model.state_dict())
    x = np.random.default_rng(3).standard_normal((4, 7, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), again.predict(x))


@pytest.mark.parametrize("forward", ["none", "no_grad"])
def test_backward_without_a_forward_that_kept_anything_is_a_named_error(forward):
    """Like Model's (found by the API fuzz): an AttributeError '_extra_outputs' before."""
    model = pyrnn.Sequential([Dense(3, 2)])
    if forward == "no_grad":
        with pyrnn.no_grad():
            model.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"Sequential.backward: expected a forward\(\) with gradients on first, got none"):
        model.backward(np.zeros((4, 2)))
