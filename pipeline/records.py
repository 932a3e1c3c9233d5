"""records: what a run folder holds, read into one record per run; free of torch.

Three kinds of run stand in a workdir, each read here and nowhere else:

- "local": trained here: runs/<run>/train/ (its stamp's summary, config.toml, best.json, metrics.csv,
  the grids) and runs/<run>/score/ (score.json, nearest.png) once scored;
- "kaggle": pulled from a Kaggle kernel: runs/<run>/kaggle/ (kernel.json, written last by
  `painter kernel pull`, and the files it copied from the kernel's output);
- "baseline": the untouched photos of a data source, scored like a run: baselines/<source>-photos/
  (a record's `name` is its folder's, the key to read it by; `title` is what a user reads).

The leaderboard ranks these records and the report draws them. `score_numbers` reads the numbers of a
score.json that a score stamp, a leaderboard row and a kernel's record carry; `summary_line` writes
them as one line.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .artifacts import read_json, read_stamp
from .config import tomllib  # tomli on Python 3.10
from .layout import BEST_RECORD, LOSSES, METRICS, NEAREST, SAMPLES, SCORE, Workdir

# The keys in which seeds of one setting differ (run.seeds names them; the device may differ between them too).
SEED_KEYS = (("run", "name"), ("run", "seeds"), ("run", "device"), ("train", "seed"))
KEY = "folder"  # the leaderboard table's column (in no output) of the name a record is read by
PHOTOS_RESOLUTION = 256  # the untouched photos are scored at the competition's size


@dataclass
class RunRecord:
    """One run: what it is, how it was trained, its scores, its pictures and where it came from.
    What its files do not say is None ({} for a score never made)."""
    name: str
    where: str                      # "local", "kaggle" or "baseline"
    arch: str | None                # "untouched photos" for a baseline
    consumes: str | None            # "noise" or "photos"
    resolution: int | None
    steps: int | None
    train_seconds: float | None
    device: str | None              # as the leaderboard shows it: a kernel's --gpu choice (t4, t4x2)
    trained_on: str | None          # the device as the training named it (Kaggle's "Tesla T4"), else `device`
    config: dict | None             # the resolved config the run was made with
    score: dict                     # score.json
    best: dict | None               # best.json: the best checkpoint's step and value
    metrics: Path | None            # metrics.csv (None for a baseline: nothing was trained)
    samples: Path                   # the final grid
    losses: Path | None             # the loss curves (None for a baseline)
    nearest: Path                   # the closest generated/painting pairs
    date: str | None                # YYYY-MM-DD trained (local), pulled (kaggle) or scored (baseline)
    kernel: dict | None = None      # kaggle/kernel.json: the kernel, its version and URL
    standing: dict | None = None    # a kaggle run on the public leaderboard (leaderboard_kaggle.json)
    teams: int | None = None        # how many teams that leaderboard had
    stopped: dict | None = None     # stopped.json: a sweep's scheduler stopped the run early (step, metric, value)

    @property
    def scores(self) -> dict:
        return score_numbers(self.score)

    @property
    def title(self) -> str:
        """The name a user reads: the run's, and for a baseline its data source's (the folder's name,
        the record's key, carries a digest of a folder source's path)."""
        return f"untouched photos of {_source_name(self)}" if self.where == "baseline" else self.name

    @property
    def setting(self) -> str | None:
        """What was trained, whatever the training seed, the run's name and the device: runs that share it are
        seeds of one setting (run.seeds). None when the run's config is unknown."""
        if not isinstance(self.config, dict):
            return None
        sections = {name: dict(values) for name, values in self.config.items() if isinstance(values, dict)}
        for section, key in SEED_KEYS:
            sections.get(section, {}).pop(key, None)
        return json.dumps(sections, sort_keys=True, default=str)

    @property
    def seed(self) -> int | None:
        """The training seed (train.seed), when the run's config says."""
        seed = _dict(_dict(self.config).get("train")).get("seed")
        return seed if isinstance(seed, int) else None

    def value(self, key: str):
        """A config key's value ("cut.lambda_nce"), or None when the run's config does not say."""
        section, _, name = key.partition(".")
        return _dict(_dict(self.config).get(section)).get(name)

    @property
    def beside(self) -> str | None:
        """The baseline (its folder's name) this run was scored beside."""
        baseline = self.score.get("photos_baseline")
        return baseline.get("name") if isinstance(baseline, dict) else None


