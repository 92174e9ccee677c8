"""Dense, Embedding, Dropout: finite-difference gradients, PyTorch parity, init, dropout
statistics and reproducibility (seeds, eval, resumed generator state), configs, bad input."""

import json

import numpy as np
import pytest

from pyrnn.grad_mode import forward_scope, no_grad
from pyrnn.layers.dense import Dense, Dropout, Embedding, column_sums

from gradcheck import check_layer_grads


def _normal(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _config_round_trip(layer):
    return type(layer)(**json.loads(json.dumps(layer.get_config())))


# ---------------------------------------------------------------------- Dense
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4), (2, 1, 3, 4)], ids=lambda s: f"{len(s)}-D")
@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradients_match_finite_differences(shape, bias):
    layer = Dense(4, 3, bias=bias, dtype=np.float64, seed=0)
    assert sorted(layer.params) == (["bias", "weight"] if bias else ["weight"])
    check_layer_grads(layer, (_normal(shape),))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_matches_torch_linear(dtype, tol, bias):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mod = torch.nn.Linear(7, 5, bias=bias).to(torch.float64 if dtype == np.float64 else torch.float32)
    layer = Dense(7, 5, bias=bias, dtype=dtype)
    sd = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in layer.state_dict().items()}
    layer.load_state_dict(sd)
    x, dy = _normal((3, 4, 7), dtype, 1), _normal((3, 4, 5), dtype, 2)
    y = layer.forward(x)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = mod(tx)
    (ty * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tol, atol=tol)
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(layer.grads[name], p.grad.numpy(), rtol=tol, atol=tol, err_msg=name)
    assert y.dtype == dx.dtype == dtype


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-13)])
def test_dense_products_agree_on_every_backend_and_thread_count(dtype, tol):
    """The cpp backend's team GEMM (pyrnn._C.matmul) gives NumPy's products to rounding, and the same bits on
    one thread and on a team (shapes of several blocks: LeNet's 400 -> 120 on a batch of 64)."""
    import pyrnn

    from helpers import cpp_team

    layer = Dense(400, 120, dtype=dtype, seed=3)
    x, dy = _normal((64, 400), dtype, seed=4), _normal((64, 120), dtype, seed=5)
    got = {}
    runs = [("numpy", None)] + ([("cpp", 1), ("cpp", 2)] if "cpp" in pyrnn.available_backends() else [])
    for backend, threads in runs:
        layer.zero_grad()
        with pyrnn.use_backend(backend):
            if threads is None:
                y = layer.forward(x)
                dx = layer.backward(dy)
            else:
                with cpp_team(threads):
                    y = layer.forward(x)
                    dx = layer.backward(dy)
        got[backend, threads] = y, dx, layer.grads["weight"].copy(), layer.grads["bias"].copy()
    if ("cpp", 1) not in got:
        pytest.skip("the cpp backend is not built")
    for a, b in zip(got["cpp", 1], got["cpp", 2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got["cpp", 1], got["numpy", None]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())



def test_dense_backward_runs_on_its_forwards_backend(monkeypatch):
    """As every layer: a backward switched to another backend after the forward still runs on the forward's
    (here the cpp team GEMM, pyrnn._C.matmul, is the witness: it must not run for a NumPy forward, and must
    for a cpp one)."""
    import pyrnn

    if "cpp" not in pyrnn.available_backends():
        pytest.skip("the cpp backend is not built")
    from pyrnn import _C

    calls = []
    matmul = _C.matmul
    monkeypatch.setattr(_C, "matmul", lambda *a: (calls.append(1), matmul(*a))[1])
    layer = Dense(40, 12, seed=3)
    x, dy = _normal((8, 40), np.float32, seed=4), _normal((8, 12), np.float32, seed=5)
    for forward, backward, products in (("numpy", "cpp", 0), ("cpp", "numpy", 2)):  # cpp: dW and dx
        calls.clear()
        with pyrnn.use_backend(forward):
            y = layer.forward(x)
        calls.clear()
        with pyrnn.use_backend(backward):
            dx = layer.backward(dy)
        assert len(calls) == products, (forward, backward, calls)
        np.testing.assert_allclose(dx, dy @ layer.params["weight"], rtol=1e-5, atol=1e-6)
        assert y.shape == (8, 12)

def test_dense_init_is_torchs_uniform_and_seeded():
    layer = Dense(64, 32, seed=3)
    bound = 1 / np.sqrt(64)
    for name, shape in (("weight", (32, 64)), ("bias", (32,))):
        p = layer.params[name]
        assert p.shape == shape and p.dtype == np.float32
        assert np.all(np.abs(p) <= bound) and p.max() > 0.8 * bound and p.min() < -0.8 * bound
    again, other = Dense(64, 32, seed=3), Dense(64, 32, seed=4)
    assert np.array_equal(layer.params["weight"], again.params["weight"])
    assert not np.array_equal(layer.params["weight"], other.params["weight"])


def test_dense_casts_input_and_accumulates_grads():
    layer = Dense(3, 2, dtype=np.float64, seed=0)
    x, dy = _normal((5, 3), np.float32), _normal((5, 2), np.float32)
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert y.dtype == dx.dtype == np.float64
    once = {k: g.copy() for k, g in layer.grads.items()}
    layer.forward(x)
    layer.backward(dy)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-12)
    layer.zero_grad()
    assert not any(g.any() for g in layer.grads.values())


