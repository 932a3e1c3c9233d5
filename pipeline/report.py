"""The leaderboard report: what every run in a workdir produced, as pictures and one ranking table.

`write_report(wd, table, out_dir)` takes the table of `leaderboard.collect(wd)` (best run first) and
writes two files into `out_dir`:

- `leaderboard.md`, for a repository page, with its images as PNG files in `leaderboard_files/`
  (referenced by relative paths, each shrunk: the top half of each sample grid, at most 530 px
  wide, palette PNGs, so that eight runs stay well under 2 MB per page);
- `leaderboard.html`, one self-contained page with the same content: every image embedded as a
  base64 `data:` URI, inline CSS, no script, no external resource.

Both hold: where and when the runs were made, the ranking (only the columns some run has), the
real-vs-real SWD floor (one half of the paintings against the other, from the runs' score.json),
a chart of every run's evaluation metric against the training step (from the eval rows of
metrics.csv, best checkpoint starred, the floor as a line), a bar chart of each run's final SWD
with the floor line, and one card per run: sample grid, loss curves, nearest pairs when it has
copies, key numbers, the best checkpoint (best.json), the Kaggle kernel and public standing.

The untouched photos of a data source, scored like a run (rows with where == "baseline", files in
`<workdir>/baselines/<name>/`), are the baseline to beat: translating photos into Monet's style is
how this competition is won, so a run farther from the paintings than the photos is worthless.
Such a row keeps its place in the ranking (a run below it is worse than submitting the photos) but
is never "the best run": it is marked as the baseline in the table, on its card and on both charts
(a hatched bar, a dotted line), and a sentence counts the runs that beat it. Translation runs
(consumes == "photos") show their sample grid as photo -> painting pairs.

Everything read from the runs may be missing (old runs, Kaggle runs, runs never scored): what is
missing is said in place of the picture or number. Text taken from files is escaped in both
outputs. Every file is written atomically; images an earlier report left in `leaderboard_files/`
that this one does not write are removed (only names this module gives: `chart-*.png`, `run-*.png`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # headless
import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from . import records
from .artifacts import write_bytes_atomic
from .layout import Workdir
from .plots import plot_losses

FILES_DIR = "leaderboard_files"
GRID_MAX_WIDTH = 530    # an 8x8 grid of 64 px samples (8 * 66 + 2 px) stays pixel-exact
GRID_KEPT = 0.5         # the top half of a grid (32 of 64 samples): full grids made 8 runs a 2.8 MB page
PLOT_MAX_WIDTH = 760
PNG_COLOURS = 256       # palette PNGs: about a third of the bytes of RGB ones, hard to tell apart at this size
CHART_DPI = 90
OUR_FILES = re.compile(r"^(chart|run)-[A-Za-z0-9_.-]*\.png$")
EVAL_METRICS = ("swd", "fid", "kid")
BEST_COLOUR, OTHER_COLOUR, FLOOR_COLOUR = "#2f6fde", "#9fb3c8", "#222222"  # floor: no run colour (tab10)
PHOTOS_COLOUR, PHOTOS_FILL = "#6b6b6b", "#e4e4e4"  # the baseline: grey, hatched, dotted (not a run)


# ---------------------------------------------------------------------------------------------
# Collecting what each run left behind


@dataclass
class RunView:
    """One row of the ranking with everything the report shows about it."""
    rank: int
    name: str
    where: str                      # "local", "kaggle" or "baseline" (the untouched photos)
    row: dict                       # the leaderboard table's row, NaN turned into None
    score: dict                     # score.json ({} when never scored)
    kernel: dict | None             # kaggle/kernel.json
    standing: dict | None           # this run in leaderboard_kaggle.json
    teams: int | None
    metrics_note: str | None        # why there is no metric curve, if there is none
    evals: pd.DataFrame             # step + the eval metrics present, one row per evaluation
    best: dict | None               # best.json
    date: str | None                # YYYY-MM-DD the run was trained (local) or pulled (kaggle)
    device: str | None
    sources: dict[str, Path] = field(default_factory=dict)   # role -> the image file to show
    missing: dict[str, str] = field(default_factory=dict)    # role -> why there is no image
    files: dict[str, str] = field(default_factory=dict)      # role -> name in leaderboard_files/
    metrics_csv: Path | None = None

    @property
    def slug(self) -> str:
        """A file-name-safe, stable id: the same run gets the same file names whatever its rank."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name).strip("-.")[:40] or "run"
        digest = hashlib.sha1(self.name.encode()).hexdigest()[:6]
        return f"{safe}-{digest}-{self.where}"

    @property
    def anchor(self) -> str:
        return f"run-{self.slug}"

    @property
    def swd(self) -> float | None:
        return self.row.get("swd")

    @property
    def floor(self) -> float | None:
        return _number(records.score_numbers(self.score)["swd_floor"])

    @property
    def baseline(self) -> bool:
        """The untouched photos scored like a run: the baseline to beat, never a run itself."""
        return self.where == "baseline"

    @property
    def translates(self) -> bool:
        return self.row.get("consumes") == "photos"

    @property
    def label(self) -> str:
        return self.name + {"kaggle": " (kaggle)", "baseline": " (baseline)"}.get(self.where, "")


