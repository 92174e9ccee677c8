"""Long sequences: truncated BPTT equals full BPTT when k1 = k2 = T and a PyTorch TBPTT loop
otherwise; it needs a fraction of full BPTT's peak memory on a long sequence; stateful
streaming (``step``, ``stream``) equals one forward over the whole sequence."""

import tracemalloc

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Dense, TimeDistributed
from pyrnn.layers.dilated import Dilated
from pyrnn.models.tbptt import fit_tbptt, peak_memory_of, recurrent_model, stream

from helpers import LastFinite, assert_weights_are


def _cls(cell):
    return {"lstm": pyrnn.LSTM, "gru": pyrnn.GRU, "rnn": pyrnn.RNN}[cell]


def _problem(N, T, F=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, F))
    y = np.zeros((N, T, 1))
    y[:, 2:, 0] = x[:, :-2, 0] * x[:, 1:-1, 1]  # depends on the past: the recurrence matters
    return x, y


# ------------------------------------------------------- k1 = k2 = T: full BPTT
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("clip_norm, batch_size", [(None, 4), (0.05, 2)])
def test_k1_equal_k2_equal_T_is_full_bptt_bit_for_bit(cell, clip_norm, batch_size):
    x, y = _problem(4, 13)
    full = pyrnn.Sequential([_cls(cell)(2, 5, dtype=np.float64, seed=1), TimeDistributed(Dense(5, 1, dtype=np.float64, seed=2))])
    full.compile("sgd", "mse", lr=0.5, clip_norm=clip_norm)
    full.fit(x, y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    model = recurrent_model(_cls(cell)(2, 5, dtype=np.float64, seed=1), Dense(5, 1, dtype=np.float64, seed=2))
    model.compile("sgd", "mse", lr=0.5, clip_norm=clip_norm)
    history = fit_tbptt(model, x, y, k1=13, batch_size=batch_size)
    assert list(model.state_dict()) == list(full.state_dict())
    for (name, a), b in zip(model.state_dict().items(), full.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert history.history["loss"] == pytest.approx(full.history.history["loss"], rel=1e-14)
    assert history.history["grad_norm"] == pytest.approx(full.history.history["grad_norm"], rel=1e-14)
    assert model.epochs_done == 1


# ----------------------------------------------------- k1 < k2: a torch TBPTT loop
def _torch_tbptt(model, x, y, k1, k2, lr):
    """Williams & Peng with torch autograd: each window runs from the detached state saved k2 steps
    back, as two pieces so that the state at the next window's start falls out of this window's forward."""
    torch = pytest.importorskip("torch")
    sd = model.state_dict()
    H = sd["0.weight_hh_l0"].shape[1]
    lstm = torch.nn.LSTM(x.shape[2], H, batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(H, 1, dtype=torch.float64)
    lstm.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in sd.items() if k.startswith("0.")})
    head.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in sd.items() if k.startswith("1.")})
    opt = torch.optim.SGD(list(lstm.parameters()) + list(head.parameters()), lr=lr)
    X, Y, T = torch.from_numpy(x), torch.from_numpy(y), x.shape[1]
    ends = list(range(k1, T, k1)) + [T]
    zeros = torch.zeros(1, x.shape[0], H, dtype=torch.float64)
    saved, losses = (zeros, zeros), []
    for i, t in enumerate(ends):
        t_prev, s = (ends[i - 1] if i else 0), max(0, t - k2)
        s_next = max(0, ends[i + 1] - k2) if i + 1 < len(ends) else t
        outs, state = [], saved
        if s_next > s:
            out, state = lstm(X[:, s:s_next], state)
            outs.append(out)
        mid = state
        if t > s_next:
            out, state = lstm(X[:, s_next:t], state)
            outs.append(out)
        pred = head(torch.cat(outs, dim=1)[:, -(t - t_prev):])
        loss = torch.nn.functional.mse_loss(pred, Y[:, t_prev:t])
        opt.zero_grad()
        loss.backward()
        opt.step()
        saved = tuple(s_.detach() for s_ in mid)
        losses.append((loss.item(), t - t_prev))
    weights = {f"0.{k}": v.detach().numpy() for k, v in lstm.state_dict().items()}
    weights.update({f"1.{k}": v.detach().numpy() for k, v in head.state_dict().items()})
    return weights, sum(v * n for v, n in losses) / T


