"""leaderboard: one table of every run in the workdir, written as CSV and Markdown.

Runs are ranked by MiFID (Kaggle's metric) where it was computed, then by SWD. The untouched
photos of each data source, scored like a run (score.photos_baseline), stand among them as the
baseline to beat.
"""

from __future__ import annotations

import math
import re
import statistics
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from . import records
from .artifacts import read_json, write_bytes_atomic, write_json_atomic
from .errors import PainterError
from .layout import LEADERBOARD_CSV, Workdir
from .records import KEY

COLUMNS = ["run", "where", "arch", "consumes", "resolution", "steps", "train_seconds", "device", "swd", "swd_se",
           "tied", "ranked_by", "swd_finest", "swd_finest_se", "swd_floor", "swd_floor_se", "seeds", "seed_sd",
           "setting", "fid", "fid_se", "kid", "mifid", "mifid_se", "copies", "public_mifid", "public_rank", "status"]
TEXT_COLUMNS = {"run", "where", "arch", "consumes", "device", "tied", "ranked_by", "seeds", "setting", "status"}
SEEDS = "seeds"  # the "where" of a row that stands for several seeds of one setting


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
           "device": record.device, "swd": numbers["swd"], "swd_se": numbers["swd_se"],
           "swd_finest": numbers["swd_finest"], "swd_finest_se": numbers["swd_finest_se"],
           "swd_floor": numbers["swd_floor"], "swd_floor_se": numbers["swd_floor_se"], "fid": numbers["fid"],
           "fid_se": numbers["fid_se"], "kid": numbers["kid"], "mifid_se": numbers["mifid_se"],
           "mifid": numbers["mifid"], "copies": numbers["copies"], "public_mifid": standing.get("public_mifid"),
           "public_rank": standing.get("rank"), KEY: record.name,
           "status": f"stopped early at step {record.stopped.get('step')} ({record.stopped.get('by', 'scheduler')})"
           if record.stopped else None}
    if record.where == "baseline":
        del row["consumes"]  # left empty (NaN, printed "-"): the photos consume nothing
    return row


def _table(found: list[records.RunRecord], by: str = "mifid", settings: list[str] = ()) -> pd.DataFrame:
    """The ranked table, by MiFID where computed and then SWD (`by` "mifid"), or by SWD alone ("swd"), with a
    column for each config key of `settings` (a sweep's varied keys), named by the key, after the fixed ones:
    a setting trained with several seeds is one row (their mean, with the standard error across seeds, and
    their spread), its seeds' own rows under it; each row's "ranked_by" names the metric that placed it ("mifid" or
    "swd") and its "tied" says it is level with the row above by that metric."""
    rows, groups = [], {}
    for record in found:
        rows.append({**_row(record), **{key: record.value(key) for key in settings if record.where != "baseline"}})
        if record.where != "baseline" and record.setting is not None and record.scores["swd"] is not None:
            groups.setdefault((record.where, record.setting), []).append(len(rows) - 1)
    members = {}
    for indices in groups.values():
        if len({found[i].seed for i in indices}) < 2:
            continue
        group = {**{key: rows[indices[0]][key] for key in settings},
                 **_group_row([found[i] for i in indices], [rows[i] for i in indices])}
        for i in indices:
            rows[i]["setting"] = group["run"]
        members[group[KEY]] = sorted((rows[i] for i in indices), key=lambda row: row["swd"])
        rows.append(group)
    table = _frame([row for row in rows if row.get("setting") is None], settings)
    table = table.sort_values(["mifid", "swd"] if by == "mifid" else ["swd"], na_position="last", ignore_index=True)
    table["ranked_by"] = ["mifid" if by == "mifid" and not pd.isna(mifid) else "swd" for mifid in table["mifid"]]
    table["tied"] = [i > 0 and _tied(table.iloc[i - 1], table.iloc[i]) for i in range(len(table))]
    ranked = []
    for row in table.to_dict("records"):
        seeds = members.get(row[KEY], [])
        ranked += [row, *({**member, "tied": False, "ranked_by": row["ranked_by"]} for member in seeds)]
    return _frame(ranked, settings)


