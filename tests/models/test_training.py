"""fit / evaluate / predict: learning tests that can fail, callbacks, history, determinism, bad inputs."""

import numpy as np
import pytest

import pyrnn
from pyrnn.callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint, TerminateOnNaN
from pyrnn.layers import Dense, Dropout, LastStep

from helpers import LastFinite, assert_weights_are


def _sum_task(n=384, T=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, T, 1)).astype(np.float32)
    return x, x.sum(axis=(1, 2))[:, None] / np.sqrt(T / 3)  # U(-1, 1) has variance 1/3: a unit-variance target


def _regressor(seed=0, hidden=16):
    return pyrnn.Sequential([pyrnn.GRU(1, hidden, seed=seed), LastStep(), Dense(hidden, 1, seed=seed + 1)])


# -------------------------------------------------------------- learning
def test_gru_learns_the_sum_of_a_sequence():
    x, y = _sum_task()
    model = _regressor().compile("adam", "mse", lr=0.01, metrics=["mae"])
    before = model.evaluate(x, y)["loss"]
    history = model.fit(x, y, epochs=25, batch_size=32, seed=0, verbose=0, validation_split=0.25)
    after = model.evaluate(x[-96:], y[-96:])
    assert before > 0.5 and after["loss"] < 0.02, (before, after)  # the target has unit variance
    assert history.history["val_loss"][-1] < 0.02 and history.history["loss"][-1] < history.history["loss"][0]


def test_lstm_classifies_sequence_parity():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, (512, 6))
    x = bits[:, :, None].astype(np.float32)
    y = bits.sum(axis=1) % 2  # parity: the answer depends on every step
    model = pyrnn.Sequential([pyrnn.LSTM(1, 24, seed=2), LastStep(), Dense(24, 2, seed=3)])
    model.compile("adam", "cross_entropy", lr=0.02, metrics=["accuracy"])
    model.fit(x[:384], y[:384], epochs=40, batch_size=32, seed=1, verbose=0)
    acc = model.evaluate(x[384:], y[384:])["accuracy"]
    assert acc > 0.95, acc


def _marked_token_task(n, T, seed):
    """Channel 0 carries a random +-1 token at EVERY step; channel 1 marks step 0.
    The label is the marked token: it must be carried across the T-1 distractors."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, T, 2), np.float32)
    x[:, :, 0] = rng.choice([-1.0, 1.0], (n, T))
    x[:, 0, 1] = 1.0
    return x, (x[:, 0, 0] > 0).astype(np.int64)


def _accuracy_after_training(layer, seed, T=50, n=2048):
    x, y = _marked_token_task(n + 256, T, seed)
    model = pyrnn.Sequential([layer, LastStep(), Dense(16, 2, seed=seed + 20)])
    model.compile("adam", "cross_entropy", lr=0.01, metrics=["accuracy"], clip_norm=1.0)
    model.fit(x[:n], y[:n], epochs=20, batch_size=32, seed=seed, verbose=0)
    return model.evaluate(x[n:], y[n:])["accuracy"]


def test_lstm_remembers_the_first_token_over_50_steps_where_a_vanilla_rnn_does_not():
    """The vanishing-gradient lesson of the course notes, as a test that can fail both ways:
    same size (H = 16), same data, optimizer and budget, three seeds each. The LSTM uses a
    forget-gate bias of 3 at init (its gate starts open, so gradient flows 50 steps back);
    with PyTorch's default init it does not find the solution within this budget either."""
    seeds = (1, 2, 3)
    lstm = [_accuracy_after_training(pyrnn.LSTM(2, 16, seed=s + 10, forget_bias=3.0), s) for s in seeds]
    rnn = [_accuracy_after_training(pyrnn.RNN(2, 16, seed=s + 10), s) for s in seeds]
    assert min(lstm) > 0.95, lstm
    assert np.mean(rnn) < 0.8, rnn  # it solves at most one seed of three


