"""Line plots written to PNG files when matplotlib is installed (the demo and the examples).

:func:`save_lines` draws curves on one axes and writes the file; it prints the file's absolute
path, or, without matplotlib, that no plot was written and how to get one. matplotlib is
imported only when a plot is made (it is optional: ``pip install matplotlib``).
"""

from __future__ import annotations

import os

__all__ = ["save_lines"]


def save_lines(path, curves, title="", xlabel="", ylabel="", logy=False, styles=None):
    """Plot ``curves`` (``{label: y}`` or ``{label: (x, y)}``) into ``path`` (PNG); returns the
    absolute path written, or None without matplotlib. ``styles``: ``{label: format string}``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: {os.path.basename(path)} not written (pip install matplotlib)")
        return None
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, curve in curves.items():
        x, y = curve if isinstance(curve, tuple) else (range(len(curve)), curve)
        ax.plot(x, y, (styles or {}).get(label, "-"), label=label, ms=3)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
    return path