def _frame(rows: list[dict], settings: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=[*COLUMNS, *settings, KEY])
    for column in COLUMNS:
        if column not in TEXT_COLUMNS:  # numbers, with NaN (not None) where missing
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def _group_row(seeds: list[records.RunRecord], rows: list[dict]) -> dict:
    """The row of one setting's seeds: their mean SWD with the standard error of that mean across seeds (the
    spread training seeds cause, larger than the scorer's own), their standard deviation, the seeds' numbers."""
    values = [row["swd"] for row in rows]
    mean, sd = statistics.mean(values), statistics.stdev(values)

    def mean_of(column: str):
        known = [row[column] for row in rows if row[column] is not None and not pd.isna(row[column])]
        return sum(known) / len(known) if len(known) == len(rows) else None

    stem = re.sub(r"-seed\d+$", "", seeds[0].name)
    first = rows[0]
    return {**{column: first.get(column) for column in ("where", "arch", "consumes", "resolution", "steps", "device")},
            "run": stem, "where": SEEDS, "train_seconds": mean_of("train_seconds"), "swd": mean,
            "swd_se": sd / len(values) ** 0.5, "swd_finest": mean_of("swd_finest"), "swd_floor": mean_of("swd_floor"),
            "seeds": ", ".join(str(record.seed) for record in sorted(seeds, key=lambda r: r.seed)), "seed_sd": sd,
            "fid": mean_of("fid"), "kid": mean_of("kid"), "mifid": mean_of("mifid"),
            "copies": sum(row["copies"] or 0 for row in rows), KEY: f"{stem} ({SEEDS})"}


def _tied(above: pd.Series, row: pd.Series) -> bool:
    """Whether a row is within the uncertainty of the row above it, by the metric that ranked both."""
    if above["ranked_by"] != row["ranked_by"]:
        return False  # one ranked by MiFID, the other by SWD below it: not comparable
    metric = row["ranked_by"]
    if pd.isna(row[metric]) or pd.isna(above[metric]):
        return False
    se = [None if pd.isna(value) else value for value in (row[f"{metric}_se"], above[f"{metric}_se"])]
    return records.compare(row[metric], se[0], above[metric], se[1]) == "tied"


