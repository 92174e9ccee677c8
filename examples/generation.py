"""One-to-many generation: a decoder turns one vector into a sequence (captioning-style: the
vector stands for an image's features), decoded greedily and by sampling; and a character-level
language model that learns the next character of a text, then writes. Writes generation.png
(the training curves) when matplotlib is installed.

    python examples/generation.py [--quick]
"""

import argparse

import numpy as np

import pyrnn
from pyrnn.plots import save_lines
from pyrnn.tasks import CharLanguageModel, SequenceDecoder

START, END = 0, 1


def captions(quick):
    """Each of 8 'image' classes has its own 6-token caption; the decoder sees a noisy feature vector."""
    rng = np.random.default_rng(0)
    V, n_cls, T = 12, 8, 6
    table = rng.integers(2, V, (n_cls, T - 1))
    caption = np.concatenate([table, np.full((n_cls, 1), END)], axis=1)             # (8, 6), ends with END
    centers = rng.standard_normal((n_cls, 16)).astype(np.float32)
    cls = rng.integers(0, n_cls, 1200)
    vectors = centers[cls] + 0.3 * rng.standard_normal((1200, 16)).astype(np.float32)
    dec = SequenceDecoder(16, V, embedding_dim=8, hidden=48, start_token=START, end_token=END, seed=0)
    dec.compile("adam", "cross_entropy", lr=1e-2, clip_norm=1.0)
    h = dec.fit_teacher_forcing(vectors[:1000], caption[cls[:1000]], epochs=2 if quick else 20, batch_size=32, seed=0, verbose=0)
    greedy = dec.generate(vectors[1000:], max_len=T)
    exact = np.mean([np.array_equal(g[: T], c) for g, c in zip(greedy, caption[cls[1000:]])])
    sampled = dec.generate(vectors[1000:1003], max_len=T, greedy=False, temperature=0.8, seed=1)
    print(f"captioning decoder: greedy decoding reproduces {exact:.3f} of 200 held-out captions exactly")
    print(f"  sampled (T=0.8): {sampled.tolist()}  true: {caption[cls[1000:1003]].tolist()}")
    return h.history["loss"]


def char_lm(quick):
    text = pyrnn.datasets.load_text("gettysburg")
    lm = CharLanguageModel(text, hidden=96, seed=0).compile("adam", "cross_entropy", lr=1e-2, clip_norm=1.0)
    before = lm.loss_on(text)
    h = lm.fit_text(text, seq_len=48, epochs=2 if quick else 30, batch_size=16, seed=0, verbose=0)
    print(f"char LM on the Gettysburg Address: loss {before:.2f} -> {lm.loss_on(text):.2f} nats/char "
          f"(uniform {np.log(lm.vocab_size):.2f})")
    print("  generated:", repr("Four score" + lm.generate("Four score", 120, temperature=0.5, seed=0)))
    return h.history["loss"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a couple of epochs")
    quick = ap.parse_args().quick
    curves = {"captioning decoder": captions(quick), "char LM": char_lm(quick)}
    save_lines("generation.png", curves, title="Training loss (cross-entropy, nats per token)", xlabel="epoch", ylabel="loss")