def _number(value) -> float | None:
    """A finite float, or None for missing, NaN and anything that is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _clean(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def read_evals(metrics_csv: Path) -> tuple[pd.DataFrame, str | None]:
    """The evaluation rows of a metrics.csv (step and whichever of swd/fid/kid it has), or why none."""
    empty = pd.DataFrame(columns=["step"])
    if not metrics_csv.is_file():
        return empty, f"no {metrics_csv.name}"
    try:
        metrics = pd.read_csv(metrics_csv)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        return empty, f"{metrics_csv.name} is unreadable ({str(exc).splitlines()[0][:80]})"
    present = [c for c in EVAL_METRICS if c in metrics.columns]
    if "step" not in metrics.columns or not present:
        return empty, f"{metrics_csv.name} has no evaluation columns (a run from before evaluation during training)"
    evals = metrics[["step", *present]].apply(pd.to_numeric, errors="coerce")
    evals = evals[evals["step"].notna() & evals[present].notna().any(axis=1)]
    if evals.empty:
        return empty, "no evaluation during training (train.eval_every was 0)"
    return evals.sort_values("step", ignore_index=True), None


def collect_runs(wd: Workdir, table: pd.DataFrame) -> list[RunView]:
    """A RunView per row of `table`, in its order, from the run's record (pipeline.records)."""
    views = []
    for rank, values in enumerate(table.to_dict("records"), start=1):
        row = {key: _clean(value) for key, value in values.items()}
        name, where = str(row.get("run")), row.get("where") or "local"
        record = records.read(wd, name, where)
        if row.get("train_seconds") is None:  # the table has no time for a kernel's run; its record does
            row["train_seconds"] = _number(record.train_seconds)
        if record.metrics is None:  # a baseline: nothing was trained, no curve, losses or checkpoint to miss
            evals, note = pd.DataFrame(columns=["step"]), None
        else:
            evals, note = read_evals(record.metrics)
        view = RunView(rank=rank, name=name, where=where, row=row, score=record.score, kernel=record.kernel,
                       standing=record.standing, teams=record.teams, metrics_note=note, evals=evals,
                       best=record.best, date=record.date, device=record.trained_on,
                       metrics_csv=record.metrics if record.metrics is not None and record.metrics.is_file() else None)
        _find_images(view, record)
        views.append(view)
    return views


def _find_images(view: RunView, record: records.RunRecord) -> None:
    samples, losses, nearest = record.samples, record.losses, record.nearest
    if samples.is_file():
        view.sources["samples"] = samples
    else:
        view.missing["samples"] = f"no samples ({samples.parent.name}/{samples.name} not found)"
    if losses is None:
        pass  # the photos were not trained: no loss curves, and nothing to say about their absence
    elif losses.is_file():
        view.sources["losses"] = losses
    elif view.metrics_csv is None:
        view.missing["losses"] = f"no loss curves (no {losses.parent.name}/{losses.name} or {record.metrics.name})"
    # else: drawn from metrics.csv when the images are written
    copies = _number(record.scores["copies"]) or 0
    if copies > 0:
        if nearest.is_file():
            view.sources["nearest"] = nearest
        else:
            view.missing["nearest"] = f"no {nearest.name} for the copies"


def best_run(views: list[RunView]) -> RunView | None:
    """The best run: the first non-baseline row of the ranking, when it was scored. The untouched
    photos may rank above every run, but they are what a run must beat, never a run."""
    first = next((v for v in views if not v.baseline), None)
    return first if first is not None and first.swd is not None else None


def baselines(views: list[RunView]) -> list[RunView]:
    """The scored baselines (untouched photos), in ranking order."""
    return [v for v in views if v.baseline and v.swd is not None]


