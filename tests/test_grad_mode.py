"""Grad mode, inference() and the top-level forward scope are per thread; predict/evaluate change
no model state; a training forward never followed by backward does not accumulate."""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import pyrnn
from pyrnn.grad_mode import forward_scope, in_inference, inference, is_grad_enabled, no_grad
from pyrnn.layers import Dense, Dropout, LastStep
from pyrnn.layers.base import UnconsumedForwardWarning


def _run_threads(*targets):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_no_grad_and_inference_are_per_thread():
    seen = {}
    inside, leave = threading.Event(), threading.Event()

    def other():
        with inference():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    seen["grad"], seen["inference"] = is_grad_enabled(), in_inference()  # the other thread is inside
    leave.set()
    t.join()
    assert seen == {"grad": True, "inference": False}
    with no_grad():
        assert not is_grad_enabled() and not in_inference()
        with inference():
            assert in_inference() and not is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_inference_turns_dropout_off_without_touching_the_layer():
    layer = Dropout(0.5, seed=0)
    x = np.ones((20, 30))
    with inference():
        np.testing.assert_array_equal(layer.forward(x), x)
    assert layer.training and not layer._saved_stack
    with no_grad():  # no_grad alone keeps training behaviour
        assert (layer.forward(x) == 0).any()


def _model(seed, dropout=0.3):
    model = pyrnn.Sequential([pyrnn.GRU(3, 8, seed=seed, num_layers=2, dropout=dropout), LastStep(), Dense(8, 1, seed=seed + 1)])
    return model.compile(optimizer="adam", loss="mse", lr=1e-2)


def _data(seed, n=64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12, 3)).astype(np.float32)
    return x, x.sum(axis=(1, 2))[:, None].astype(np.float32)


def test_predict_beside_training_on_another_model_in_another_thread():
    """Regression: grad mode was one process-wide flag, so predict in one thread made the other
    thread's training forward keep nothing ('MSELoss.backward: expected a forward() first')."""
    pyrnn.set_num_threads(1)
    try:
        trained, other = _model(0), _model(10)
        x, y = _data(1)
        want = other.predict(x)

        def train():
            for _ in range(15):
                trained.zero_grad()
                out = trained.forward(x)
                trained.loss.forward(out, y)
                trained.backward(trained.loss.backward())
                trained.optimizer.step()

        def infer():
            for _ in range(60):
                np.testing.assert_array_equal(other.predict(x), want)

        _run_threads(train, infer, infer)
        assert all(layer.training for layer in trained.layers + other.layers)
    finally:
        pyrnn.set_num_threads(None)


def test_concurrent_predicts_on_one_model_leave_it_in_train_mode():
    """Regression: predict flipped layer.training and restored it, so concurrent predicts on one
    model could leave it in eval mode (and a concurrent fit without dropout)."""
    model = _model(0, dropout=0.5)
    x, _ = _data(2)
    with inference():
        want = model.forward(x)

    def infer():
        for _ in range(40):
            np.testing.assert_array_equal(model.predict(x, batch_size=16), want)

    _run_threads(infer, infer, infer)
    assert all(layer.training for layer in model.layers)


def test_a_new_top_level_forward_releases_an_unconsumed_one():
    layer = pyrnn.LSTM(3, 4, seed=0)
    x = np.ones((2, 5, 3), np.float32)
    layer.forward(x)
    with pytest.warns(UnconsumedForwardWarning, match="LSTM: a training-mode forward was never followed by backward"):
        y, _ = layer.forward(2 * x)
    assert len(layer._saved_stack) == 1
    layer.forward(3 * x)  # warned once per layer: no second warning (warnings are errors here)
    assert len(layer._saved_stack) == 1
    dx, _ = layer.backward(np.ones_like(y))  # consumes the latest forward
    assert dx.shape == x.shape and not layer._saved_stack


def test_a_layer_shared_inside_one_graph_call_still_stacks():
    shared = Dense(3, 3, dtype=np.float64, seed=0)
    inp = pyrnn.Input()
    model = pyrnn.Model(inp, shared(shared(inp)))
    x = np.random.default_rng(0).standard_normal((4, 3))
    y = model.forward(x)
    assert len(shared._saved_stack) == 2
    model.backward(np.ones_like(y))
    assert not shared._saved_stack
    w, b, dy = shared.params["weight"], shared.params["bias"], np.ones((4, 3))
    y1 = x @ w.T + b  # dW = dy^T y1 (outer call) + (dy W)^T x (inner call)
    np.testing.assert_allclose(shared.grads["weight"], dy.T @ y1 + (dy @ w).T @ x, rtol=1e-12)
    with forward_scope():  # a hand-written graph call: the same rule
        shared.forward(x)
        shared.forward(x)
    assert len(shared._saved_stack) == 2
    shared.clear_saved()