@pytest.mark.parametrize("k1, k2", [(4, 7), (4, 4), (5, 15), (3, 40), (23, 30)])
def test_truncated_bptt_matches_a_torch_tbptt_loop(k1, k2):
    x, y = _problem(3, 23, seed=1)
    model = recurrent_model(pyrnn.LSTM(2, 4, dtype=np.float64, seed=3), Dense(4, 1, dtype=np.float64, seed=4))
    model.compile("sgd", "mse", lr=0.3)
    want, want_loss = _torch_tbptt(model, x, y, k1, k2, lr=0.3)
    history = fit_tbptt(model, x, y, k1=k1, k2=k2)
    for name, a in model.state_dict().items():
        np.testing.assert_allclose(a, want[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert history.history["loss"][0] == pytest.approx(want_loss, rel=1e-10)


def test_truncation_stops_the_gradient_at_the_window_start():
    """With k1 = k2 = 5 the second update's gradient is that of the second window's loss alone, with
    the state carried in from the first window held constant (no path back into x[:, :5])."""
    x, y = _problem(2, 10, seed=2)
    model = recurrent_model(pyrnn.GRU(2, 3, dtype=np.float64, seed=5), Dense(3, 1, dtype=np.float64, seed=6))
    model.compile("sgd", "mse", lr=0.0)  # lr 0: both windows see the same weights
    grads = []

    class Spy:  # records the gradient at every optimizer step
        lr = 0.0

        def step(self):
            grads.append([g.copy() for _, g in model.param_grad_pairs()])

    model.optimizer = Spy()
    fit_tbptt(model, x, y, k1=5)
    assert len(grads) == 2
    with pyrnn.no_grad():
        _, h5 = model.forward(x[:, :5], None)
        window2 = model.forward(x[:, 5:], h5)
    model.zero_grad()
    model.forward(x[:, 5:], h5)
    loss = pyrnn.losses.MSELoss()
    loss.forward(window2[0], y[:, 5:])
    model.backward(loss.backward(), None)
    for g, (_, want) in zip(grads[1], model.param_grad_pairs()):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-14)


def test_tbptt_learns_a_long_sequence():
    x, y = _problem(4, 1200, seed=3)
    x, y = x.astype(np.float32), y.astype(np.float32)
    model = recurrent_model(pyrnn.LSTM(2, 16, seed=7), Dense(16, 1, seed=8))
    model.compile("adam", "mse", lr=1e-2, clip_norm=1.0)
    history = fit_tbptt(model, x, y, k1=40, k2=60, epochs=3)
    loss = history.history["loss"]
    assert len(loss) == 3 and model.epochs_done == 3
    assert loss[-1] < 0.3 * loss[0]


# ------------------------------------------------------------------ peak memory
def test_tbptt_peak_memory_is_a_fraction_of_full_bptt():
    """T = 5000, B = 4, H = 64 LSTM: full BPTT keeps every step's gates and states (T*B*6H float32 =
    31 MB: the four gates, c_t and h_t); TBPTT(100, 100) keeps 100 steps at a time."""
    T, B, H = 5000, 4, 64
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, T, 1)).astype(np.float32)
    y = np.roll(x, 3, axis=1)

    def train(k):
        model = recurrent_model(pyrnn.LSTM(1, H, seed=0), Dense(H, 1, seed=1))
        model.compile("sgd", "mse", lr=0.01)
        fit_tbptt(model, x, y, k1=k, k2=k)

    full, truncated = peak_memory_of(train, T), peak_memory_of(train, 100)
    assert full > T * B * 6 * H * 4  # the measurement sees the kernels' caches (NumPy arrays)
    assert truncated < 0.3 * full


