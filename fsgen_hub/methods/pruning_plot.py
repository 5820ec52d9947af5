"""Heat map of the pruned fraction per layer (rows) over decision steps (columns)."""
from __future__ import annotations

from pathlib import Path


def plot_pruning(history: list[dict], path: str | Path, title: str = "pruned fraction per layer") -> None:
    from fsgen_hub.utils.extras import require

    matplotlib = require("matplotlib", "the pruning plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    layers = history[0]["layers"]
    ratios = np.array([h["ratios"] for h in history]).T  # layers x steps
    mass = np.array([h["fisher_mass"] for h in history]).T
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.35 * len(layers) + 2))
    for ax, data, label, cmap in ((axes[0], ratios, "pruned fraction", "magma"), (axes[1], mass, "Fisher mass", "viridis")):
        im = ax.imshow(data, aspect="auto", cmap=cmap, interpolation="nearest")
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_xticks(range(len(history)), [h["step"] for h in history], fontsize=7, rotation=90)
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