def _source_name(record: RunRecord) -> str:
    """A baseline's data source as the user named it (data.source: "demo", "kaggle" or a folder's path), or,
    when its score.json does not say, its folder's name less "-photos" and a folder source's digest."""
    source = record.score.get("source")
    return source if isinstance(source, str) and source else re.sub(r"(-[0-9a-f]{8})?-photos$", "", record.name)


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _dict_or_none(value) -> dict | None:
    return value if isinstance(value, dict) else None


def score_numbers(report) -> dict:
    """The numbers of a score.json (also of one written by an older painter), None where missing: an older
    score has one SWD and no standard errors."""
    report = _dict(report)
    swd, inception = report.get("swd"), _dict(report.get("inception"))
    swd = swd if isinstance(swd, dict) else {"value": swd}
    per_level = _levels(swd, "per_level")
    finest = next(iter(per_level), None)
    return {"swd": swd.get("value"), "swd_se": swd.get("se"), "swd_floor": swd.get("floor"),
            "swd_floor_se": swd.get("floor_se"), "swd_per_level": per_level or None,
            "swd_floor_per_level": _levels(swd, "floor_per_level") or None, "swd_finest": per_level.get(finest),
            "swd_finest_se": _dict(swd.get("per_level_se")).get(finest), "swd_splits": swd.get("split_values"),
            "swd_floor_splits": swd.get("floor_split_values"),
            "fid": inception.get("fid"), "fid_se": inception.get("fid_se"), "kid": inception.get("kid"),
            "mifid": inception.get("mifid"), "mifid_se": inception.get("mifid_se"),
            "copies": _dict(report.get("nearest")).get("n_copies"), "n_generated": report.get("n_generated")}


def _levels(swd: dict, key: str) -> dict[str, float]:
    """{"256": value, ..., "16": value} of the pyramid levels under `key`, finest first; {} when missing or odd."""
    levels = _dict(swd.get(key))
    if not all(str(level).isdigit() and _is_number(value) for level, value in levels.items()):
        return {}
    return {level: float(levels[level]) for level in sorted(levels, key=int, reverse=True)}


# Two scores differ when their difference exceeds TIE_Z standard errors of it (about 95% for a normal error).
TIE_Z = 2.0


def compare(a: float, a_se: float | None, b: float, b_se: float | None) -> str:
    """"ahead" when score `a` is lower (better) than `b` beyond the uncertainty of the difference, "behind"
    when higher, else "tied". Scores without a standard error (an older score.json) count as exact."""
    uncertainty = TIE_Z * ((a_se or 0.0) ** 2 + (b_se or 0.0) ** 2) ** 0.5
    if abs(a - b) <= uncertainty:
        return "tied"
    return "ahead" if a < b else "behind"


def plus_minus(value, se, digits: int = 1) -> str:
    """"57.6 ± 0.8", or the value alone when it has no standard error; "-" for no value."""
    if not _is_number(value):
        return "-"
    return f"{value:.{digits}f}" + (f" ± {se:.{digits}f}" if _is_number(se) else "")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def summary_line(numbers: dict) -> str:
    """A score in one line, from the numbers of a score stamp or a kernel's record (swd, and
    swd_floor, photos_swd, fid, mifid where known): "SWD 41.234 (floor 24.210), FID 52.25, MiFID 58.50"."""
    text = f"SWD {plus_minus(numbers['swd'], numbers.get('swd_se'), 3)}" if _is_number(numbers.get("swd")) else "no SWD"
    labels = {"swd_floor": "floor", "photos_swd": "untouched photos"}
    notes = [f"{label} {numbers[key]:.3f}" for key, label in labels.items() if _is_number(numbers.get(key))]
    if notes:
        text += f" ({'; '.join(notes)})"
    if _is_number(numbers.get("mifid")):
        text += f", FID {numbers['fid']:.2f}, MiFID {numbers['mifid']:.2f}"
    return text


def _date(stamp_time) -> str | None:
    return stamp_time[:10] if isinstance(stamp_time, str) and re.match(r"\d{4}-\d\d-\d\d", stamp_time) else None