def test_peak_memory_of_measures_what_a_function_allocates():
    assert not tracemalloc.is_tracing()
    peak = peak_memory_of(lambda n: np.ones(n).sum(), 10**6)
    assert 8 * 10**6 <= peak < 9 * 10**6
    assert not tracemalloc.is_tracing()
    keep = np.ones(10**6)  # allocated before: not counted
    assert peak_memory_of(lambda: keep.sum()) < 10**5


# ------------------------------------------------------------------ streaming
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_step_by_step_streaming_over_a_long_sequence_equals_the_full_forward(cell):
    layer = _cls(cell)(3, 8, num_layers=2, dtype=np.float64, seed=9)
    x = np.random.default_rng(5).standard_normal((2, 1000, 3))
    with pyrnn.no_grad():
        y, final = layer.forward(x)
    state, ys = None, []
    with pyrnn.no_grad():  # step() keeps what a backward would need unless gradients are off
        for t in range(x.shape[1]):
            y_t, state = layer.step(x[:, t], state)
            ys.append(y_t)
    np.testing.assert_allclose(np.stack(ys, axis=1), y, rtol=1e-12, atol=1e-14)
    for a, b in zip(final if isinstance(final, tuple) else [final], state if isinstance(state, tuple) else [state]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    assert not layer._saved_stack


def _chunks(x, sizes):
    start = 0
    for n in sizes:
        yield x[:, start] if n == 0 else x[:, start : start + n]  # 0: one 2-D step
        start += max(n, 1)


def test_stream_of_a_model_over_uneven_chunks_equals_the_full_forward():
    model = recurrent_model(pyrnn.LSTM(3, 6, dtype=np.float64, seed=10, dropout=0.0), Dense(6, 2, dtype=np.float64, seed=11))
    x = np.random.default_rng(6).standard_normal((2, 300, 3))
    y, h, c = model.predict([x, np.zeros((1, 2, 6)), np.zeros((1, 2, 6))])
    sizes = [1, 0, 7, 100, 0, 0, 41, 149]  # 300 steps
    outs, state = [], None
    for out, state in stream(model, _chunks(x, sizes)):  # noqa: B007 - the last state is checked below
        outs.append(out if out.ndim == 3 else out[:, None])
    np.testing.assert_allclose(np.concatenate(outs, axis=1), y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[0], h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[1], c, rtol=1e-12, atol=1e-14)
    assert all(layer.training and not layer._saved_stack for layer in model.layers)


def test_stream_of_a_layer_runs_in_eval_mode_and_continues_a_state():
    layer = pyrnn.GRU(2, 4, num_layers=2, dropout=0.5, dtype=np.float64, seed=12)
    x = np.random.default_rng(7).standard_normal((3, 50, 2))
    h0 = np.random.default_rng(8).standard_normal((2, 3, 4))
    layer.eval()
    with pyrnn.no_grad():
        y, h = layer.forward(x, h0)
    layer.train()
    outs = [out for out, _ in stream(layer, _chunks(x, [20, 0, 29]), state=h0)]
    got = np.concatenate([o if o.ndim == 3 else o[:, None] for o in outs], axis=1)
    np.testing.assert_allclose(got, y, rtol=1e-12, atol=1e-14)
    assert layer.training


# ------------------------------------------------------------------ bad input
def test_bad_arguments_are_named():
    x, y = _problem(2, 10)
    model = recurrent_model(pyrnn.GRU(2, 3, dtype=np.float64), Dense(3, 1, dtype=np.float64))
    with pytest.raises(ValueError, match="fit_tbptt: expected a compiled model"):
        fit_tbptt(model, x, y, k1=5)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="k2: expected at least k1=5 .*, got 3"):
        fit_tbptt(model, x, y, k1=5, k2=3)
    with pytest.raises(ValueError, match="k1: expected an integer >= 1, got 0"):
        fit_tbptt(model, x, y, k1=0)
    with pytest.raises(ValueError, match=r"y: expected shape \(2, 10, ...\) \(samples, time\) as x, got \(2, 9, 1\)"):
        fit_tbptt(model, x, y[:, :9], k1=5)
    with pytest.raises(ValueError, match=r"x: expected a 3-D array \(samples, time, features\), got 2-D"):
        fit_tbptt(model, x[:, :, 0], y, k1=5)
    bad = x.copy()
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"x: expected finite values, got nan at index \(1, 3, 0\)"):
        fit_tbptt(model, bad, y, k1=5)
    seq = pyrnn.Sequential([pyrnn.GRU(2, 3)]).compile("sgd", "mse")
    with pytest.raises(TypeError, match="model: expected a functional pyrnn.Model .*, got Sequential"):
        fit_tbptt(seq, x, y, k1=5)
    inp = pyrnn.Input()
    one_output = pyrnn.Model(inp, pyrnn.GRU(2, 3)(inp)[0]).compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"model: expected inputs \[x, \*initial_state\] .*, got 1 inputs and 1 outputs"):
        fit_tbptt(one_output, x, y, k1=5)
    with pytest.raises(TypeError, match="layer: expected an RNN, LSTM, GRU or Dilated layer, got Dense"):
        recurrent_model(Dense(2, 3))
    with pytest.raises(ValueError, match="expected a unidirectional layer"):
        next(stream(pyrnn.GRU(2, 3, bidirectional=True), [x]))
    with pytest.raises(ValueError, match="expected dilation 1"):
        next(stream(Dilated(pyrnn.GRU(2, 3), 2), [x]))