def test_dense_shared_weights_backward_in_reverse_order():
    """Two forwards then two backwards (a layer used twice in one hand-written graph call,
    marked by forward_scope): each backward consumes its own forward."""
    layer = Dense(3, 2, dtype=np.float64, seed=0)
    a, b = _normal((4, 3), seed=1), _normal((6, 3), seed=2)
    with forward_scope():
        layer.forward(a)
        layer.forward(b)
    dxb = layer.backward(np.ones((6, 2)))
    dxa = layer.backward(np.ones((4, 2)))
    assert dxb.shape == (6, 3) and dxa.shape == (4, 3)
    np.testing.assert_allclose(layer.grads["weight"], np.ones((2, 10)) @ np.concatenate([a, b]), rtol=1e-12)


def test_dense_empty_batch():
    layer = Dense(3, 2)
    y = layer.forward(np.zeros((0, 5, 3), np.float32))
    assert y.shape == (0, 5, 2)
    assert layer.backward(np.zeros((0, 5, 2), np.float32)).shape == (0, 5, 3)


# ------------------------------------------------------------------ Embedding
@pytest.mark.parametrize("shape", [(5000, 3), (7, 1), (0, 4), (1, 9)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_sums_are_the_sums_over_rows(shape, dtype):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    got = column_sums(a)
    assert got.shape == (shape[1],) and got.dtype == dtype
    np.testing.assert_allclose(got, a.astype(np.float64).sum(axis=0), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)


def test_embedding_gradient_matches_finite_differences_with_repeated_indices():
    layer = Embedding(6, 3, dtype=np.float64, seed=0)
    idx = np.array([[1, 4, 1], [0, 1, 5]])
    check_layer_grads(layer, (idx,))
    layer.zero_grad()
    layer.forward(idx)
    layer.backward(np.ones((2, 3, 3)))
    np.testing.assert_array_equal(layer.grads["weight"][:, 0], [1, 3, 0, 0, 1, 1])  # counts of each row


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-6)], ids=["float64", "float32"])
def test_embedding_matches_torch(dtype, tol):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mod = torch.nn.Embedding(10, 4).to(torch.float64 if dtype == np.float64 else torch.float32)
    layer = Embedding(10, 4, dtype=dtype)
    layer.load_state_dict({k: v.detach().numpy() for k, v in mod.state_dict().items()})
    idx = np.random.default_rng(0).integers(0, 10, (5, 7))
    idx[0, :3] = 2  # repeated indices
    dy = _normal((5, 7, 4), dtype, 1)
    y = layer.forward(idx)
    assert layer.backward(dy) is None
    ty = mod(torch.tensor(idx))
    (ty * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.grads["weight"], mod.weight.grad.numpy(), rtol=tol, atol=tol)


