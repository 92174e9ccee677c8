"""Encoder-decoder (seq2seq) on a translation-like task: reverse digit strings ("3141" -> "1413").
Trained with teacher forcing (the decoder reads the true previous digit), run free at inference
(it reads its own); compared with the same model trained on its own outputs.

    python examples/seq2seq.py [--quick]
"""

import argparse

import pyrnn
from pyrnn.tasks import DIGIT_VOCAB_SIZE, Seq2Seq, digits_to_str, reverse_digits_dataset


def main(quick=False):
    train, test = reverse_digits_dataset(2000, 3, 6, seed=0), reverse_digits_dataset(500, 3, 6, seed=1)
    epochs = 1 if quick else 4
    results = {}
    for how in ("teacher forcing", "own outputs"):
        s2s = Seq2Seq(DIGIT_VOCAB_SIZE, DIGIT_VOCAB_SIZE, emb=16, hidden=64, seed=0)
        s2s.compile("adam", "cross_entropy", lr=1e-2, clip_norm=1.0)
        fit = s2s.fit_teacher_forcing if how == "teacher forcing" else s2s.fit_free_running
        fit(*train, epochs=epochs, batch_size=32, seed=0)
        results[how] = s2s.accuracy(*test)
        print(f"trained with {how:15s}: free-running exact match {results[how]['exact']:.3f}, per token {results[how]['token']:.3f}")
    out = s2s.translate(test.src[:3], max_len=8, src_lengths=test.src_lengths[:3])
    for s, o in zip(digits_to_str(test.src[:3]), digits_to_str(out)):
        print(f"  {s} -> {o}")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one epoch")
    main(ap.parse_args().quick)
