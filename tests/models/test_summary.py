"""model.summary() (Keras' table), readable reprs of layers and models, and the functional API's hint
when a recurrent layer's (y, state) tuple is passed on whole (issue 13, point 5)."""

import pytest

import pyrnn
from pyrnn.layers import Conv1D, Dense, LastStep


def _forecaster():
    return pyrnn.Sequential([Conv1D(1, 16, 5, padding="causal", seed=0), pyrnn.GRU(16, 32, seed=1), LastStep(),
                             Dense(32, 1, seed=2)])


def test_summary_lists_layers_output_shapes_and_parameter_counts():
    model = _forecaster()
    text = model.summary(input_shape=(50, 1), print_fn=None)
    lines = text.splitlines()
    assert lines[0] == 'Model: "Sequential"'
    assert lines[1].split() == ["Layer", "(type)", "Output", "shape", "Param", "#"]
    conv, gru, last, dense = (line.split() for line in lines[3:7])
    # parameters by hand: Conv1D 16*1*5 + 16; GRU 3*32*(16 + 32) + 2*3*32; Dense 32 + 1
    assert conv == ["0:", "Conv1D", "(None,", "50,", "16)", "96"]
    assert gru[:5] == ["1:", "GRU", "(None,", "50,", "32)"] and gru[-1] == "4,800" and "state" in gru
    assert last == ["2:", "LastStep", "(None,", "32)", "0"]
    assert dense == ["3:", "Dense", "(None,", "1)", "33"]
    assert "Total params: 4,929 (19.3 KB)" in text and "Trainable params: 4,929" in text
    assert sum(p.size for p in model.parameters()) == 4929
    assert not any(layer._saved_stack for layer in model.layers)  # the shape pass kept nothing


def test_summary_prints_and_works_without_shapes(capsys):
    text = _forecaster().summary()
    assert capsys.readouterr().out.strip() == text
    assert text.count(" ? ") + text.count("?  ") >= 4 and "pass input_shape=" in text


def test_summary_of_a_functional_model_takes_the_input_shapes():
    inp = pyrnn.Input((7, 3))
    y, h = pyrnn.GRU(3, 4, seed=0)(inp)
    model = pyrnn.Model(inp, Dense(4, 2, seed=1)(LastStep()(y)))
    text = model.summary(print_fn=None)
    assert 'Model: "Model"' in text and "(None, 7, 4) + state (1, 1, 4)" in text and "(None, 2)" in text


def test_reprs_are_readable():
    model = _forecaster()
    assert repr(model).splitlines() == [
        "Sequential(",
        f"  (0): {model.layers[0]!r}",
        "  (1): GRU(16, 32, num_layers=1, bidirectional=False, bias=True, dtype=float32)",
        "  (2): LastStep()",
        f"  (3): {model.layers[3]!r}",
        ")",
    ]
    assert repr(model.layers[3]).startswith("Dense(in_features=32, out_features=1")
    assert repr(pyrnn.Sequential()) == "Sequential()"

    class Custom(pyrnn.layers.Layer):  # no get_config: the default repr still says what it is
        def forward(self, x):
            return x

    assert repr(Custom()) == "Custom()"


@pytest.mark.parametrize("cls, state", [(pyrnn.GRU, "state"), (pyrnn.LSTM, r"\(h, c\)")])
def test_passing_a_recurrent_layers_tuple_on_says_unpack_it(cls, state):
    inp = pyrnn.Input((5, 3))
    out = cls(3, 4, seed=0)(inp)
    with pytest.raises(TypeError, match=rf"LastStep: got the tuple \(y, {state}\) that {cls.__name__} returns as input 0; "
                                        rf"unpack it: `y, {state} = {cls.__name__}\(...\)\(x\)`"):
        LastStep()(out)
    y, _ = out
    LastStep()(y)  # unpacked: fine