def test_embedding_any_index_shape_and_init():
    layer = Embedding(200, 50, seed=0)
    w = layer.params["weight"]
    assert w.shape == (200, 50) and w.dtype == np.float32
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05  # N(0, 1): 10^4 draws
    with no_grad():
        assert layer.forward(np.int32(7)).shape == (50,)
        np.testing.assert_array_equal(layer.forward(np.uint8(7)), w[7])
        np.testing.assert_array_equal(layer.forward([[3], [5]]), w[[[3], [5]]])
        assert layer.forward(np.zeros((0, 4), np.int64)).shape == (0, 4, 50)
    assert not np.array_equal(w, Embedding(200, 50, seed=1).params["weight"])


def test_embedding_saves_a_copy_of_the_indices():
    layer = Embedding(5, 2, dtype=np.float64, seed=0)
    idx = np.array([0, 1])
    layer.forward(idx)
    idx[:] = 4  # a reused index buffer
    layer.backward(np.ones((2, 2)))
    np.testing.assert_array_equal(layer.grads["weight"][:, 0], [1, 1, 0, 0, 0])


@pytest.mark.parametrize(
    "indices, exc, pattern",
    [
        (np.array([0, 10]), ValueError, r"indices: expected values in \[0, 10\) \(num_embeddings\), got 10"),
        (np.array([[-1, 3]]), ValueError, r"indices: expected values in \[0, 10\) \(num_embeddings\), got -1"),
        (np.array([1.0, 2.0]), TypeError, r"indices: expected an integer array, got dtype float64"),
        (np.array([True]), TypeError, r"indices: expected an integer array, got dtype bool"),
    ],
    ids=["too-big", "negative", "float", "bool"],
)
def test_embedding_bad_indices_are_named(indices, exc, pattern):
    with pytest.raises(exc, match=pattern):
        Embedding(10, 3).forward(indices)


# -------------------------------------------------------------------- Dropout
def test_dropout_statistics_and_scale():
    p = 0.3
    x = np.full((400, 500), 2.0, np.float32)
    y = Dropout(p, seed=0).forward(x)
    assert y.dtype == np.float32
    dropped = np.mean(y == 0)
    sigma = np.sqrt(p * (1 - p) / x.size)
    assert abs(dropped - p) < 5 * sigma
    np.testing.assert_allclose(y[y != 0], 2.0 / (1 - p), rtol=1e-6)  # inverted dropout: kept values scaled
    assert abs(y.mean() - 2.0) < 5 * 2.0 * np.sqrt(p / (1 - p) / x.size)  # the mean is preserved


def test_dropout_backward_uses_the_forward_mask():
    layer = Dropout(0.5, seed=1)
    x = _normal((6, 7)) + 10  # no zeros in x
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, y / x, rtol=1e-12)
    state = layer.rng_state()  # finite differences with the generator rewound before each forward
    check_layer_grads(layer, (x,), forward=lambda x: (layer.set_rng_state(state), layer.forward(x))[1])


def test_dropout_equal_seeds_are_reproducible_and_other_seeds_differ():
    x = np.ones((50, 60))
    a, b, c = Dropout(0.5, seed=7), Dropout(0.5, seed=7), Dropout(0.5, seed=8)
    with no_grad():  # training mode (masks drawn), nothing kept for a backward
        for _ in range(3):  # the whole stream, not just the first mask
            ya = a.forward(x)
            np.testing.assert_array_equal(ya, b.forward(x))
            assert not np.array_equal(ya, c.forward(x))
        assert not np.array_equal(a.forward(x), a.forward(x))  # a new mask per call


def test_dropout_eval_is_the_identity_and_p0_too():
    x = _normal((4, 5))
    layer = Dropout(0.9, seed=0).eval()
    assert layer.forward(x) is x
    dy = _normal((4, 5), seed=1)
    np.testing.assert_array_equal(layer.backward(dy), dy)
    layer.train()
    assert (layer.forward(x) == 0).any()
    np.testing.assert_array_equal(Dropout(0.0).forward(x), x)


