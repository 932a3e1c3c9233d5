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
that this one does not write are removed (only names the report gives: `chart-*.png`, `run-*.png`).

A module per job, in the order `write_report` runs them: `collect` (a RunView per row: what each run
left behind), `charts` (the pictures, as PNG bytes), `text` (the words both outputs share), then
`markdown` and `html` (the two outputs).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..artifacts import write_bytes_atomic
from ..layout import LEADERBOARD_HTML, LEADERBOARD_MD, Workdir
from .charts import (BEST_COLOUR, GRID_MAX_WIDTH, OTHER_COLOUR, OUR_FILES, PHOTOS_FILL, build_images,
                     chart_eval_curves, chart_final_swd)
from .collect import RunView, baselines, best_run, collect_runs, floors
from .html import render_html
from .markdown import FILES_DIR, render_markdown
from .text import EVAL_CAPTION, EVAL_PHOTOS, _fmt, baseline_sentences

# what the leaderboard and the tests use; the rest is reached through the modules
__all__ = ["BEST_COLOUR", "EVAL_CAPTION", "EVAL_PHOTOS", "FILES_DIR", "GRID_MAX_WIDTH", "OTHER_COLOUR",
           "PHOTOS_FILL", "RunView", "baseline_sentences", "baselines", "best_run", "build_images",
           "chart_eval_curves", "chart_final_swd", "collect_runs", "floors", "render_html", "render_markdown",
           "write_report"]


def write_report(wd: Workdir, table: pd.DataFrame, out_dir: Path | None = None, log=print, *,
                 machine: str | None = None) -> dict:
    """Write leaderboard.md (+ leaderboard_files/*.png) and a self-contained leaderboard.html into
    `out_dir` (default: the workdir root) for the runs of `table` (leaderboard.collect's, best first).
    `machine` optionally names the computer the local runs were trained on. Returns the paths written, which
    the caller names (leaderboard.run: in one line with the CSV)."""
    out_dir = Path(out_dir) if out_dir is not None else wd.root
    files_dir = out_dir / FILES_DIR
    files_dir.mkdir(parents=True, exist_ok=True)
    views = collect_runs(wd, table)
    found = floors(views)
    images = build_images(views, found)
    for name, (data, _) in images.items():
        write_bytes_atomic(files_dir / name, data)
    md_path, html_path = out_dir / LEADERBOARD_MD, out_dir / LEADERBOARD_HTML
    write_bytes_atomic(md_path, render_markdown(views, found, images, machine=machine).encode())
    write_bytes_atomic(html_path, render_html(views, found, images, machine=machine).encode())
    for stale in files_dir.iterdir():  # after the new report is complete: it never points at a missing file
        if stale.is_file() and OUR_FILES.match(stale.name) and stale.name not in images:
            stale.unlink()
    if len(found) > 1:
        log("leaderboard: the runs' real-vs-real SWD floors differ (other paintings, or fewer images compared): "
            + "; ".join(f"{_fmt(v)} for {', '.join(r)}" for v, r in sorted(found.items())))
    return {"markdown": md_path, "html": html_path, "files": [files_dir / name for name in images]}