def floors(views: list[RunView]) -> dict[float, list[str]]:
    """Each distinct real-vs-real SWD floor in the runs' scores, with the runs that have it."""
    found: dict[float, list[str]] = {}
    for view in views:
        if view.floor is not None:
            key = next((f for f in found if math.isclose(f, view.floor, rel_tol=1e-9, abs_tol=1e-12)), view.floor)
            found.setdefault(key, []).append(view.label)
    return found


# ---------------------------------------------------------------------------------------------
# Images


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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=CHART_DPI)
    plt.close(fig)
    return buffer.getvalue()


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
    return "untouched photos" + (f" ({view.name})" if len(photos) > 1 else "")


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
    scored = [v for v in views if v.swd is not None]
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


def _losses_from_metrics(metrics_csv: Path, title: str) -> bytes | None:
    """Loss curves drawn from metrics.csv, for runs whose losses.png did not come along."""
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "losses.png"
        try:
            plot_losses(metrics_csv, png, title=_mpl_text(title, 60))
        except (KeyError, ValueError, pd.errors.EmptyDataError, pd.errors.ParserError):
            return None
        return png.read_bytes()


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
                       ("chart-final-swd.png", chart_final_swd(views, found))):
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


# ---------------------------------------------------------------------------------------------
# Text shared by both outputs


def _fmt(value) -> str:
    """4 significant digits, thousands without exponent."""
    value = _number(value)
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _int(value) -> str | None:
    value = _number(value)
    return None if value is None else f"{int(round(value)):,}"


def duration(seconds) -> str | None:
    seconds = _number(seconds)
    if seconds is None:
        return None
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def kaggle_rank(view: RunView) -> str | None:
    """The public rank as 'R of N (top P%)', '(status)' before Kaggle scored it, or None."""
    standing = view.standing or {}
    rank = _number(view.row.get("public_rank")) or _number(standing.get("rank"))
    if rank is None:
        status = standing.get("status")
        return f"({status})" if isinstance(status, str) and status not in ("complete", "") else None
    text = f"{int(rank)}"
    if view.teams:
        text += f" of {view.teams:,}"
    top = _number(standing.get("top_percent"))
    if top is not None:
        text += f" (top {top:g}%)"
    return text


def arch_text(view: RunView) -> str | None:
    """The architecture, "(photos)" after it for a translation run: what it consumes, without a column."""
    arch = view.row.get("arch")
    if arch is None:
        return None
    return f"{arch} (photos)" if view.translates else str(arch)


# (key, header, numeric column?, cell text)
COLUMNS: list[tuple[str, str, bool, Callable[[RunView], str | None]]] = [
    ("rank", "rank", True, lambda v: str(v.rank)),
    ("run", "run", False, lambda v: v.name),
    ("where", "where", False, lambda v: v.where),
    ("arch", "arch", False, arch_text),
    ("resolution", "resolution", True, lambda v: None if _int(v.row.get("resolution")) is None
     else f"{_int(v.row.get('resolution'))} px"),
    ("steps", "steps", True, lambda v: _int(v.row.get("steps"))),
    ("train_time", "train time", True, lambda v: duration(v.row.get("train_seconds"))),
    ("swd", "SWD", True, lambda v: None if v.swd is None else _fmt(v.swd)),
    ("fid", "FID", True, lambda v: None if _number(v.row.get("fid")) is None else _fmt(v.row["fid"])),
    ("kid", "KID", True, lambda v: None if _number(v.row.get("kid")) is None else _fmt(v.row["kid"])),
    ("mifid", "MiFID", True, lambda v: None if _number(v.row.get("mifid")) is None else _fmt(v.row["mifid"])),
    ("copies", "copies", True, lambda v: _int(v.row.get("copies"))),
    ("public_mifid", "Kaggle MiFID", True,
     lambda v: None if _number(v.row.get("public_mifid")) is None else _fmt(v.row["public_mifid"])),
    ("public_rank", "Kaggle rank", False, kaggle_rank),
]


def ranking(views: list[RunView]) -> tuple[list[tuple[str, str, bool]], list[list[str | None]]]:
    """The table's columns (key, header, numeric) and rows, without columns empty for every run
    ("where" only when some run is from Kaggle)."""
    cells = [[get(v) for _, _, _, get in COLUMNS] for v in views]
    cells = [[None if cell is None else str(cell) for cell in row] for row in cells]
    keep = []
    for i, (key, header, numeric, _) in enumerate(COLUMNS):
        if key == "where" and all(v.where == "local" for v in views):
            continue
        if key in ("rank", "run") or any(row[i] is not None for row in cells):
            keep.append(i)
    columns = [(COLUMNS[i][0], COLUMNS[i][1], COLUMNS[i][2]) for i in keep]
    return columns, [[row[i] for i in keep] for row in cells]


