"""Plots a user looks at (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and Kaggle
import matplotlib.pyplot as plt
import pandas as pd

from .metrics import EVAL_METRICS

NOT_LOSSES = {"step", "img_per_s", "seconds", "d_real", "d_fake", *EVAL_METRICS}


def figure_png(fig, dpi: float | None = None) -> bytes:
    """A figure as PNG bytes, at `dpi` (default: savefig.dpi, the figure's own), and the figure closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def losses_png(metrics_csv: Path, title: str = "") -> bytes:
    """Losses over generator steps: the totals; the critic's Wasserstein estimate and penalty (WGANs);
    and every term an architecture logs beside its totals (CycleGAN's cycle and identity losses, CUT's NCE)."""
    metrics = pd.read_csv(metrics_csv)
    present = [c for c in metrics.columns if c not in NOT_LOSSES and metrics[c].notna().any()]
    critic = [c for c in ("w_estimate", "gp") if c in present]
    terms = [c for c in present if c not in critic and c not in ("loss_d", "loss_g")]
    labels = {"loss_d": "discriminator", "loss_g": "generator", "w_estimate": "Wasserstein estimate",
              "gp": "gradient penalty"}
    panels = [([("loss_d", "discriminator"), ("loss_g", "generator")], "loss")]
    if critic:
        panels.append(([(c, labels[c]) for c in critic], "critic"))
    if terms:
        panels.append(([(c, c.replace("_", " ")) for c in terms], "loss terms"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 + 3.5 * len(panels), 3.5), dpi=100, squeeze=False)
    for ax, (columns, ylabel) in zip(axes[0], panels):
        for column, label in columns:
            if column in metrics and len(metrics):
                ax.plot(metrics["step"], metrics[column], label=label, linewidth=1)
        ax.set_xlabel("generator step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if len(columns) > 4 else None)
    fig.suptitle(title)
    fig.tight_layout()
    return figure_png(fig)