def test_forget_bias_init():
    layer = pyrnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0, forget_bias=1.0)
    plain = pyrnn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)
    for name, value in layer.params.items():
        diff = value - plain.params[name]
        want = np.zeros_like(diff)
        if name.startswith("bias_ih"):
            want[4:8] = 1.0
        np.testing.assert_allclose(diff, want, atol=1e-6, err_msg=name)
    assert pyrnn.LSTM(**layer.get_config()).forget_bias == 1.0
    with pytest.raises(ValueError, match="forget_bias: expected 0 for a layer without biases"):
        pyrnn.LSTM(3, 4, bias=False, forget_bias=1.0)


# -------------------------------------------------------------- history, callbacks
def test_history_has_losses_metrics_grad_norm_and_lr():
    x, y = _sum_task(128)
    model = _regressor().compile("sgd", "mse", lr=0.05, metrics=["mae", "rmse"], clip_norm=0.5)
    h = model.fit(x, y, epochs=3, batch_size=32, verbose=0, validation_data=(x[:32], y[:32]))
    for key in ("loss", "mae", "rmse", "grad_norm", "lr", "val_loss", "val_mae", "val_rmse"):
        assert len(h.history[key]) == 3, key
    assert h.epoch == [0, 1, 2] and model.epochs_done == 3
    assert all(np.isfinite(h.history["grad_norm"]))


def test_early_stopping_restores_the_best_weights():
    x, y = _sum_task(128)
    model = _regressor().compile("sgd", "mse", lr=0.05)
    seen = {}

    class Spy:
        def on_epoch_end(self, epoch, logs):
            seen[epoch] = (logs["val_loss"], model.state_dict())

    stop = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    lr_up = LearningRateScheduler(lambda epoch, lr: lr * 3)  # diverges: val_loss stops improving
    model.fit(x, y, epochs=30, batch_size=32, verbose=0, validation_split=0.25, callbacks=[Spy(), lr_up, stop])
    assert stop.stopped_epoch is not None and model.epochs_done < 30
    best = min(seen, key=lambda e: seen[e][0])
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, seen[best][1][k])


def test_terminate_on_nan_and_checkpoint_callback(tmp_path):
    x, y = _sum_task(64)
    model = _regressor().compile("sgd", "mse", lr=1e6)
    stop = TerminateOnNaN()
    ckpt = ModelCheckpoint(tmp_path / "m-{epoch}.safetensors", monitor="loss")
    with np.errstate(all="ignore"):
        model.fit(x, y, epochs=20, batch_size=16, verbose=0, callbacks=[stop, ckpt])
    assert stop.stopped_at is not None and model.epochs_done < 20
    assert ckpt.saved and all(pyrnn.load(p) is not None for p in ckpt.saved[:1])


def test_validation_split_is_the_tail_before_shuffling():
    x, y = _sum_task(100)
    model = _regressor().compile("sgd", "mse", lr=0.01)
    h = model.fit(x, y, epochs=1, batch_size=10, verbose=0, validation_split=0.2)
    assert h.history["val_loss"][0] == pytest.approx(model.evaluate(x[80:], y[80:])["loss"], rel=1e-6)


