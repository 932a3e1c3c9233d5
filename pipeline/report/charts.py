"""The report's pictures: two charts of every run, and each run's images, all shrunk into PNGs fit for a page."""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless
import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from .. import records
from ..plots import figure_png, losses_png
from .collect import RunView, _number, baselines
from .text import _fmt

GRID_MAX_WIDTH = 530    # an 8x8 grid of 64 px samples (8 * 66 + 2 px) stays pixel-exact
GRID_KEPT = 0.5         # the top half of a grid (32 of 64 samples): full grids made 8 runs a 2.8 MB page
PLOT_MAX_WIDTH = 760
PNG_COLOURS = 256       # palette PNGs: about a third of the bytes of RGB ones, hard to tell apart at this size
CHART_DPI = 90
OUR_FILES = re.compile(r"^(chart|run)-[A-Za-z0-9_.-]*\.png$")  # build_images' names: stale ones go
BEST_COLOUR, OTHER_COLOUR, FLOOR_COLOUR = "#2f6fde", "#9fb3c8", "#222222"  # floor: no run colour (tab10)
PHOTOS_COLOUR, PHOTOS_FILL = "#6b6b6b", "#e4e4e4"  # the baseline: grey, hatched, dotted (not a run)


def shrink_png(data: bytes, max_width: int, keep_top: float = 1.0) -> tuple[bytes, tuple[int, int]]:
    """A smaller PNG of an image: its top `keep_top` part, flattened onto white, at most `max_width`
    wide, palette colours."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            flat = Image.new("RGB", image.size, "white")
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        else:
            image = image.convert("RGB")
    if keep_top < 1.0:
        image = image.crop((0, 0, image.width, max(1, round(image.height * keep_top))))
    if image.width > max_width:
        image = image.resize((max_width, max(1, round(image.height * max_width / image.width))), Image.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(PNG_COLOURS).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue(), image.size


def _figure_png(fig) -> bytes:
    return figure_png(fig, dpi=CHART_DPI)


def _mpl_text(text: str, limit: int = 28) -> str:
    """Run names as matplotlib draws them literally ($ starts mathtext), shortened."""
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return text.replace("$", r"\$")


def _colours(views: list[RunView]) -> dict[str, str]:
    """A colour per run; baselines take none, so that adding one does not recolour the runs."""
    cycle = plt.get_cmap("tab10").colors
    runs = [view for view in views if not view.baseline]
    return {view.slug: matplotlib.colors.to_hex(cycle[i % len(cycle)]) for i, view in enumerate(runs)}


def _floor_lines(ax, found: dict[float, list[str]]) -> None:
    for i, (value, runs) in enumerate(sorted(found.items())):
        label = f"real-vs-real floor {_fmt(value)}" + (f" ({', '.join(runs)[:40]})" if len(found) > 1 else "")
        ax.axhline(value, color=FLOOR_COLOUR, linestyle="--", linewidth=1.2, alpha=0.9 - 0.2 * i,
                   label=_mpl_text(label, 60))


def _photos_name(view: RunView, photos: list[RunView]) -> str:
    """How the charts name a baseline: the data source only matters when there are several."""
    return view.title if len(photos) > 1 else "untouched photos"


def _photos_lines(ax, photos: list[RunView]) -> None:
    for i, view in enumerate(photos):
        ax.axhline(view.swd, color=PHOTOS_COLOUR, linestyle=":", linewidth=1.6, alpha=0.9 - 0.2 * min(i, 3),
                   label=_mpl_text(f"{_photos_name(view, photos)} {_fmt(view.swd)}", 60))


def chart_eval_curves(views: list[RunView], found: dict[float, list[str]]) -> bytes | None:
    """Every run's evaluation metric vs training step (SWD; FID beside it when computed), best starred."""
    curves = [v for v in views if not v.evals.empty]
    if not curves:
        return None
    metrics = [m for m in ("swd", "fid") if any(m in v.evals and v.evals[m].notna().any() for v in curves)]
    if not metrics:
        return None
    colours = _colours(views)
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.2 * len(metrics) + 1.8, 3.8), squeeze=False,
                             layout="constrained")
    for ax, metric in zip(axes[0], metrics):
        for view in curves:
            if metric not in view.evals or view.evals[metric].notna().sum() == 0:
                continue
            points = view.evals[["step", metric]].dropna()
            ax.plot(points["step"], points[metric], marker="o", markersize=3, linewidth=1.4,
                    color=colours[view.slug], label=_mpl_text(view.label))
            best = view.best or {}
            if best.get("metric") == metric and _number(best.get("value")) is not None \
                    and _number(best.get("step")) is not None:
                ax.plot([best["step"]], [best["value"]], marker="*", markersize=13, color=colours[view.slug],
                        markeredgecolor="black", markeredgewidth=0.6, linestyle="none")
        if metric == "swd":
            _floor_lines(ax, found)
            _photos_lines(ax, baselines(views))  # a final score at 256 px: a landmark, not a target (caption)
        ax.set_xlabel("generator step")
        ax.set_ylabel({"swd": "SWD (×10³, lower is better)", "fid": "FID (lower is better)"}[metric])
        ax.grid(alpha=0.3)
    legend = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    axes[0][-1].legend(legend.values(), legend.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("evaluation during training (EMA generator; ★ = best checkpoint)", fontsize=10)
    return _figure_png(fig)


def chart_final_swd(views: list[RunView], found: dict[float, list[str]]) -> bytes | None:
    """Each scored run's final SWD as a bar, best run highlighted, the floor as a horizontal line; the
    untouched photos as a hatched grey bar and a dotted line, the baseline every run must beat."""
    scored = [v for v in views if v.swd is not None and not v.setting]  # a setting's seeds: its mean's bar
    if not scored:
        return None
    runs = [v for v in scored if not v.baseline]
    best = min(runs, key=lambda v: v.swd) if runs else None
    photos = baselines(views)
    labels = [_mpl_text(f"{v.rank}. " + (_photos_name(v, photos) if v.baseline else v.label), 22) for v in scored]
    tilt = len(scored) > 4 or max(len(label) for label in labels) > 13
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 1.0 * len(scored)), 3.8))
    positions = range(len(scored))
    bars = ax.bar(positions, [v.swd for v in scored], width=0.65,
                  yerr=[records.TIE_Z * (v.swd_se or 0.0) for v in scored], error_kw={"elinewidth": 1, "capsize": 3},
                  color=[PHOTOS_FILL if v.baseline else BEST_COLOUR if v is best else OTHER_COLOUR for v in scored])
    for bar, view in zip(bars, scored):
        if view.baseline:
            bar.set_hatch("///")
            bar.set_edgecolor(PHOTOS_COLOUR)
        ax.annotate(_fmt(view.swd), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    _floor_lines(ax, found)
    _photos_lines(ax, photos)
    ax.set_xticks(list(positions), labels, rotation=25 if tilt else 0, ha="right" if tilt else "center",
                  fontsize=8, rotation_mode="anchor")
    ax.set_ylabel("final SWD (×10³, lower is better)")
    ax.set_ylim(0, max([v.swd for v in scored] + list(found)) * 1.15)
    ax.grid(axis="y", alpha=0.3)
    if found or photos:
        ax.legend(fontsize=7, loc="upper left")
    ax.set_title("final SWD against the paintings", fontsize=10)
    fig.tight_layout()
    return _figure_png(fig)


def chart_swd_levels(views: list[RunView]) -> bytes | None:
    """Every scored run's SWD per Laplacian-pyramid level, from the finest (256 px: brushwork, where blur
    shows) to the coarsest (16 px: overall colour and tone), against the floor's and the photos' profiles."""
    numbers = {v.slug: records.score_numbers(v.score) for v in views}
    profiles = [(v, levels) for v in views if (levels := numbers[v.slug]["swd_per_level"])]
    if not profiles:
        return None
    colours = _colours(views)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for view, levels in profiles:
        style = dict(color=PHOTOS_COLOUR, linestyle=":", linewidth=1.8) if view.baseline else \
            dict(color=colours[view.slug], linewidth=1.4)
        ax.plot(range(len(levels)), list(levels.values()), marker="o", markersize=3,
                label=_mpl_text(view.label, 40), **style)
    floor = next((levels for v, _ in profiles if (levels := numbers[v.slug]["swd_floor_per_level"])), None)
    if floor:
        ax.plot(range(len(floor)), list(floor.values()), color=FLOOR_COLOUR, linestyle="--", linewidth=1.2,
                label="real-vs-real floor")
    names = list(max((levels for _, levels in profiles), key=len))
    ax.set_xticks(range(len(names)), [f"{name} px" for name in names], fontsize=8)
    ax.set_xlabel("pyramid level: finest detail on the left, overall colour on the right", fontsize=8)
    ax.set_ylabel("SWD (×10³, lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("SWD per pyramid level", fontsize=10)
    fig.tight_layout()
    return _figure_png(fig)


def _losses_from_metrics(metrics_csv: Path, title: str) -> bytes | None:
    """Loss curves drawn from metrics.csv, for runs whose losses.png did not come along."""
    try:
        return losses_png(metrics_csv, title=_mpl_text(title, 60))
    except (KeyError, ValueError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return None


def build_images(views: list[RunView], found: dict[float, list[str]]) -> dict[str, tuple[bytes, tuple[int, int]]]:
    """Every picture of the report: {file name: (PNG bytes, (width, height))}; sets each view's `files`."""
    images: dict[str, tuple[bytes, tuple[int, int]]] = {}

    def add(name: str, data: bytes | None, max_width: int, keep_top: float = 1.0) -> bool:
        if data is None:
            return False
        try:
            images[name] = shrink_png(data, max_width, keep_top)
        except (OSError, ValueError, Image.DecompressionBombError):
            return False
        return True

    for name, data in (("chart-eval-vs-step.png", chart_eval_curves(views, found)),
                       ("chart-final-swd.png", chart_final_swd(views, found)),
                       ("chart-swd-levels.png", chart_swd_levels(views))):
        add(name, data, PLOT_MAX_WIDTH * 2)  # drawn at their size already; only palette-compressed
    for view in views:
        for role in ("samples", "losses", "nearest"):
            source = view.sources.get(role)
            data = source.read_bytes() if source is not None else None
            if role == "losses" and source is None and view.metrics_csv is not None:
                data = _losses_from_metrics(view.metrics_csv, f"{view.label}: losses")
                if data is None:
                    view.missing["losses"] = "no loss curves (metrics.csv has no losses)"
            name = f"run-{view.slug}-{role}.png"
            grid = role == "samples"
            if add(name, data, GRID_MAX_WIDTH if grid else PLOT_MAX_WIDTH, GRID_KEPT if grid else 1.0):
                view.files[role] = name
            elif source is not None:
                view.missing[role] = f"{source.name} is not a readable image"
    return images
