"""What each run in a workdir left behind: one RunView per row of the leaderboard's table."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import records
from ..layout import Workdir
from ..metrics import EVAL_METRICS



@dataclass
class RunView:
    """One row of the ranking with everything the report shows about it."""
    rank: int
    name: str                       # the record's name, its folder's: the key to read it and name its files by
    title: str                      # the name a user reads (a baseline's: its data source, no digest)
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
    def swd_se(self) -> float | None:
        return _number(self.row.get("swd_se"))

    def tied_by(self, metric: str) -> bool:
        """Level with the run above it by `metric` ("swd" or "mifid"), the one that ranked both: the difference
        is within the uncertainty (leaderboard)."""
        return bool(self.row.get("tied")) and self.row.get("ranked_by") == metric

    @property
    def floor(self) -> float | None:
        return _number(records.score_numbers(self.score)["swd_floor"])

    @property
    def floor_se(self) -> float | None:
        return _number(records.score_numbers(self.score)["swd_floor_se"])

    @property
    def seeds(self) -> bool:
        """A setting trained with several seeds, as one row (the mean); each seed also has its own row."""
        return self.where == "seeds"

    @property
    def setting(self) -> str | None:
        """For one seed of such a setting, the setting's name."""
        return self.row.get("setting")

    @property
    def baseline(self) -> bool:
        """The untouched photos scored like a run: the baseline to beat, never a run itself."""
        return self.where == "baseline"

    @property
    def translates(self) -> bool:
        return self.row.get("consumes") == "photos"

    @property
    def label(self) -> str:
        return self.title + {"kaggle": " (kaggle)", "baseline": " (baseline)", "seeds": " (seeds)"}.get(self.where, "")


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
    views, rank = [], 0
    for values in table.to_dict("records"):
        row = {key: _clean(value) for key, value in values.items()}
        name, where = str(row[records.KEY]), row.get("where") or "local"
        rank += row.get("setting") is None  # a seed of a setting shares its setting's place
        if where == "seeds":  # a setting's seeds as one row: their runs follow it, each with its own card
            views.append(RunView(rank=rank, name=name, title=str(row["run"]), where=where, row=row, score={},
                                 kernel=None, standing=None, teams=None, metrics_note=None,
                                 evals=pd.DataFrame(columns=["step"]), best=None, date=None, device=row.get("device")))
            continue
        record = records.read(wd, name, where)
        if row.get("train_seconds") is None:  # the table has no time for a kernel's run; its record does
            row["train_seconds"] = _number(record.train_seconds)
        if record.metrics is None:  # a baseline: nothing was trained, no curve, losses or checkpoint to miss
            evals, note = pd.DataFrame(columns=["step"]), None
        else:
            evals, note = read_evals(record.metrics)
        view = RunView(rank=rank, name=name, title=record.title, where=where, row=row, score=record.score,
                       kernel=record.kernel, standing=record.standing, teams=record.teams, metrics_note=note,
                       evals=evals, best=record.best, date=record.date, device=record.trained_on,
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