def test_verbose_modes(capsys):
    x, y = _sum_task(64)
    model = _regressor().compile("adam", "mse")
    model.fit(x, y, epochs=2, batch_size=32, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "loss:" in out
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert capsys.readouterr().out == ""


# -------------------------------------------------------------- determinism
def test_same_seed_gives_bitwise_identical_weights():
    x, y = _sum_task(128)

    def run():
        model = pyrnn.Sequential([pyrnn.LSTM(1, 8, seed=3, num_layers=2, dropout=0.2), LastStep(),
                                  Dropout(0.1, seed=4), Dense(8, 1, seed=5)])
        model.compile("adamw", "huber", lr=0.01)
        model.fit(x, y, epochs=3, batch_size=16, seed=7, verbose=0)
        return model.state_dict()

    a, b = run(), run()
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("backend", pyrnn.available_backends())
def test_weights_do_not_depend_on_the_thread_count_with_a_partial_last_batch(backend):
    """Issue 13, point 8: N = 500, batch 64 (a last batch of 52 x 30 steps = 1560 rows to sum over,
    not a multiple of 32) gave weights differing by up to 3e-8 between 1 and 2 BLAS threads."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 30, 4)).astype(np.float32)
    y = rng.standard_normal((500, 1)).astype(np.float32)

    def run(threads):
        pyrnn.set_num_threads(threads)
        model = pyrnn.Sequential([pyrnn.layers.Conv1D(4, 16, 5, padding="causal", seed=0), pyrnn.GRU(16, 32, seed=1),
                                  pyrnn.LSTM(32, 32, seed=3), LastStep(), Dense(32, 1, seed=2)])
        model.compile("adam", "mse", lr=1e-3)
        with pyrnn.use_backend(backend):
            model.fit(x, y, epochs=2, batch_size=64, seed=0, verbose=0)
        return model.state_dict()

    try:
        one, two = run(1), run(2)
    finally:
        pyrnn.set_num_threads(None)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)


def test_predict_keeps_nothing_for_backward_and_matches_forward():
    x, _ = _sum_task(70)
    model = _regressor()
    p = model.predict(x, batch_size=32)
    assert p.shape == (70, 1)
    assert all(not layer._saved_stack for layer in model.layers)
    with pyrnn.no_grad():
        np.testing.assert_allclose(p, model.forward(x), rtol=1e-6)


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda m, x, y: m.fit(x, y[:-1], verbose=0), ValueError, r"y: expected 64 samples \(as many as x\), got 63"),
        (lambda m, x, y: m.fit(x[:, :, [0, 0]], y, verbose=0), ValueError, r"x: expected input_size=1 .*got shape"),
        (lambda m, x, y: m.fit(np.where(np.arange(64)[:, None, None] == 5, np.nan, x), y, verbose=0), ValueError,
         r"x: expected finite values, got nan at index \(5, 0, 0\)"),
        (lambda m, x, y: m.fit(x, np.full_like(y, np.inf), verbose=0), ValueError, r"y: expected finite values, got inf"),
        (lambda m, x, y: m.compile("adagrad", "mse"), ValueError, r"adagrad"),
        (lambda m, x, y: m.compile("adam", "hinge"), ValueError, r"hinge"),
        (lambda m, x, y: m.fit(x, y, epochs=0, verbose=0), ValueError, r"epochs: expected an integer >= 1, got 0"),
        (lambda m, x, y: m.predict(x[:, :, [0, 0]]), ValueError, r"x: expected input_size=1"),
        (lambda m, x, y: m.predict(x.astype(object)), TypeError, r"x\[0\]: expected a numeric array, got dtype object"),
    ],
    ids=["len-mismatch", "features", "nan-x", "inf-y", "optimizer", "loss", "epochs", "predict-features", "predict-object"],
)
def test_bad_fit_and_predict_inputs_are_named(call, exc, pattern):
    x, y = _sum_task(64)
    model = _regressor().compile("adam", "mse")
    with pytest.raises(exc, match=pattern):
        call(model, x, y)


def test_fit_needs_compile():
    x, y = _sum_task(8)
    with pytest.raises(ValueError, match="expected a compiled model"):
        _regressor().fit(x, y, verbose=0)


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    x = np.random.default_rng(0).standard_normal((64, 5, 1)).astype(np.float32)
    model = pyrnn.Sequential([pyrnn.GRU(1, 4, seed=0), LastStep(), Dense(4, 1, seed=1)]).compile("adam", "mse")
    model.fit(x, x.sum(axis=(1, 2))[:, None], epochs=2, batch_size=16, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "4/4" in err and "loss" in err


# -------------------------------------------------------------- one loop, public-internal helpers
def test_modules_use_the_training_helpers_public_names_only():
    """What other modules import from models/training.py has no leading underscore (its module
    docstring lists that public-internal API), and the old private names are gone."""
    import ast
    import pathlib

    from pyrnn.models import training

    root = pathlib.Path(training.__file__).parents[1]
    bad = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("training"):
                bad += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not bad, bad
    for name in ("History", "as_input_list", "as_target_list", "check_data", "batch_forward_kwargs", "forward_loss",
                 "metric_values", "train_step", "WeightedMeans", "run_epochs"):
        assert name in training.__all__ and f"`{name}`" in training.__doc__, name
    assert not hasattr(training, "_train_batch") and not hasattr(training, "_check_data")


def _spy_forward(layer, seen):
    """Record, at every forward of ``layer``, its training flag and the thread's grad/inference mode."""
    from pyrnn import grad_mode

    forward = layer.forward

    def spy(*args, **kwargs):
        seen.append((layer.training, grad_mode.in_inference(), grad_mode.is_grad_enabled()))
        return forward(*args, **kwargs)

    layer.forward = spy


def test_evaluate_and_the_dry_run_use_the_inference_context_and_touch_no_layer():
    x, y = _sum_task(64)
    model = _regressor().compile("sgd", "mse", lr=0.01)
    seen = []
    _spy_forward(model.layers[0], seen)
    model.evaluate(x, y, batch_size=32)
    assert seen == [(True, True, False)] * 2  # the flag untouched, the thread in inference mode
    seen.clear()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, validation_data=(x[:16], y[:16]))
    assert seen[0] == (True, True, False)  # the dry run
    assert seen[1:3] == [(True, False, True)] * 2  # the two training batches
    assert seen[3:] == [(True, True, False)]  # validation
    assert all(layer.training for layer in model.layers)