@no_grad()  # training-mode masks, nothing kept for a backward
def test_dropout_resumes_bit_for_bit_from_its_rng_state():
    x = np.ones((30, 40), np.float32)
    first = Dropout(0.4, seed=11)
    for _ in range(2):
        first.forward(x)
    state = json.loads(json.dumps(first.rng_state()))  # as stored in a checkpoint
    want = [first.forward(x) for _ in range(3)]
    resumed = _config_round_trip(first)
    resumed.set_rng_state(state)
    for w in want:
        np.testing.assert_array_equal(resumed.forward(x), w)
    unseeded = Dropout(0.4)  # an unseeded layer resumes too
    unseeded.set_rng_state(state)
    np.testing.assert_array_equal(unseeded.forward(x), want[0])


@pytest.mark.parametrize(
    "state, pattern",
    [
        ({"bit_generator": "MT19937", "state": {}}, r"state: expected a PCG64 generator state from rng_state\(\), got 'MT19937'"),
        ([1, 2], r"state: expected a PCG64 generator state from rng_state\(\), got 'list'"),
        ({"bit_generator": "PCG64", "state": {"state": 1}}, r"state: expected a PCG64 generator state .*malformed"),
    ],
    ids=["other-generator", "not-a-dict", "malformed"],
)
def test_dropout_bad_rng_state_is_named_and_changes_nothing(state, pattern):
    layer = Dropout(0.5, seed=0)
    before = layer.rng_state()
    with pytest.raises(ValueError, match=pattern):
        layer.set_rng_state(state)
    assert layer.rng_state() == before


@pytest.mark.parametrize("p, exc", [(1.0, ValueError), (-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                                    (True, TypeError), ("0.5", TypeError)])
def test_dropout_bad_p_is_named(p, exc):
    with pytest.raises(exc, match=r"p: expected a (finite number in \[0, 1\)|real number), got"):
        Dropout(p)


# -------------------------------------------------- configs, no_grad, bad input
@pytest.mark.parametrize(
    "make",
    [lambda: Dense(3, 4, bias=False, dtype=np.float64, seed=2), lambda: Dense(3, 4), lambda: Embedding(7, 2, dtype=np.float64, seed=1),
     lambda: Dropout(0.25, seed=5)],
    ids=["dense", "dense-unseeded", "embedding", "dropout"],
)
def test_config_round_trips_through_json(make):
    layer = make()
    again = _config_round_trip(layer)
    assert again.get_config() == layer.get_config() and repr(again) == repr(layer)
    assert again.dtype == layer.dtype
    if layer.seed is not None:  # seeded: the same init
        for k in layer.params:
            np.testing.assert_array_equal(again.params[k], layer.params[k])


@pytest.mark.parametrize(
    "layer, x, dy",
    [(Dense(3, 2), np.ones((4, 3)), np.ones((4, 2))), (Embedding(5, 2), np.array([1, 2]), np.ones((2, 2))),
     (Dropout(0.5), np.ones((2, 2)), np.ones((2, 2)))],
    ids=["dense", "embedding", "dropout"],
)
def test_no_grad_saves_nothing(layer, x, dy):
    with no_grad():
        layer.forward(x)
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.backward: expected a forward\(\) first"):
        layer.backward(dy)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: Dense(4, 3).forward(np.ones((2, 5))), ValueError, r"x: expected in_features=4 features in the last axis, got shape \(2, 5\)"),
        (lambda: Dense(4, 3).forward(np.float64(1.0)), ValueError, r"x: expected in_features=4 .*got shape \(\)"),
        (lambda: Dense(4, 3).forward(np.ones((2, 4), np.int32)), TypeError, r"x: expected a floating-point array \(float32\), got dtype int32"),
        (lambda: Dense(0, 3), ValueError, r"in_features: expected an integer >= 1, got 0"),
        (lambda: Dense(4, 2.0), TypeError, r"out_features: expected an integer, got float 2.0"),
        (lambda: Dense(4, 3, dtype=np.float16), TypeError, r"dtype: expected float32, float64 or 'bfloat16', got float16"),
        (lambda: Dense(4, 3, seed=1.5), TypeError, r"seed: expected an integer, got float 1.5"),
        (lambda: Embedding(10, 0), ValueError, r"embedding_dim: expected an integer >= 1, got 0"),
        (lambda: Dropout(0.5, seed=-1), ValueError, r"seed: expected an integer >= 0, got -1"),
    ],
    ids=["features", "0-D", "int-dtype", "in_features", "out_features", "dtype", "seed", "embedding_dim", "dropout-seed"],
)
def test_bad_input_is_named(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_bad_dy_is_named():
    dense, emb = Dense(4, 3), Embedding(5, 2)
    dense.forward(np.ones((2, 6, 4), np.float32))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 6, 3\) \(\.\.\., out_features\) of the last forward, got \(2, 6, 4\)"):
        dense.backward(np.ones((2, 6, 4)))
    emb.forward(np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match=r"dy: expected shape \(1, 3, 2\) \(\.\.\., embedding_dim\) of the last forward, got \(3, 2\)"):
        emb.backward(np.ones((3, 2)))
    assert dense.backward(np.ones((2, 6, 3))).shape == (2, 6, 4)  # the failed calls consumed nothing
    assert emb.backward(np.ones((1, 3, 2))) is None