def _standings(wd: Workdir) -> tuple[dict, int | None]:
    """Each run's public standing by name, and how many teams the board had (`painter leaderboard --kaggle`)."""
    public = _dict(read_json(wd.kaggle_standings))
    teams = public.get("teams") if isinstance(public.get("teams"), int) else None
    return {row.get("run"): row for row in public.get("runs", []) if isinstance(row, dict)}, teams


def _config(path: Path) -> dict | None:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def local(wd: Workdir, name: str) -> RunRecord:
    """A run trained here; its score only once the score stage completed."""
    folder = wd.run_folder(name)
    stamp = _dict(read_stamp(folder.train))
    summary = _dict(stamp.get("summary"))
    score = read_json(folder.score_json) if read_stamp(folder.score) is not None else None
    return RunRecord(
        name=name, where="local", arch=summary.get("arch"), consumes=summary.get("consumes", "noise"),
        resolution=summary.get("resolution"), steps=summary.get("steps"), train_seconds=summary.get("seconds"),
        device=summary.get("device"), trained_on=summary.get("device"), config=_config(folder.train_config),
        score=_dict(score), best=_dict_or_none(read_json(folder.best_record)), metrics=folder.metrics,
        samples=folder.samples, losses=folder.losses, nearest=folder.nearest, date=_date(stamp.get("created")),
        stopped=_dict_or_none(read_json(folder.stopped)) if read_stamp(folder.score) is None else None)


def kaggle(wd: Workdir, name: str) -> RunRecord:
    """A run of a Kaggle kernel, as `painter kernel pull` registered it (with the files it copied)."""
    folder = wd.run_folder(name).kaggle
    kernel = _dict(read_json(wd.run_folder(name).kernel_record))
    config, trained = _dict(kernel.get("config")), _dict(kernel.get("train"))
    standings, teams = _standings(wd)
    return RunRecord(
        name=name, where="kaggle", arch=_dict(config.get("model")).get("arch"), consumes=trained.get("consumes"),
        resolution=_dict(config.get("data")).get("resolution"), steps=_dict(config.get("train")).get("steps"),
        train_seconds=trained.get("seconds"), device=kernel.get("gpu"),
        trained_on=trained.get("device") or kernel.get("gpu"), config=kernel.get("config"),
        score=_dict(read_json(folder / SCORE)), best=_dict_or_none(read_json(folder / BEST_RECORD)),
        metrics=folder / METRICS, samples=folder / SAMPLES, losses=folder / LOSSES, nearest=folder / NEAREST,
        date=_date(kernel.get("pulled")) or _date(kernel.get("pushed")), kernel=kernel or None,
        standing=standings.get(name), teams=teams)


def baseline(wd: Workdir, name: str) -> RunRecord:
    """The untouched photos of a data source, scored like a run (score.photos_baseline)."""
    folder = wd.baselines_root / name
    score = _dict(read_json(folder / SCORE))
    return RunRecord(
        name=name, where="baseline", arch="untouched photos", consumes=None, resolution=PHOTOS_RESOLUTION,
        steps=None, train_seconds=None, device=score.get("device"), trained_on=score.get("device"), config=None,
        score=score, best=None, metrics=None, samples=folder / SAMPLES, losses=None, nearest=folder / NEAREST,
        date=_date(_dict(read_stamp(folder)).get("created")))


READERS = {"local": local, "kaggle": kaggle, "baseline": baseline}


def read(wd: Workdir, name: str, where: str) -> RunRecord:
    """The record of one run, whatever its files say (or do not)."""
    return READERS.get(where, local)(wd, name)


def read_all(wd: Workdir) -> list[RunRecord]:
    """Every run in the workdir: per run folder the run trained here (when complete, or stopped early by a
    sweep's scheduler), then the one pulled from Kaggle when complete; then every scored baseline."""
    found = []
    for folder in wd.run_folders():
        if read_stamp(folder.train) is not None or isinstance(read_json(folder.stopped), dict):
            found.append(local(wd, folder.name))
        if isinstance(read_json(folder.kernel_record), dict):
            found.append(kaggle(wd, folder.name))
    return found + [baseline(wd, path.name) for path in wd.baselines() if read_stamp(path) is not None]