def test_the_dry_run_runs_once_for_fits_on_samples_of_the_same_shapes():
    """One ``fit`` per batch (online learning, the adding-problem benchmark) pays the dry run once; samples of
    another shape, another loss or new layers run it again, and a wrong target is still refused."""
    x, y = _sum_task(64)
    model = _regressor().compile("sgd", "mse", lr=0.01)
    seen = []
    _spy_forward(model.layers[0], seen)
    dry = (True, True, False)
    model.fit(x[:32], y[:32], epochs=1, batch_size=32, verbose=0)
    model.fit(x[32:], y[32:], epochs=1, batch_size=32, verbose=0)
    assert seen.count(dry) == 1 and len(seen) == 3
    model.fit(x[:, :3], y, epochs=1, batch_size=64, verbose=0)  # shorter sequences: checked again
    assert seen.count(dry) == 2
    with pytest.raises(ValueError, match="y"):  # the kept answer still checks the targets
        model.fit(x[:, :3], y[:, :0], epochs=1, batch_size=64, verbose=0)
    assert seen.count(dry) == 2
    model.compile("sgd", "mae", lr=0.01)  # another loss: checked again
    model.fit(x[:, :3], y, epochs=1, batch_size=64, verbose=0)
    assert seen.count(dry) == 3


# -------------------------------------------------------------- divergence
def _dense_with_a_poisoned_batch():
    """Dense(1, 1), weight 10: sample 5 (x = 3e38, finite) predicts inf in float32, so batch 2
    (batch_size 2, no shuffle) diverges while batches 0 and 1 are finite."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1)).astype(np.float32)
    y = 2 * x
    x[5] = 3e38
    model = pyrnn.Sequential([Dense(1, 1, seed=0)]).compile("sgd", "mse", lr=0.01)
    model.load_state_dict({"0.weight": np.full((1, 1), 10.0, np.float32), "0.bias": np.zeros(1, np.float32)})
    return model, x, y


def test_a_diverging_batch_is_skipped_and_terminate_on_nan_ends_fit_cleanly():
    model, x, y = _dense_with_a_poisoned_batch()
    spy, stop = LastFinite(), TerminateOnNaN()
    with np.errstate(all="ignore"):
        history = model.fit(x, y, epochs=3, batch_size=2, shuffle=False, verbose=0, callbacks=[spy, stop])
    assert [np.isfinite(logs["loss"]) for logs in spy.logs] == [True, True, False]  # on_batch_end saw the NaN
    assert stop.stopped_at == 2 and model.epochs_done == 1 and history.epoch == [0]
    assert np.isnan(history.history["loss"][0])
    assert_weights_are(model, spy.weights)  # batch 2's step was not applied


def test_a_diverging_fit_without_terminate_on_nan_raises_floating_point_error():
    model, x, y = _dense_with_a_poisoned_batch()
    spy = LastFinite()
    with np.errstate(all="ignore"), pytest.raises(
            FloatingPointError, match=r"fit: non-finite loss nan at epoch 1/3, batch 3/4; its update was skipped .*"
            r"the weights are those after the last finite step\. callbacks\.TerminateOnNaN\(\) stops training "
            r"without this error"):
        model.fit(x, y, epochs=3, batch_size=2, shuffle=False, verbose=0, callbacks=[spy])
    assert_weights_are(model, spy.weights)
    assert model.epochs_done == 0


def test_a_huge_learning_rate_stops_at_the_last_finite_weights():
    x, y = _sum_task(64)
    model = _regressor().compile("sgd", "mse", lr=1e6)
    spy, stop = LastFinite(), TerminateOnNaN()
    with np.errstate(all="ignore"):
        model.fit(x, y, epochs=20, batch_size=16, verbose=0, callbacks=[spy, stop])
    assert stop.stopped_at is not None and model.epochs_done < 20
    assert_weights_are(model, spy.weights)


def test_evaluate_reports_nan_for_non_finite_predictions():
    model, x, y = _dense_with_a_poisoned_batch()
    with np.errstate(all="ignore"):
        assert np.isnan(model.evaluate(x, y)["loss"])
    assert np.isfinite(model.evaluate(x[:4], y[:4])["loss"])


# -------------------------------------------------------------- threads
@pytest.fixture
def one_kernel_thread():
    pyrnn.set_num_threads(1)  # bit-for-bit comparisons need single-threaded kernels
    try:
        yield
    finally:
        pyrnn.set_num_threads(None)  # the suite runs without a cap


def _run_threads(*fns):
    import threading

    errors, barrier = [], threading.Barrier(len(fns))

    def run(fn):
        try:
            barrier.wait()
            fn()
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _dropout_regressor(seed):
    return pyrnn.Sequential([pyrnn.GRU(1, 8, seed=seed), LastStep(), Dropout(0.2, seed=seed + 1),
                             Dense(8, 1, seed=seed + 2)]).compile("adam", "mse", lr=0.01)


def test_two_threads_fit_two_models_as_one_after_the_other(one_kernel_thread):
    x, y = _sum_task(160)

    def fit(model):
        model.fit(x, y, epochs=4, batch_size=8, seed=1, verbose=0, validation_split=0.25)

    alone = [_dropout_regressor(0), _dropout_regressor(10)]
    for model in alone:
        fit(model)
    together = [_dropout_regressor(0), _dropout_regressor(10)]
    _run_threads(*[lambda m=m: fit(m) for m in together])
    for a, b in zip(alone, together):
        assert a.history.history == b.history.history
        assert_weights_are(b, a.state_dict())
        assert all(layer.training for layer in b.layers)


def test_evaluate_in_one_thread_while_another_fits(one_kernel_thread):
    x, y = _sum_task(160)
    fitted, evaluated = _dropout_regressor(0), _regressor(10).compile("adam", "mse")
    want = evaluated.evaluate(x, y, batch_size=16)
    fitted_alone = _dropout_regressor(0)
    fitted_alone.fit(x, y, epochs=3, batch_size=8, seed=2, verbose=0, validation_split=0.25)
    got = []
    _run_threads(lambda: fitted.fit(x, y, epochs=3, batch_size=8, seed=2, verbose=0, validation_split=0.25),
                 lambda: got.extend(evaluated.evaluate(x, y, batch_size=16) for _ in range(30)))
    assert got == [want] * 30
    assert fitted.history.history == fitted_alone.history.history
    assert_weights_are(fitted, fitted_alone.state_dict())
    assert all(layer.training for layer in evaluated.layers)


# ------------------------------------------------ training skips the data's gradient (first layers)
def _param_grads(model):
    return {k: g.copy() for k, (_, g) in enumerate(model.param_grad_pairs())}


@pytest.mark.parametrize("backend", pyrnn.available_backends())
def test_input_grad_false_skips_only_the_first_layers_input_gradient(backend):
    """Sequential and functional models: backward(..., input_grad=False) gives every weight gradient of
    backward(...) (the first layers' backward_params: Conv2D, ConvTranspose2D, Dense) and returns None."""
    from pyrnn.layers import Conv2D, ConvTranspose2D, Dense, Flatten, ReLU

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 6, 2))
    seq = lambda first: pyrnn.Sequential([first, ReLU(), Flatten(), Dense(4 * 8 * 8 if isinstance(first, ConvTranspose2D) else 4 * 6 * 6, 5, dtype=np.float64, seed=2)])  # noqa: E731
    inp = pyrnn.Input()
    a, b = Conv2D(2, 3, 3, padding="same", dtype=np.float64, seed=3)(inp), Dense(2, 3, dtype=np.float64, seed=4)(inp)
    graph = pyrnn.Model(inp, pyrnn.layers.Add()(a, b))
    models = [seq(Conv2D(2, 4, 3, padding="same", dtype=np.float64, seed=1)),
              seq(ConvTranspose2D(2, 4, 3, dtype=np.float64, seed=1)), graph]
    for model in models:
        grads = {}
        for input_grad in (True, False):
            model.zero_grad()
            with pyrnn.use_backend(backend):
                y = model(x)
                dx = model.backward(np.cos(y), input_grad=input_grad)
            assert (dx is None) == (not input_grad), type(model).__name__
            grads[input_grad] = _param_grads(model)
        assert grads[True].keys() == grads[False].keys()
        for k in grads[True]:
            np.testing.assert_allclose(grads[False][k], grads[True][k], rtol=1e-12, atol=1e-12)


