"""leaderboard.md: the report as Markdown for a repository page, its images as files beside it."""

from __future__ import annotations

import html
import re

from .collect import RunView, best_run
from .text import (LEVELS_CAPTION, NUMBERS_NOTE, baseline_sentences, caption, card_facts, card_subtitle, eval_caption,
                   final_swd_caption, floor_sentences, provenance, ranking, translation_note)

FILES_DIR = "leaderboard_files"  # beside leaderboard.md, which links its images there


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
              *(_md(s) for s in floor_sentences(found, views)), "", NUMBERS_NOTE + translation_note(views), ""]
    if "chart-eval-vs-step.png" in images:
        lines += ["## Evaluation during training", "", f"![SWD vs training step]({FILES_DIR}/chart-eval-vs-step.png)",
                  "", eval_caption(views), ""]
    else:
        lines += ["## Evaluation during training", "", "No run evaluated its generator during training.", ""]
    if "chart-final-swd.png" in images:
        lines += ["## Final SWD", "", f"![final SWD per run]({FILES_DIR}/chart-final-swd.png)", "",
                  final_swd_caption(views), ""]
    if "chart-swd-levels.png" in images:
        lines += ["## SWD per level", "", f"![SWD per pyramid level]({FILES_DIR}/chart-swd-levels.png)", "",
                  LEVELS_CAPTION, ""]
    lines += ["## Runs", ""]
    for view in (v for v in views if not v.seeds):  # a setting's seeds have their own cards
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