# ------------------------------------------------------------ the fit loop: callbacks, validation
class _Hooks:
    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def on_train_begin(self):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs):
        self.calls.append(("batch_end", batch, sorted(logs)))
        if batch == self.stop_at:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self):
        self.calls.append(("train_end",))


def _gru_model(seed=5):
    model = recurrent_model(pyrnn.GRU(2, 3, dtype=np.float64, seed=seed), Dense(3, 1, dtype=np.float64, seed=seed + 1))
    return model.compile("adam", "mse", lr=0.01, metrics=["mae"])


def test_fit_tbptt_has_fits_callbacks_validation_and_verbose(capsys):
    x, y = _problem(4, 20)
    vx, vy = _problem(3, 17, seed=9)
    plain = _gru_model()
    fit_tbptt(plain, x, y, k1=5, k2=7, epochs=2, batch_size=2)
    model, hooks = _gru_model(), _Hooks()
    history = fit_tbptt(model, x, y, k1=5, k2=7, epochs=2, batch_size=2, validation_data=(vx, vy),
                        callbacks=[hooks], verbose=2)
    per_epoch = lambda e: [("epoch_begin", e), *[("batch_end", b, ["grad_norm", "loss"]) for b in range(8)],
                           ("epoch_end", e, ["grad_norm", "loss", "lr", "mae", "val_loss", "val_mae"])]
    assert hooks.calls == [("train_begin",), *per_epoch(0), *per_epoch(1), ("train_end",)]  # 2 batches x 4 windows
    assert hooks.model is model and model.epochs_done == 2
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "val_loss:" in out
    # validation neither perturbs training nor depends on the chunks: the state runs over the whole sequence
    for name, value in plain.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)
    assert history.history["loss"] == plain.history.history["loss"]
    with pyrnn.no_grad():
        pred = model.forward(vx, None)[0]
    assert history.history["val_loss"][-1] == pytest.approx(np.mean((pred - vy) ** 2), rel=1e-12)
    assert history.history["val_mae"][-1] == pytest.approx(np.mean(np.abs(pred - vy)), rel=1e-12)
    assert all(layer.training for layer in model.layers)


def test_fit_tbptt_stops_after_the_window_a_callback_stops_at():
    x, y = _problem(2, 20)
    model, hooks = _gru_model(), _Hooks(stop_at=2)
    steps = []
    optimizer_step = model.optimizer.step
    model.optimizer.step = lambda: (steps.append(1), optimizer_step())
    fit_tbptt(model, x, y, k1=5, epochs=3, callbacks=[hooks])
    assert len(steps) == 3 and model.epochs_done == 1
    assert hooks.calls[-2][0] == "epoch_end" and hooks.calls[-1] == ("train_end",)