def provenance(views: list[RunView], machine: str | None = None) -> str | None:
    """One line: on what and when the runs were made, when the files say."""
    groups: dict[str, list[str | None]] = {}
    for view in views:
        if view.baseline:
            continue  # scored photos, not a run made anywhere
        if view.where == "kaggle":
            label = f"Kaggle {view.device}" if view.device else "Kaggle"
        else:
            label = f"{machine} ({view.device})" if machine and view.device else machine or view.device or "unknown device"
        groups.setdefault(label, []).append(view.date)
    if not groups or (set(groups) == {"unknown device"} and not any(sum(groups.values(), []))):
        return None
    parts = []
    for label, dates in groups.items():
        known = sorted(d for d in dates if d)
        when = "" if not known else f", {known[0]}" if known[0] == known[-1] else f", {known[0]} to {known[-1]}"
        parts.append(f"{label} ({len(dates)} run{'s' * (len(dates) != 1)}{when})")
    return "Runs from " + "; ".join(parts) + "."


def floor_sentences(found: dict[float, list[str]]) -> list[str]:
    if not found:
        return ["No real-vs-real SWD floor in the runs' scores (they were scored before painter recorded it)."]
    if len(found) == 1:
        value = next(iter(found))
        return [f"SWD of one half of the paintings against the other: {_fmt(value)}; a run at the floor is as "
                "close to the paintings as real paintings are."]
    each = "; ".join(f"{_fmt(value)} for {', '.join(runs)}" for value, runs in sorted(found.items()))
    return ["The runs' floors differ: SWD's floor depends on the paintings and on how many images each side "
            "compares (half the paintings, or fewer when a run has fewer images, as a small photo set).",
            f"SWD of one half of the paintings against the other, per run: {each}; a run at its floor is as "
            "close to the paintings as real paintings are."]


def _beside(view: RunView, photos: RunView) -> bool:
    """Whether a run was scored beside these photos: its score.json names them, or names none (a run
    scored before painter scored the photos)."""
    named = view.score.get("photos_baseline")
    name = named.get("name") if isinstance(named, dict) else None
    return name is None or name == photos.name


def baseline_sentences(views: list[RunView]) -> list[str]:
    """Per baseline, how many scored runs are closer to the paintings (lower SWD) than the photos."""
    photos = baselines(views)
    sentences = []
    for base in photos:
        what = "the untouched photos" + (f" of {base.name}" if len(photos) > 1 else "") + f" (SWD {_fmt(base.swd)})"
        runs = [v for v in views if not v.baseline and v.swd is not None and _beside(v, base)]
        if not runs:
            sentences.append(f"No scored run to compare with {what}, the baseline to beat.")
            continue
        beat = sum(v.swd < base.swd for v in runs)
        verb = "scores" if beat == 1 or (beat == 0 and len(runs) == 1) else "score"
        text = f"{beat} of {len(runs)} run{'s' * (len(runs) != 1)} {verb} below {what}: "
        if beat:
            text += "closer to Monet than the photos themselves."
        else:
            text += "submitting the photos themselves would be closer to Monet."
        sentences.append(text)
    return sentences


NUMBERS_NOTE = ("Lower is better for every number: SWD (×10³, sliced Wasserstein distance on Laplacian-pyramid "
                "patches), FID, KID and MiFID (Kaggle's metric) against the Monet paintings; copies are generated "
                "images that are near-copies of a painting.")


def translation_note(views: list[RunView]) -> str:
    return (" \"(photos)\" after an architecture: the run translates photos into paintings instead of drawing "
            "from noise." if any(v.translates for v in views) else "")


EVAL_CAPTION = ("SWD during training is measured on a small sample at the training resolution, so its values "
                "are a guide to progress rather than the final score; the dashed line is the final score's floor.")
EVAL_PHOTOS = ("The dotted line is the untouched photos' final score (at 256 px, on the whole scoring sample): "
               "the level a run's final score must get below, not one its training curve can be read against.")


def eval_caption(views: list[RunView]) -> str:
    return EVAL_CAPTION + (" " + EVAL_PHOTOS if baselines(views) else "")


def final_swd_caption(views: list[RunView]) -> str:
    return "Final SWD of each scored run; the dashed line is the real-vs-real floor." + (
        " The hatched bar and the dotted line are the untouched photos: the baseline to beat." if baselines(views)
        else "")


