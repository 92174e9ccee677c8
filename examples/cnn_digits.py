"""Image classification with three CNN families — LeNet, VGG (repeated conv-conv-pool blocks)
and ResNet (a block's input skips two layers and is added back) — on the bundled 8x8
handwritten digits (UCI, CC BY 4.0). Writes cnn_digits.png (the training curves) when
matplotlib is installed.

How the 8x8 images are fed: pixel counts 0..16 scaled to [0, 1], channels-last (N, H, W, 1);
LeNet-5 takes 32x32 images (LeCun's size), so each pixel becomes a 4x4 block; VGG and ResNet
take 16x16 (2x2 blocks), enough for three halvings. 1400 shuffled images train, the other 397
are held out.

    python examples/cnn_digits.py [--quick]
"""

import argparse
import time

import numpy as np

import pyrnn
from pyrnn import vision
from pyrnn.plots import save_lines


def data(scale):
    images, labels = pyrnn.datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(labels))
    x = np.kron(images[order] / 16.0, np.ones((scale, scale)))[..., None].astype(np.float32)
    return x, labels[order]


def train(name, model, scale, epochs, lr):
    x, y = data(scale)
    model.compile(optimizer="adam", loss="cross_entropy", lr=lr, metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x[:1400], y[:1400], epochs=epochs, batch_size=32, seed=0, verbose=0)
    seconds = time.perf_counter() - start
    acc = model.evaluate(x[1400:], y[1400:])["accuracy"]
    params = sum(p.size for p in model.parameters())
    print(f"{name:8s} {params:8d} parameters, {epochs:2d} epochs in {seconds:5.1f} s: held-out accuracy {acc:.3f}")
    return acc, history.history["loss"]


def main(quick=False):
    results = {
        "LeNet-5": train("LeNet-5", vision.lenet5(10, 1, seed=0), 4, 1 if quick else 8, 3e-3),
        "VGG": train("VGG", vision.vgg(((1, 8), (1, 16)) if quick else ((2, 16), (2, 32), (2, 64)), 10, 1,
                                       batch_norm=True, seed=0), 2, 1 if quick else 10, 3e-3),
        "ResNet": train("ResNet", vision.resnet((1, 1) if quick else (1, 1, 1), (8, 16) if quick else (16, 32, 64), 10,
                                                1, seed=0), 2, 1 if quick else 10, 3e-3),
    }
    save_lines("cnn_digits.png", {name: loss for name, (_, loss) in results.items()}, title="Training loss (cross-entropy)",
               xlabel="epoch", ylabel="loss", styles={name: "-o" for name in results})
    return {name: acc for name, (acc, _) in results.items()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one epoch of smaller models")
    main(ap.parse_args().quick)