def test_fit_tbptt_shuffles_the_samples_over_the_batches_with_a_seed():
    x, y = _problem(6, 10)

    def run(**kwargs):
        model = _gru_model()
        fit_tbptt(model, x, y, k1=5, epochs=2, batch_size=2, **kwargs)
        return model.state_dict()

    a, b, ordered = run(shuffle=True, seed=3), run(shuffle=True, seed=3), run()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], ordered[k]) for k in a)


def test_stream_uses_the_inference_context_and_touches_no_layer():
    from pyrnn import grad_mode

    model = recurrent_model(pyrnn.GRU(2, 3, dtype=np.float64, seed=1), Dense(3, 1, dtype=np.float64, seed=2))
    layer, seen = model.layers[1], []
    forward = layer.forward
    layer.forward = lambda *a, **k: (seen.append((layer.training, grad_mode.in_inference())), forward(*a, **k))[1]
    list(stream(model, [np.zeros((1, 4, 2)), np.zeros((1, 2))]))
    assert seen == [(True, True)] * 2


# ------------------------------------------------------------ divergence
def _relu_model_with_a_poisoned_window():
    """x[0, 6] = 3e38 (finite) times input weights 10 overflows a relu unit to inf in float32:
    window 1 of k1 = 4 (steps 4..7) diverges, window 0 is finite."""
    x, y = _problem(2, 12, seed=4)
    x, y = x.astype(np.float32), y.astype(np.float32)
    x[0, 6] = 3e38
    model = recurrent_model(pyrnn.RNN(2, 3, nonlinearity="relu", seed=1), Dense(3, 1, seed=2))
    model.compile("sgd", "mse", lr=0.01)
    state = model.state_dict()
    state["0.weight_ih_l0"] = np.full_like(state["0.weight_ih_l0"], 10.0)
    model.load_state_dict(state)
    return model, x, y


def test_a_diverging_window_is_skipped_and_terminate_on_nan_ends_fit_tbptt_cleanly():
    model, x, y = _relu_model_with_a_poisoned_window()
    spy, stop = LastFinite(), pyrnn.callbacks.TerminateOnNaN()
    with np.errstate(all="ignore"):
        history = fit_tbptt(model, x, y, k1=4, epochs=2, callbacks=[spy, stop])
    assert len(spy.logs) == 2 and np.isnan(spy.logs[1]["loss"]) and stop.stopped_at == 1
    assert model.epochs_done == 1 and np.isnan(history.history["loss"][0])
    assert_weights_are(model, spy.weights)


def test_a_diverging_fit_tbptt_raises_floating_point_error():
    model, x, y = _relu_model_with_a_poisoned_window()
    spy = LastFinite()
    with np.errstate(all="ignore"), pytest.raises(
            FloatingPointError, match=r"fit_tbptt: non-finite loss nan at epoch 1/2, window 2/3; .*"
            r"the weights are those after the last finite step\. callbacks\.TerminateOnNaN\(\) stops"):
        fit_tbptt(model, x, y, k1=4, epochs=2, callbacks=[spy])
    assert_weights_are(model, spy.weights)


def test_an_infinite_gradient_norm_skips_the_window_too():
    """Head weights of 1e30 (set after window 0) keep the loss finite in float64 but overflow
    the float32 gradients: window 1 is not applied."""
    x, y = _problem(2, 12, seed=4)
    x, y = x.astype(np.float32), y.astype(np.float32)
    model = recurrent_model(pyrnn.GRU(2, 3, seed=1), Dense(3, 1, seed=2)).compile("sgd", "mse", lr=0.01)

    class Blow:
        def on_batch_end(self, batch, logs):
            if batch == 0:
                model.layers[-1].layer.params["weight"][...] = 1e30

    spy = LastFinite()
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=r"non-finite gradient norm (nan|inf) \(loss "):
        fit_tbptt(model, x, y, k1=4, callbacks=[Blow(), spy])
    assert np.isfinite(spy.logs[1]["loss"]) and not np.isfinite(spy.logs[1]["grad_norm"])
    assert_weights_are(model, spy.weights)