def test_forwards_without_backward_do_not_grow_memory():
    """Regression: `for _ in range(1000): model(x)` kept 1,000 caches (+2.8 GB at B=32 T=100 H=32)."""
    code = textwrap.dedent("""
        import resource, warnings
        import numpy as np, pyrnn
        warnings.simplefilter("ignore")
        model = pyrnn.Sequential([pyrnn.LSTM(8, 32, seed=0), pyrnn.layers.LastStep(), pyrnn.Dense(32, 1, seed=1)])
        x = np.ones((32, 100, 8), np.float32)
        def rss():
            return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
        for _ in range(5):
            model(x)
        before = rss()
        for _ in range(300):
            model(x)
        print(rss() - before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    grown = int(out.stdout.split()[-1])
    # each cache is ~1.6 MB (gates, c, tanh c, h over T=100, B=32, H=32): 300 kept would be ~500 MB
    assert grown < 50, f"RSS grew by {grown} MB over 300 forwards without backward"


# ------------------------------------------- issue 13, point 1: PyTorch's habit of a validation forward
def _issue_scenario_model():
    return pyrnn.Sequential([pyrnn.GRU(3, 4, dtype=np.float64, seed=0), LastStep(), Dense(4, 1, dtype=np.float64, seed=1)])


def _issue_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5, 3)), rng.standard_normal((6, 1)), rng.standard_normal((6, 5, 3))


def _clean_gradients(model, x, y):
    loss = pyrnn.losses.MSELoss()
    model.zero_grad()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    return {k: g.copy() for k, g in zip(dict(model.named_parameters()), (g for _, g in model.param_grad_pairs()))}


def test_a_validation_forward_between_forward_and_backward_raises_every_time_not_wrong_gradients():
    """The issue's exact scenario: out = m.forward(xtr); loss.forward(out, y); m.forward(xval);
    m.backward(loss.backward()) used the validation forward's cache (gradients off by 0.017).
    Now the validation forward warns (once per layer) and the backward raises, on every iteration."""
    model, loss = _issue_scenario_model(), pyrnn.losses.MSELoss()
    xtr, y, xval = _issue_data()
    for it in range(2):
        out = model.forward(xtr)
        loss.forward(out, y)
        if it == 0:
            with pytest.warns(UnconsumedForwardWarning, match="a training-mode forward was never followed"):
                model.forward(xval)
        else:
            model.forward(xval)  # warned once per layer already: no warning, but still no silent error
        with pytest.raises(RuntimeError, match=r"Sequential|GRU|Dense") as err:
            model.backward(loss.backward())
        assert "a later training-mode forward ran before this backward and replaced it" in str(err.value)
        assert "pyrnn.no_grad()" in str(err.value)
        model.clear_saved()


def _eval_no_grad(model, x):
    with no_grad():
        model.forward(x)


@pytest.mark.parametrize("evaluate", [_eval_no_grad, lambda m, x: m.predict(x), lambda m, x: m.evaluate(x, np.zeros((6, 1)))],
                         ids=["no_grad", "predict", "evaluate"])
def test_the_same_loop_evaluating_without_saving_gives_the_training_forwards_gradients(evaluate):
    xtr, y, xval = _issue_data()
    want = _clean_gradients(_issue_scenario_model(), xtr, y)
    model, loss = _issue_scenario_model().compile("sgd", "mse"), pyrnn.losses.MSELoss()
    model.zero_grad()
    loss.forward(model.forward(xtr), y)
    evaluate(model, xval)
    model.backward(loss.backward())
    got = {k: g.copy() for k, (_, g) in zip(dict(model.named_parameters()), model.param_grad_pairs())}
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_a_direct_layer_forward_between_loss_and_backward_raises_too():
    layer, loss = pyrnn.LSTM(3, 4, dtype=np.float64, seed=0), pyrnn.losses.MSELoss()
    xtr, _, xval = _issue_data()
    out, _ = layer.forward(xtr)
    loss.forward(out, np.zeros_like(out))
    with pytest.warns(UnconsumedForwardWarning):
        layer.forward(xval)
    with pytest.raises(RuntimeError, match="LSTM.backward: the gradient comes from a loss computed on the output of an earlier"):
        layer.backward(loss.backward())


def test_two_models_trained_in_one_loop_are_not_mistaken_for_the_scenario():
    """A loss on an older forward's output is fine when that forward's layers were not run again."""
    a, b = _issue_scenario_model(), pyrnn.Sequential([Dense(3, 1, dtype=np.float64, seed=2)])
    la, lb = pyrnn.losses.MSELoss(), pyrnn.losses.MSELoss()
    xtr, y, _ = _issue_data()
    out_a = a.forward(xtr)
    out_b = b.forward(xtr[:, 0])
    la.forward(out_a, y)
    lb.forward(out_b, y)
    a.backward(la.backward())
    b.backward(lb.backward())
    assert not any(layer._saved_stack for layer in a.layers + b.layers)
