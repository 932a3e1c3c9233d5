"""Plots a user looks at (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and Kaggle
import matplotlib.pyplot as plt
import pandas as pd

from .artifacts import write_bytes_atomic


def plot_losses(metrics_csv: Path, png: Path, title: str = "") -> None:
    """Losses over generator steps; a second panel for the critic's Wasserstein estimate and penalty."""
    metrics = pd.read_csv(metrics_csv)
    critic = [c for c in ("w_estimate", "gp") if c in metrics and metrics[c].notna().any()]
    fig, axes = plt.subplots(1, 2 if critic else 1, figsize=(11 if critic else 7, 3.5), dpi=100, squeeze=False)
    panels = [(axes[0][0], [("loss_d", "discriminator"), ("loss_g", "generator")], "loss")]
    if critic:
        labels = {"w_estimate": "Wasserstein estimate", "gp": "gradient penalty"}
        panels.append((axes[0][1], [(c, labels[c]) for c in critic], "critic"))
    for ax, columns, ylabel in panels:
        for column, label in columns:
            if column in metrics and len(metrics):
                ax.plot(metrics["step"], metrics[column], label=label, linewidth=1)
        ax.set_xlabel("generator step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes_atomic(png, buffer.getvalue())
