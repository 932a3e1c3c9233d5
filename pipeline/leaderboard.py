"""leaderboard: one table of every run in the workdir, written as CSV and Markdown.

Runs are ranked by MiFID (Kaggle's metric) where it was computed, then by SWD.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from .artifacts import Workdir, read_stamp, write_bytes_atomic

COLUMNS = ["run", "arch", "resolution", "steps", "train_seconds", "device", "swd", "fid", "kid", "mifid", "copies"]


def collect(wd: Workdir) -> pd.DataFrame:
    rows = []
    for run_dir in wd.runs():
        train = read_stamp(run_dir / "train")
        if train is None:
            continue  # still training, or never trained
        summary = train["summary"]
        row = {"run": run_dir.name, "arch": summary.get("arch"), "resolution": summary.get("resolution"),
               "steps": summary.get("steps"), "train_seconds": summary.get("seconds"),
               "device": summary.get("device")}
        score_file = run_dir / "score" / "score.json"
        if read_stamp(run_dir / "score") is not None and score_file.exists():
            report = json.loads(score_file.read_text())
            inception = report.get("inception", {})
            row.update(swd=report["swd"]["value"], fid=inception.get("fid"), kid=inception.get("kid"),
                       mifid=inception.get("mifid"), copies=report.get("nearest", {}).get("n_copies"))
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["mifid", "swd"], na_position="last", ignore_index=True)


def to_markdown(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def run(wd: Workdir, log=print) -> pd.DataFrame:
    table = collect(wd)
    wd.root.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(wd.root / "leaderboard.csv", table.to_csv(index=False).encode())
    write_bytes_atomic(wd.root / "leaderboard.md", to_markdown(table).encode())
    if table.empty:
        log(f"leaderboard: no trained runs in {wd.root / 'runs'} yet")
    else:
        with pd.option_context("display.width", 200, "display.max_columns", None):
            log(table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"))
    log(f"leaderboard: wrote {wd.root / 'leaderboard.csv'} and {wd.root / 'leaderboard.md'}")
    return table
