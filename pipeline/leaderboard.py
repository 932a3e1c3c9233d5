"""leaderboard: one table of every run in the workdir, written as CSV and Markdown.

Runs are ranked by MiFID (Kaggle's metric) where it was computed, then by SWD. The untouched
photos of each data source, scored like a run (score.photos_baseline), stand among them as the
baseline to beat.
"""

from __future__ import annotations

import math
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from . import records
from .artifacts import read_json, write_bytes_atomic, write_json_atomic
from .errors import PainterError
from .layout import LEADERBOARD_CSV, Workdir
from .records import KEY

COLUMNS = ["run", "where", "arch", "consumes", "resolution", "steps", "train_seconds", "device", "swd", "fid", "kid",
           "mifid", "copies", "public_mifid", "public_rank"]
TEXT_COLUMNS = {"run", "where", "arch", "consumes", "device"}


def collect(wd: Workdir) -> pd.DataFrame:
    """One row per run trained here ("local"), per run pulled from a Kaggle kernel ("kaggle"), and per
    data source whose untouched photos were scored ("baseline"). "run" is the name a user reads (records'
    title); the last column, KEY, is the one the record is read by."""
    return _table(records.read_all(wd))


def _row(record: records.RunRecord) -> dict:
    numbers, standing = record.scores, record.standing or {}
    row = {"run": record.title, "where": record.where, "arch": record.arch, "consumes": record.consumes,
           "resolution": record.resolution, "steps": record.steps,
           "train_seconds": record.train_seconds if record.where == "local" else None,  # a kernel's: on its card
           "device": record.device, "swd": numbers["swd"], "fid": numbers["fid"], "kid": numbers["kid"],
           "mifid": numbers["mifid"], "copies": numbers["copies"], "public_mifid": standing.get("public_mifid"),
           "public_rank": standing.get("rank"), KEY: record.name}
    if record.where == "baseline":
        del row["consumes"]  # left empty (NaN, printed "-"): the photos consume nothing
    return row


def _table(found: list[records.RunRecord]) -> pd.DataFrame:
    table = pd.DataFrame([_row(record) for record in found], columns=[*COLUMNS, KEY])
    for column in COLUMNS:
        if column not in TEXT_COLUMNS:  # numbers, with NaN (not None) where missing
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table.sort_values(["mifid", "swd"], na_position="last", ignore_index=True)


def run(wd: Workdir, log=print, runs: list[str] | None = None, out: Path | None = None) -> pd.DataFrame:
    """The table of `runs` (default: every run in the workdir) as CSV, and the report (Markdown, HTML)."""
    from .report import FILES_DIR, write_report

    found = records.read_all(wd)
    table = _table(found)
    if runs is not None:  # those runs, and the baselines they were scored beside
        beside = {record.beside for record in found if record.where == "local" and record.name in runs}
        keep = table[KEY].isin(runs) & (table["where"] != "baseline") | \
            table[KEY].isin(beside) & (table["where"] == "baseline")
        table = table[keep].reset_index(drop=True)
    out = Path(out) if out is not None else wd.root
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / LEADERBOARD_CSV, table[COLUMNS].to_csv(index=False).encode())
    if table.empty:
        log(f"leaderboard: no trained runs in {wd.runs_root} yet")
    else:
        with pd.option_context("display.width", 200, "display.max_columns", None):
            log(table[COLUMNS].to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"))
    written = write_report(wd, table, out, log=log)
    images_kb = sum(path.stat().st_size for path in written["files"]) / 1024
    html_kb = written["html"].stat().st_size / 1024
    log(f"leaderboard: wrote {out / LEADERBOARD_CSV}, {written['markdown']} ({len(written['files'])} images in "
        f"{FILES_DIR}/, {images_kb:,.0f} KB) and {written['html']} ({html_kb:,.0f} KB, self-contained)")
    return table


def public_leaderboard(api, log=print) -> pd.DataFrame:
    """The competition's whole public leaderboard (one CSV in a zip), as TeamName and Score."""
    from . import kaggle_api

    with tempfile.TemporaryDirectory(prefix="painter-leaderboard-") as dest:
        kaggle_api.call("downloading the public leaderboard", api.competition_leaderboard_download,
                        kaggle_api.COMPETITION, dest, log=log)
        try:
            with zipfile.ZipFile(Path(dest) / f"{kaggle_api.COMPETITION}.zip") as zf:
                return pd.read_csv(zf.open(zf.namelist()[0]))
        except (OSError, zipfile.BadZipFile, IndexError, KeyError, pd.errors.ParserError) as exc:
            raise PainterError(f"the public leaderboard from Kaggle is unreadable ({exc})") from None


def kaggle_standings(wd: Workdir, log=print) -> pd.DataFrame:
    """Where each of our submitted runs stands on the public leaderboard (MiFID: lower is better)."""
    from . import kaggle_api

    submitted = {folder.name: record for folder in wd.run_folders()
                 if (record := read_json(folder.submission_record)) is not None}
    if not submitted:
        raise PainterError("no run has been submitted to Kaggle from this workdir yet (`painter submit --kaggle`)")
    api = kaggle_api.client(log)
    mine = kaggle_api.call("listing your submissions", api.competition_submissions, kaggle_api.COMPETITION,
                           page_size=100, log=log) or []
    by_ref = {getattr(s, "ref", None): s for s in mine}
    board = public_leaderboard(api, log)
    scores = pd.to_numeric(board["Score"], errors="coerce").dropna()
    rows = []
    for run, record in sorted(submitted.items()):
        submission = by_ref.get(record.get("ref"))
        status = str(getattr(submission, "status", "not listed")).split(".")[-1].lower()
        try:
            score = float(getattr(submission, "public_score", "") or "nan")
        except ValueError:
            score = math.nan
        rank = int((scores < score).sum()) + 1 if not math.isnan(score) else None
        rows.append({"run": run, "kernel": record["kernel"], "version": record["version"], "status": status,
                     "public_mifid": None if math.isnan(score) else score, "rank": rank, "teams": len(scores),
                     "top_percent": round(100 * rank / max(len(scores), 1), 1) if rank else None})
    table = pd.DataFrame(rows)
    write_json_atomic(wd.kaggle_standings, {"teams": len(scores), "runs": rows})
    return table