def card_facts(view: RunView) -> list[tuple[str, str, str | None]]:
    """(label, text, link) lines of a run's card; text taken from files, unescaped."""
    facts: list[tuple[str, str, str | None]] = []
    if view.baseline:
        facts.append(("baseline", "the competition's photos as they are, scored like a run's images: a run "
                                  "must score below them to be worth submitting", None))
    swd = view.score.get("swd") if isinstance(view.score.get("swd"), dict) else {}
    if view.swd is not None:
        text = _fmt(view.swd)
        if view.floor:
            text += f" ({view.swd / view.floor:.2f}× the floor of {_fmt(view.floor)})"
        if _number(swd.get("n_used")) is not None:
            text += f", sets of {_int(swd['n_used'])} images"
        facts.append(("SWD", text, None))
    else:
        facts.append(("SWD", "not scored" if not view.score else "-", None))
    inception = view.score.get("inception") if isinstance(view.score.get("inception"), dict) else {}
    if inception.get("computed"):
        parts = [f"{name} {_fmt(inception.get(key))}" for key, name in (("fid", "FID"), ("kid", "KID"),
                                                                        ("mifid", "MiFID"))
                 if _number(inception.get(key)) is not None]
        if _number(inception.get("memorization_distance")) is not None:
            parts.append(f"memorization distance {_fmt(inception['memorization_distance'])}")
        facts.append(("Inception", ", ".join(parts) or "computed", None))
    elif inception.get("reason"):
        facts.append(("Inception", f"not computed: {inception['reason']}", None))
    nearest = view.score.get("nearest") if isinstance(view.score.get("nearest"), dict) else {}
    if _number(nearest.get("n_copies")) is not None:
        threshold = _number(nearest.get("copy_threshold"))
        facts.append(("copies", f"{_int(nearest['n_copies'])}"
                      + (f" (nearest-painting distance under {threshold:g})" if threshold is not None else ""), None))
    if _number(view.score.get("n_scored")) is not None:
        images = "photos" if view.baseline else "generated images"
        facts.append(("scored", f"{_int(view.score['n_scored'])} of {_int(view.score.get('n_generated')) or '?'} "
                                f"{images} against {_int(view.score.get('n_reference')) or '?'} paintings"
                                + (f" on {view.score['device']}" if view.score.get("device") else ""), None))
    best = view.best or {}
    if _number(best.get("step")) is not None:
        text = f"step {_int(best['step'])}"
        if _number(view.row.get("steps")) is not None:
            text += f" of {_int(view.row['steps'])}"
        if _number(best.get("value")) is not None:
            text += f" ({str(best.get('metric', 'metric')).upper()} {_fmt(best['value'])} during training)"
        facts.append(("best checkpoint", text + ", kept as best.pt: what generate uses unless "
                                                "generate.checkpoint = \"final\"", None))
    if view.kernel:
        url = view.kernel.get("url")
        text = str(view.kernel.get("kernel") or "kernel") + (f" version {view.kernel['version']}"
                                                             if view.kernel.get("version") is not None else "")
        link = url if isinstance(url, str) and re.fullmatch(r"https?://[^\s<>\"'`]+", url) else None
        facts.append(("Kaggle kernel", text, link))
    standing = kaggle_rank(view)
    if standing or _number(view.row.get("public_mifid")) is not None:
        text = f"public MiFID {_fmt(view.row.get('public_mifid'))}" if _number(view.row.get("public_mifid")) \
            is not None else "no public score yet"
        if standing:
            text += f" {standing}" if standing.startswith("(") else f", rank {standing}"
        facts.append(("Kaggle", text, None))
    if view.metrics_note:
        facts.append(("evaluation", view.metrics_note, None))
    return facts


def card_subtitle(view: RunView) -> str:
    parts = [str(view.row["arch"]) if view.row.get("arch") else None,
             "photo → painting translation" if view.translates else None,
             f"{_int(view.row.get('resolution'))} px" if _int(view.row.get("resolution")) else None,
             f"{_int(view.row.get('steps'))} steps" if _int(view.row.get("steps")) else None]
    trained = duration(view.row.get("train_seconds"))
    if trained:
        parts.append(f"{trained} of training" + (f" on {view.device}" if view.device else ""))
    elif view.device:
        parts.append(f"on {view.device}")
    if view.date:
        parts.append({"kaggle": "pulled ", "baseline": "scored "}.get(view.where, "trained ") + view.date)
    return " · ".join(p for p in parts if p)


CAPTIONS = {"samples": "final samples (EMA generator; the grid's top half)", "losses": "loss curves",
            "nearest": "closest generated/painting pairs"}
