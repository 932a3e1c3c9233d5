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
    metrics = pd.read_csv(metrics_csv)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for column, label in (("loss_d", "discriminator"), ("loss_g", "generator")):
        if column in metrics and len(metrics):
            ax.plot(metrics["step"], metrics[column], label=label, linewidth=1)
    ax.set_xlabel("generator step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes_atomic(png, buffer.getvalue())