def run(wd: Workdir, log=print, runs: list[str] | None = None, out: Path | None = None,
        by: str = "mifid", settings: list[str] = ()) -> pd.DataFrame:
    """The table of `runs` (default: every run in the workdir) as CSV, and the report (Markdown, HTML); ranked
    by MiFID where computed, then SWD, or by SWD alone (`by` "swd", a sweep spec's metric); each config key of
    `settings` (a sweep's grid and random keys) is a column of its own."""
    from .report import FILES_DIR, write_report

    found = records.read_all(wd)
    if runs is not None:  # those runs, and the baselines they were scored beside
        beside = {record.beside for record in found if record.where == "local" and record.name in runs}
        found = [record for record in found if record.name in (beside if record.where == "baseline" else runs)]
    table = _table(found, by, list(settings))
    out = Path(out) if out is not None else wd.root
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / LEADERBOARD_CSV, table.drop(columns=KEY).to_csv(index=False).encode())
    if table.empty:
        log(f"leaderboard: no trained runs in {wd.runs_root} yet")
    else:
        with pd.option_context("display.width", 200, "display.max_columns", None):
            log(_on_screen(table).to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"))
        if table["tied"].any():
            log(TIE_NOTE)
    written = write_report(wd, table, out, log=log)
    images_kb = sum(path.stat().st_size for path in written["files"]) / 1024
    html_kb = written["html"].stat().st_size / 1024
    log(f"leaderboard: wrote {out / LEADERBOARD_CSV}, {written['markdown']} ({len(written['files'])} images in "
        f"{FILES_DIR}/, {images_kb:,.0f} KB) and {written['html']} ({html_kb:,.0f} KB, self-contained)")
    return table


TIE_NOTE = (f"≈: level with the run above: their MiFIDs (else SWDs) differ by less than {records.TIE_Z:g} standard "
            "errors of the difference (± is the standard error: SWD's over score.splits splits, FID's and MiFID's "
            "from resampling the generated images)")


def _on_screen(table: pd.DataFrame) -> pd.DataFrame:
    """The table as a terminal shows it: SWDs with their ±, "≈" before a run level with the one above."""
    shown = table[[c for c in table if not c.endswith("_se") and c not in ("tied", "ranked_by", "setting", KEY)]].copy()
    shown["run"] = [f"  {run}" if isinstance(setting, str) else run  # a seed, under its setting
                    for run, setting in zip(table["run"], table["setting"])]
    for column in ("swd", "swd_finest", "swd_floor", "fid", "mifid"):
        shown[column] = [None if pd.isna(value) else ("≈ " if tied and column == by else "")
                         + records.plus_minus(value, se) for value, se, tied, by in
                         zip(table[column], table[f"{column}_se"], table["tied"], table["ranked_by"])]
    return shown


def compare(wd: Workdir, first: str, second: str) -> str:
    """Which of two runs (names as the leaderboard shows them) is closer to the paintings by SWD, by how much and
    how sure: paired over the same splits when both were scored over the same ones (the same halves of the
    paintings and directions: their floors agree split by split), else from the two standard errors."""
    a, b = _find(wd, first), _find(wd, second)
    na, nb = a.scores, b.scores
    if na["swd"] is None or nb["swd"] is None:
        raise PainterError(f"{(a if na['swd'] is None else b).title} has no SWD yet: score it first (painter score)")
    paired = na["swd_splits"] and nb["swd_splits"] and na["swd_floor_splits"] \
        and na["swd_floor_splits"] == nb["swd_floor_splits"] and len(na["swd_splits"]) == len(nb["swd_splits"]) > 1
    if paired:
        differences = [x - y for x, y in zip(na["swd_splits"], nb["swd_splits"])]
        difference = statistics.mean(differences)
        se = statistics.stdev(differences) / len(differences) ** 0.5
        how = f"paired over the same {len(differences)} splits"
    else:
        difference = na["swd"] - nb["swd"]
        se = ((na["swd_se"] or 0) ** 2 + (nb["swd_se"] or 0) ** 2) ** 0.5 if na["swd_se"] or nb["swd_se"] else None
        how = "from the two scores' standard errors (not scored over the same splits)" if se else \
            "no standard error known (a score from before painter measured one): the difference may be noise"
    verdict = records.compare(difference, se, 0.0, None)
    size = records.plus_minus(abs(difference), se, 2)
    if verdict == "tied":
        return (f"{a.title} and {b.title} are level: SWD {records.plus_minus(na['swd'], na['swd_se'], 2)} against "
                f"{records.plus_minus(nb['swd'], nb['swd_se'], 2)}, a difference of {size}, within "
                f"{records.TIE_Z:g} standard errors ({how}).")
    ahead, behind = (a, b) if verdict == "ahead" else (b, a)
    sure = f", {abs(difference) / se:.1f} standard errors" if se else ""
    return (f"{ahead.title} is ahead of {behind.title} by {size} SWD{sure} ({how}): "
            f"{records.plus_minus(na['swd'], na['swd_se'], 2)} against "
            f"{records.plus_minus(nb['swd'], nb['swd_se'], 2)}.")


def _find(wd: Workdir, name: str) -> records.RunRecord:
    """The record a user names: a run (the one trained here before one pulled from Kaggle) or a baseline's title."""
    found = [record for record in records.read_all(wd) if name in (record.name, record.title)]
    if not found:
        raise PainterError(f"no run named {name!r} in {wd.root}; `painter leaderboard` lists them")
    return found[0]


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