def test_backward_params_is_backward_without_the_input_gradient():
    from pyrnn.layers import Conv2D, Dense, ReLU

    rng = np.random.default_rng(1)
    for layer, x in [(Conv2D(3, 2, 2, dtype=np.float64, seed=0), rng.standard_normal((2, 4, 5, 3))),
                     (Dense(3, 2, dtype=np.float64, seed=0), rng.standard_normal((4, 3))),
                     (ReLU(), rng.standard_normal((4, 3)))]:  # the default: backward, its result dropped
        y = layer.forward(x)
        want_dx = layer.backward(np.sin(y))
        want = {k: g.copy() for k, g in layer.grads.items()}
        layer.zero_grad()
        layer.forward(x)
        assert layer.backward_params(np.sin(y)) is None and want_dx is not None
        for k in want:
            np.testing.assert_array_equal(layer.grads[k], want[k])


# ------------------------------------------------- Keras conveniences (issue 13, point 5)
def test_each_fit_returns_a_new_history_of_its_own_epochs():
    x, y = _sum_task(64)
    model = _regressor().compile("sgd", "mse", lr=0.05)
    first = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    second = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert second is not first
    assert first.epoch == [0, 1] and len(first.history["loss"]) == 2  # untouched by the second fit
    assert second.epoch == [2, 3, 4] and len(second.history["loss"]) == 3  # epochs keep counting, as Keras' initial_epoch
    assert model.history.epoch == [0, 1, 2, 3, 4]  # the model's record of all its training (kept in checkpoints)
    assert model.history.history["loss"] == first.history["loss"] + second.history["loss"]


def _stopping_run(restore, verbose=1):
    x, y = _sum_task(128)
    model = _regressor().compile("sgd", "mse", lr=0.05)
    stop = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=restore, verbose=verbose)
    lr_up = LearningRateScheduler(lambda epoch, lr: lr * 3)
    h = model.fit(x, y, epochs=30, batch_size=32, verbose=0, validation_split=0.25, callbacks=[lr_up, stop])
    return stop, h


def test_early_stopping_says_where_it_stopped_and_which_epoch_it_restored(capsys):
    stop, h = _stopping_run(restore=True)
    best = int(np.argmin(h.history["val_loss"])) + 1
    line = f"Early stopping: stopped at epoch {stop.stopped_epoch + 1}, restored epoch {best} (val_loss "
    assert stop.message.startswith(line) and stop.stopped_epoch + 1 == len(h.epoch)
    assert line in capsys.readouterr().out
    stop, _ = _stopping_run(restore=False, verbose=0)
    assert "best epoch" in stop.message and "restore_best_weights=True puts the best back" in stop.message
    assert capsys.readouterr().out == ""