# ------------------------------------------------------------------- dtype="bfloat16" (mixed precision)
@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_dense_bfloat16_products_within_the_bf16_bound(backend):
    """y = bf(x) bf(W)^T + b, dx = bf(dy) bf(W), dW = bf(dy)^T bf(x) with float32 sums, db = sum dy unrounded:
    each within c_K |A||B| of the exact float64 product (pyrnn.backends.bfloat16), and visibly rounded; the
    cpp backend's compiled bf16 GEMM and NumPy's emulation alike."""
    import pyrnn
    from pyrnn.backends.bfloat16 import matmul_error_bound, round_bf16

    if backend not in pyrnn.available_backends():
        pytest.skip(f"backend {backend!r} unavailable")
    layer = Dense(37, 21, dtype="bfloat16", seed=0)
    assert layer.get_config()["dtype"] == "bfloat16" and _config_round_trip(layer).bfloat16
    assert layer.params["weight"].dtype == np.float32
    x, dy = _normal((3, 5, 37), seed=1), _normal((3, 5, 21), seed=2)
    with pyrnn.use_backend(backend):
        with forward_scope():
            y = layer.forward(x)
        dx = layer.backward(dy)
    assert y.dtype == dx.dtype == layer.grads["weight"].dtype == np.float32
    w, b = layer.params["weight"].astype(np.float64), layer.params["bias"].astype(np.float64)
    x2, dy2 = x.reshape(-1, 37), dy.reshape(-1, 21)
    for got, a, bm, exact in [(y.reshape(-1, 21) - layer.params["bias"], x2, w.T, x2 @ w.T),
                              (dx.reshape(-1, 37), dy2, w, dy2 @ w),
                              (layer.grads["weight"], dy2.T, x2, dy2.T @ x2)]:
        bound = matmul_error_bound(a, bm) + 2.0**-24 * np.abs(b).max() * 2  # y: the float32 bias add and its removal
        assert (np.abs(got - exact) <= bound).all()
        assert np.abs(got - exact).max() > 50 * 2.0**-24 * np.abs(exact).max()  # rounded, not float32
    np.testing.assert_allclose(layer.grads["bias"], dy2.astype(np.float32).sum(0), rtol=1e-5, atol=1e-5)
    assert not np.array_equal(round_bf16(dy2).sum(0), dy2.astype(np.float32).sum(0))  # the unrounded sum, checked


def test_only_layers_with_a_bf16_path_take_it():
    with pytest.raises(TypeError, match=r"dtype: expected float32 or float64, got 'bfloat16' \(bfloat16 is offered by"):
        Embedding(5, 3, dtype="bfloat16")