PHOTOS_CAPTIONS = {"samples": "untouched photos (the baseline)", "nearest": "closest photo/painting pairs"}
# a translation run's train/samples.png alternates photo, painting along each row (4 pairs a row)
PAIRS_CAPTION = "photo → painting pairs (EMA generator; the grid's top half)"


def caption(view: RunView, role: str) -> str:
    if view.baseline:
        return PHOTOS_CAPTIONS.get(role, CAPTIONS[role])
    if role == "samples" and view.translates:
        return PAIRS_CAPTION
    return CAPTIONS[role]


# ---------------------------------------------------------------------------------------------
# Markdown


def _md(text) -> str:
    """Text from files as literal Markdown: HTML-escaped, Markdown punctuation backslash-escaped."""
    text = html.escape(str(text), quote=False)
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", text).replace("\n", " ")


def render_markdown(views: list[RunView], found: dict[float, list[str]], images: dict, *,
                    machine: str | None = None) -> str:
    lines = ["# painter leaderboard", ""]
    line = provenance(views, machine)
    if line:
        lines += [_md(line), ""]
    if not views:
        return "\n".join(lines + ["No trained runs yet.", ""])
    columns, rows = ranking(views)
    best = best_run(views)
    lines.append("| " + " | ".join(header for _, header, _ in columns) + " |")
    lines.append("|" + "".join("---:|" if numeric else "---|" for _, _, numeric in columns))
    for view, row in zip(views, rows):
        cells = ["-" if cell is None else _md(cell) for cell in row]
        if view is best:
            cells[1] = f"**{cells[1]}**"
        elif view.baseline:  # the whole row in italics, its "where" says baseline: not a run
            cells = [cell if cell == "-" else f"*{cell}*" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    photos = baseline_sentences(views)
    lines += ["", *([" ".join(_md(s) for s in photos), ""] if photos else []),
              *(_md(s) for s in floor_sentences(found)), "", NUMBERS_NOTE + translation_note(views), ""]
    if "chart-eval-vs-step.png" in images:
        lines += ["## Evaluation during training", "", f"![SWD vs training step]({FILES_DIR}/chart-eval-vs-step.png)",
                  "", eval_caption(views), ""]
    else:
        lines += ["## Evaluation during training", "", "No run evaluated its generator during training.", ""]
    if "chart-final-swd.png" in images:
        lines += ["## Final SWD", "", f"![final SWD per run]({FILES_DIR}/chart-final-swd.png)", ""]
        if photos:  # the plain chart needs no words; the baseline's bar and line do
            lines += [final_swd_caption(views), ""]
    lines += ["## Runs", ""]
    for view in views:
        lines += [f"### {view.rank}. {_md(view.label)}", "", _md(card_subtitle(view)), ""]
        for label, text, link in card_facts(view):
            lines.append(f"- {_md(label)}: " + (f"[{_md(text)}](<{link}>)" if link else _md(text)))
        lines.append("")
        for role in ("samples", "losses", "nearest"):
            if role in view.files:
                lines += [f"![{caption(view, role)}]({FILES_DIR}/{view.files[role]})", ""]
            elif role in view.missing:
                lines += [f"*{_md(view.missing[role])}*", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
:root{--ink:#1f2933;--muted:#627386;--line:#e2e7ee;--bg:#f5f7fa;--card:#fff;--accent:#2f6fde;
--best:#fff7db;--bestline:#e0a800;--floor:#d9480f}
*{box-sizing:border-box}
body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--ink);background:var(--bg)}
main{max-width:1160px;margin:0 auto;padding:36px 22px 72px}
h1{font-size:30px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:20px;margin:40px 0 12px}
h3{font-size:18px;margin:0}
.sub{color:var(--muted);margin:0 0 22px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:12px;margin:0 0 22px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:12px 16px}
.tile .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.tile .v{font-size:22px;font-weight:650;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tile.floor .v{color:var(--floor)}
.table-wrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:12px}
table{border-collapse:collapse;width:100%}
th,td{padding:9px 12px;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);background:#fafbfc}
tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td a{color:inherit;text-decoration:none;border-bottom:1px dotted var(--muted)}
tr.best td{background:var(--best);font-weight:600}
tr.best td:first-child{box-shadow:inset 4px 0 var(--bestline)}
tr.baseline td{background:#f3f4f6;color:var(--muted);font-style:italic}
.badge{display:inline-block;font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.05em;
padding:1px 7px;border-radius:99px;background:var(--bestline);color:#fff;margin-left:6px;vertical-align:2px}
.tag{display:inline-block;font-size:11px;padding:1px 7px;border-radius:99px;background:#e7eefb;color:var(--accent);
margin-left:6px;vertical-align:2px}
.tag.baseline{background:#e4e4e4;color:#4a4a4a;font-style:normal}
.tile.photos .v{color:#4a4a4a}
.photos-note{margin:14px 0 0;padding:10px 14px;border-left:4px dotted #6b6b6b;background:#f3f4f6;border-radius:6px}
.floor-note{margin:14px 0 0;padding:10px 14px;border-left:4px solid var(--floor);background:#fff4ee;border-radius:6px}
.note{color:var(--muted);font-size:13px}
.charts{display:flex;flex-direction:column;align-items:flex-start;gap:16px}
.charts figure{max-width:100%}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:12px}
figcaption{color:var(--muted);font-size:13px;margin-top:6px}
img{max-width:100%;height:auto;display:block}
.card{background:var(--card);border:1px solid var(--line);border-radius:14px;padding:18px 20px;margin:0 0 18px}
.card.best{border:2px solid var(--bestline)}
.card.baseline{border:2px dashed #c3c8cf;background:#fafafa}
.card header{margin-bottom:12px}
.card .rank{color:var(--muted);font-weight:600;margin-right:6px}
.card-body{display:grid;grid-template-columns:minmax(0,530px) minmax(0,1fr);gap:22px;align-items:start}
@media (max-width:860px){.card-body{grid-template-columns:1fr}}
.card figure{border:0;padding:0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0 0 14px}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.missing{border:1px dashed #c9d2dc;border-radius:10px;color:var(--muted);padding:36px 16px;text-align:center;
margin:0 0 12px}
.stack > *{margin-bottom:14px}
footer{margin-top:40px;color:var(--muted);font-size:13px}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _img(images: dict, name: str, alt: str) -> str:
    data, (width, height) = images[name]
    return (f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}" alt="{_e(alt)}" '
            f'width="{width}" height="{height}">')


def _html_table(views: list[RunView]) -> str:
    columns, rows = ranking(views)
    best = best_run(views)
    head = "".join(f'<th class="num">{_e(h)}</th>' if numeric else f"<th>{_e(h)}</th>" for _, h, numeric in columns)
    body = []
    for view, row in zip(views, rows):
        cells = []
        for (key, _, numeric), cell in zip(columns, row):
            text = "-" if cell is None else _e(cell)
            if key == "run":
                text = f'<a href="#{_e(view.anchor)}">{text}</a>'
                if view is best:
                    text += '<span class="badge">best</span>'
                elif view.baseline:
                    text += '<span class="tag baseline">baseline</span>'
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        style = ' class="best"' if view is best else ' class="baseline"' if view.baseline else ""
        body.append(f"<tr{style}>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _tiles(views: list[RunView], found: dict[float, list[str]]) -> str:
    tiles = []
    best = best_run(views)
    if best is not None:
        tiles.append(("best run", best.label, ""))
        tiles.append(("its SWD", _fmt(best.swd), ""))
    photos = baselines(views)
    if photos:  # several data sources: their photos side by side, as the floors are
        tiles.append(("untouched photos", " / ".join(_fmt(v.swd) for v in photos), " photos"))
    if len(found) == 1:
        tiles.append(("real-vs-real floor", _fmt(next(iter(found))), " floor"))
    elif found:
        tiles.append(("floors", " / ".join(_fmt(f) for f in sorted(found)), " floor"))
    runs = [v for v in views if not v.baseline]
    tiles.append(("runs", f"{len(runs)}" + (f" ({sum(v.where == 'kaggle' for v in runs)} on Kaggle)"
                                             if any(v.where == "kaggle" for v in runs) else ""), ""))
    return '<div class="tiles">' + "".join(
        f'<div class="tile{cls}"><div class="k">{_e(k)}</div><div class="v" title="{_e(v)}">{_e(v)}</div></div>'
        for k, v, cls in tiles) + "</div>"


def _html_card(view: RunView, images: dict, best_view: RunView | None) -> str:
    best = view is best_view
    title = (f'<span class="rank">#{view.rank}</span>{_e(view.name)}'
             + ('<span class="tag">kaggle</span>' if view.where == "kaggle" else "")
             + ('<span class="tag baseline">baseline</span>' if view.baseline else "")
             + ('<span class="badge">best</span>' if best else ""))

    def picture(role: str) -> str:
        if role in view.files:
            text = caption(view, role)
            return f"<figure>{_img(images, view.files[role], text)}<figcaption>{_e(text)}</figcaption></figure>"
        if role in view.missing:
            return f'<div class="missing">{_e(view.missing[role])}</div>'
        return ""

    facts = "".join(
        f"<dt>{_e(label)}</dt><dd>" + (f'<a href="{_e(link)}">{_e(text)}</a>' if link else _e(text)) + "</dd>"
        for label, text, link in card_facts(view))
    style = " best" if best else " baseline" if view.baseline else ""
    return (f'<section class="card{style}" id="{_e(view.anchor)}">'
            f'<header><h3>{title}</h3><div class="note">{_e(card_subtitle(view))}</div></header>'
            f'<div class="card-body"><div>{picture("samples")}</div>'
            f'<div class="stack"><dl>{facts}</dl>{picture("losses")}{picture("nearest")}</div></div></section>')


def render_html(views: list[RunView], found: dict[float, list[str]], images: dict, *,
                machine: str | None = None) -> str:
    line = provenance(views, machine)
    parts = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>painter leaderboard</title><style>{CSS}</style></head><body><main>",
             "<header><h1>painter leaderboard</h1>",
             f'<p class="sub">{_e(line)}</p>' if line else '<p class="sub">Every run in the workdir, best first.</p>',
             "</header>"]
    if not views:
        parts.append("<p>No trained runs yet.</p>")
    else:
        photos = baseline_sentences(views)
        parts += [_tiles(views, found), '<section id="ranking"><h2>Ranking</h2>', _html_table(views),
                  *(['<div class="photos-note">' + "".join(f"<p>{_e(s)}</p>" for s in photos) + "</div>"]
                    if photos else []),
                  '<div class="floor-note">' + "".join(f"<p>{_e(s)}</p>" for s in floor_sentences(found)) + "</div>",
                  f'<p class="note">{_e(NUMBERS_NOTE + translation_note(views))}</p></section>',
                  '<section id="charts"><h2>Training and final scores</h2><div class="charts">']
        if "chart-eval-vs-step.png" in images:
            parts.append(f"<figure>{_img(images, 'chart-eval-vs-step.png', 'SWD vs training step')}"
                         f"<figcaption>{_e(eval_caption(views))}</figcaption></figure>")
        else:
            parts.append('<div class="missing">No run evaluated its generator during training.</div>')
        if "chart-final-swd.png" in images:
            parts.append(f"<figure>{_img(images, 'chart-final-swd.png', 'final SWD per run')}"
                         f"<figcaption>{_e(final_swd_caption(views))}</figcaption></figure>")
        best = best_run(views)
        parts += ["</div></section>", '<section id="runs"><h2>Runs</h2>',
                  *(_html_card(view, images, best) for view in views), "</section>"]
    parts.append("<footer>Written by painter's leaderboard report.</footer></main></body></html>\n")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------


def write_report(wd: Workdir, table: pd.DataFrame, out_dir: Path | None = None, log=print, *,
                 machine: str | None = None) -> dict:
    """Write leaderboard.md (+ leaderboard_files/*.png) and a self-contained leaderboard.html into
    `out_dir` (default: the workdir root) for the runs of `table` (leaderboard.collect's, best first).
    `machine` optionally names the computer the local runs were trained on. Returns the paths written."""
    out_dir = Path(out_dir) if out_dir is not None else wd.root
    files_dir = out_dir / FILES_DIR
    files_dir.mkdir(parents=True, exist_ok=True)
    views = collect_runs(wd, table)
    found = floors(views)
    images = build_images(views, found)
    for name, (data, _) in images.items():
        write_bytes_atomic(files_dir / name, data)
    md_path, html_path = out_dir / "leaderboard.md", out_dir / "leaderboard.html"
    write_bytes_atomic(md_path, render_markdown(views, found, images, machine=machine).encode())
    write_bytes_atomic(html_path, render_html(views, found, images, machine=machine).encode())
    for stale in files_dir.iterdir():  # after the new report is complete: it never points at a missing file
        if stale.is_file() and OUR_FILES.match(stale.name) and stale.name not in images:
            stale.unlink()
    if len(found) > 1:
        log("leaderboard: the runs' real-vs-real SWD floors differ (other paintings, or fewer images compared): "
            + "; ".join(f"{_fmt(v)} for {', '.join(r)}" for v, r in sorted(found.items())))
    images_kb = sum(len(d) for d, _ in images.values()) / 1024
    log(f"leaderboard: wrote {md_path} ({len(images)} images in {files_dir.name}/, {images_kb:,.0f} KB) "
        f"and {html_path} ({html_path.stat().st_size / 1024:,.0f} KB, self-contained)")
    return {"markdown": md_path, "html": html_path, "files": [files_dir / name for name in images]}
