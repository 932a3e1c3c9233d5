"""leaderboard.html: the report as one self-contained page (inline CSS, images as data: URIs, no script)."""

from __future__ import annotations

import base64
import html  # the standard library's: imports are absolute

from .collect import RunView, baselines, best_run
from .text import (LEVELS_CAPTION, NUMBERS_NOTE, _fmt, baseline_sentences, caption, card_facts, card_subtitle,
                   eval_caption, final_swd_caption, floor_sentences, provenance, ranking, translation_note)

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
    title = (f'<span class="rank">#{view.rank}</span>{_e(view.title)}'
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
                  '<div class="floor-note">' + "".join(f"<p>{_e(s)}</p>" for s in floor_sentences(found, views))
                  + "</div>",
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
        if "chart-swd-levels.png" in images:
            parts.append(f"<figure>{_img(images, 'chart-swd-levels.png', 'SWD per pyramid level')}"
                         f"<figcaption>{_e(LEVELS_CAPTION)}</figcaption></figure>")
        best = best_run(views)
        parts += ["</div></section>", '<section id="runs"><h2>Runs</h2>',
                  *(_html_card(view, images, best) for view in views if not view.seeds), "</section>"]
    parts.append("<footer>Written by painter's leaderboard report.</footer></main></body></html>\n")
    return "\n".join(parts)
