"""The leaderboard report (pipeline.report) on a workdir of real files: three runs, one from Kaggle."""

import base64
import html
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import leaderboard, report
from pipeline.artifacts import Workdir

FLOOR = 24.2137
EVIL = "evil<script>alert(1)"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# ---------------------------------------------------------------------------------------------
# A fake workdir


def grid_png(path: Path, cell: int, seed: int) -> None:
    """An 8x8 grid of noisy gradients, as save_grid lays them out (2 px padding)."""
    rng = np.random.default_rng(seed)
    side = 8 * (cell + 2) + 2
    canvas = np.zeros((side, side, 3), np.uint8)
    ramp = np.linspace(0, 255, cell)
    for i in range(64):
        r, c = divmod(i, 8)
        tile = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (cell, 1)), np.full((cell, cell), i * 4)], -1)
        tile = np.clip(tile + rng.normal(0, 20, tile.shape), 0, 255).astype(np.uint8)
        canvas[2 + r * (cell + 2):2 + r * (cell + 2) + cell, 2 + c * (cell + 2):2 + c * (cell + 2) + cell] = tile
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)


def plot_png(path: Path, size=(1100, 350)) -> None:
    """An RGBA plot-like image, as matplotlib saves them."""
    image = Image.new("RGBA", size, (255, 255, 255, 255))
    pixels = image.load()
    for x in range(40, size[0] - 20):
        pixels[x, int(size[1] / 2 + 60 * np.sin(x / 40))] = (31, 119, 180, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def metrics_csv(path: Path, steps: int, evals: dict | None) -> None:
    """metrics.csv: losses every 10 steps; with `evals` ({metric: [values]}) the new eval columns, filled every
    steps/len(values) steps; without, the columns of a run from before evaluation during training."""
    rows = []
    for step in range(10, steps + 1, 10):
        rows.append({"step": step, "loss_d": 1.2 - step / (4 * steps), "loss_g": 0.7 + step / (3 * steps), "gp": None,
                     "w_estimate": None, "d_real": 0.6, "d_fake": 0.4, "img_per_s": 250.0, "seconds": step / 10})
    table = pd.DataFrame(rows)
    if evals is not None:
        n = len(next(iter(evals.values())))
        every = steps // n
        for metric, values in evals.items():
            table[metric] = np.nan
            for k, value in enumerate(values, start=1):
                table.loc[table["step"] == k * every, metric] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


def score_json(swd: float, floor: float | None = FLOOR, copies: int = 0, inception: dict | None = None) -> dict:
    return {"run": "?", "n_generated": 7000, "n_scored": 1000, "n_reference": 300,
            "swd": {"value": swd, "floor": floor, "per_level": [swd] * 4, "n_used": 300},
            "nearest": {"n_copies": copies, "copy_threshold": 0.01, "closest": []},
            "inception": inception or {"computed": False, "reason": "no Inception weights (offline)"},
            "device": "cpu", "seconds": 12.5}


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def local_run(root: Path, name: str, *, arch: str, resolution: int, steps: int, score: dict) -> Path:
    run = root / "runs" / name
    write_json(run / "train" / "_stamp.json", {
        "fingerprint": "x", "created": "2024-05-0%dT10:00:00+00:00" % (1 + len(name) % 3),
        "summary": {"arch": arch, "resolution": resolution, "steps": steps, "seconds": steps * 0.9, "device": "cpu"}})
    write_json(run / "score" / "_stamp.json", {"fingerprint": "y", "summary": {}})
    write_json(run / "score" / "score.json", score)
    return run


def make_workdir(root: Path) -> Workdir:
    # 1. a scored run with Inception metrics, eval rows (SWD and FID) and a best checkpoint; 256 px grid
    best = local_run(root, "sngan-diffaug", arch="sngan", resolution=256, steps=400, score=score_json(
        31.4159, inception={"computed": True, "fid": 52.25, "kid": 0.03125, "mifid": 58.5,
                            "memorization_distance": 0.21}))
    grid_png(best / "train" / "samples.png", cell=256, seed=1)
    plot_png(best / "train" / "losses.png")
    metrics_csv(best / "train" / "metrics.csv", 400, {"swd": [90.0, 60.0, 38.0, 41.0], "fid": [120, 80, 60, 63],
                                                      "kid": [0.1, 0.07, 0.05, 0.055]})
    write_json(best / "train" / "best.json", {"step": 300, "metric": "swd", "value": 38.0})
    plot_png(best / "score" / "nearest.png", (310, 600))  # no copies: not shown

    # 2. an old run: user-chosen name with markup, no samples.png, metrics.csv without eval columns, copies
    old = local_run(root, EVIL, arch="dcgan", resolution=32, steps=200, score=score_json(47.5, copies=2))
    plot_png(old / "train" / "losses.png", (700, 350))
    metrics_csv(old / "train" / "metrics.csv", 200, None)
    plot_png(old / "score" / "nearest.png", (310, 600))

    # 3. a Kaggle run: kernel.json and score.json registered by `kernel pull`; its grid and metrics copied along
    kaggle = root / "runs" / "wgan-gp-t4" / "kaggle"
    write_json(kaggle / "score.json", score_json(35.75))
    write_json(kaggle / "kernel.json", {
        "kernel": "someone/painter-wgan-gp-t4", "version": 3, "gpu": "t4",
        "url": "https://www.kaggle.com/code/someone/painter-wgan-gp-t4", "pulled": "2024-05-04T08:00:00+00:00",
        "config": {"model": {"arch": "wgan-gp"}, "data": {"resolution": 64}, "train": {"steps": 300}},
        "score": {"swd": 35.75}, "train": {"device": "Tesla T4", "seconds": 1800.0}})
    grid_png(kaggle / "samples.png", cell=64, seed=3)
    metrics_csv(kaggle / "metrics.csv", 300, {"swd": [80.0, 50.0, 36.0]})
    write_json(kaggle / "best.json", {"step": 300, "metric": "swd", "value": 36.0})
    write_json(root / "leaderboard_kaggle.json", {"teams": 1000, "runs": [
        {"run": "wgan-gp-t4", "public_mifid": 60.5, "rank": 123, "top_percent": 12.3, "status": "complete",
         "teams": 1000}]})
    return Workdir(root)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "work"
    wd = make_workdir(root)
    table = leaderboard.collect(wd)
    out = root.parent / "results"
    lines = []
    paths = report.write_report(wd, table, out, log=lines.append)
    return {"wd": wd, "table": table, "out": out, "paths": paths, "log": lines,
            "md": (out / "leaderboard.md").read_text(), "html": (out / "leaderboard.html").read_text()}


# ---------------------------------------------------------------------------------------------
# Reading the outputs back


class Page(HTMLParser):
    """Checks nesting (every non-void tag closed in order) and collects images, tables and text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.imgs, self.tags, self.text = [], [], [], [], []
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag in ("td", "th"):
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse_html(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def md_unescape(cell: str) -> str:
    return html.unescape(re.sub(r"\\(.)", r"\1", cell.replace("**", ""))).strip()


def md_table(md: str) -> list[dict]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| rank |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([md_unescape(c) for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row)) for row in body]


def html_table(page: Page) -> list[dict]:
    assert len(page.tables) == 1
    header, *body = page.tables[0]
    return [dict(zip(header, row)) for row in body]


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def expected_scores(wd: Workdir, table: pd.DataFrame) -> list[dict]:
    scores = []
    for run, where in zip(table["run"], table["where"]):
        folder = wd.run(run) / ("kaggle" if where == "kaggle" else "score")
        scores.append(json.loads((folder / "score.json").read_text()))
    return scores


# ---------------------------------------------------------------------------------------------


def test_html_is_well_formed_self_contained_and_embeds_real_pngs(written):
    text = written["html"]
    page = parse_html(text)
    assert page.problems == [] and page.stack == []
    assert [tag for tag, _ in page.tags].count("table") == 1
    assert 'src="http' not in text and "<link" not in text.lower() and "<script" not in text.lower()
    assert "url(" not in text and "@import" not in text
    assert len(page.imgs) >= 7  # 2 charts, 2 grids, 3 loss plots, 1 nearest-pairs figure
    for img in page.imgs:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        with Image.open(io.BytesIO(base64.b64decode(img["src"][len(prefix):], validate=True))) as image:
            assert image.format == "PNG" and (image.width, image.height) == (int(img["width"]), int(img["height"]))
    links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert "https://www.kaggle.com/code/someone/painter-wgan-gp-t4" in links
    assert all(href.startswith(("#", "https://")) for href in links)


def test_markdown_images_exist_as_small_pngs(written):
    out = written["out"]
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", written["md"])
    assert len(refs) >= 7 and all(ref.startswith("leaderboard_files/") for ref in refs)
    for ref in refs:
        with Image.open(out / ref) as image:
            assert image.format == "PNG"
            if ref.endswith("-samples.png"):
                assert image.width <= report.GRID_MAX_WIDTH
    files = sorted((out / "leaderboard_files").iterdir())
    assert sorted(out / ref for ref in refs) == files  # nothing written that is not shown
    assert sum(f.stat().st_size for f in files) < 1_000_000
    assert written["paths"]["files"] and set(written["paths"]["files"]) == set(files)


def test_ranking_in_both_matches_the_scores_best_first(written):
    table, wd = written["table"], written["wd"]
    assert table["run"].tolist() == ["sngan-diffaug", "wgan-gp-t4", EVIL]  # MiFID first, then SWD
    scores = expected_scores(wd, table)
    for rows in (md_table(written["md"]), html_table(parse_html(written["html"]))):
        assert [row["rank"] for row in rows] == ["1", "2", "3"]
        assert [row["run"].replace(" BEST", "").replace("best", "").strip() for row in rows] == table["run"].tolist()
        for row, score in zip(rows, scores):
            assert number(row["SWD"]) == pytest.approx(score["swd"]["value"], rel=1e-3)
            if score["inception"]["computed"]:
                assert number(row["MiFID"]) == pytest.approx(score["inception"]["mifid"], rel=1e-3)
                assert number(row["FID"]) == pytest.approx(score["inception"]["fid"], rel=1e-3)
            else:
                assert row["MiFID"] == "-"
        assert rows[1]["where"] == "kaggle" and rows[1]["Kaggle MiFID"] == "60.5"
        assert rows[1]["Kaggle rank"] == "123 of 1,000 (top 12.3%)"
        assert rows[2]["copies"] == "2" and rows[0]["train time"] == "6.0 min"
        assert rows[1]["train time"] == "30.0 min"  # from the kernel's train summary
    page = parse_html(written["html"])
    best_rows = [attrs for tag, attrs in page.tags if tag == "tr" and "best" in attrs.get("class", "")]
    assert len(best_rows) == 1


def test_floor_in_both_and_on_the_charts(written):
    sentence = "SWD of one half of the paintings against the other: 24.21; a run at the floor is as close"
    assert sentence in written["md"]
    assert sentence in " ".join("".join(parse_html(written["html"]).text).split())
    chart = written["out"] / "leaderboard_files" / "chart-eval-vs-step.png"
    assert chart.is_file() and "leaderboard_files/chart-eval-vs-step.png" in written["md"]
    assert "leaderboard_files/chart-final-swd.png" in written["md"]
    with Image.open(chart) as image:
        assert image.width > 900  # two panels: SWD and FID
    assert "best checkpoint" in written["md"] and "step 300 of 400" in written["md"]


def test_run_names_are_escaped(written):
    assert "<script" not in written["html"].lower()
    assert html.escape(EVIL) in written["html"]
    assert "<script" not in written["md"].lower()
    assert EVIL in [md_unescape(c) for c in re.findall(r"### \d\. (.*)", written["md"])]


def test_missing_pieces_are_stated(written):
    md, page_text = written["md"], " ".join("".join(parse_html(written["html"]).text).split())
    for text in (md, page_text):
        assert "no samples (train/samples.png not found)" in text
        assert "metrics.csv has no evaluation columns" in text
        assert "not computed: no Inception weights (offline)" in text
    evil = md.split("### 3.")[1]
    assert "closest generated/painting pairs" in evil  # copies: nearest.png shown
    assert "closest generated/painting pairs" not in md.split("### 1.")[1].split("### 2.")[0]
    assert "leaderboard_files/run-wgan-gp-t4-" in md and "-kaggle-losses.png" in md  # drawn from metrics.csv
    assert any("leaderboard: wrote" in line for line in written["log"])


def test_rewrite_clears_stale_files_and_names_disagreeing_floors(tmp_path):
    wd = make_workdir(tmp_path / "work")
    out = tmp_path / "out"
    report.write_report(wd, leaderboard.collect(wd), out, log=lambda *_: None)
    mine = sorted(p.name for p in (out / "leaderboard_files").iterdir())
    keep = out / "leaderboard_files" / "notes.txt"
    keep.write_text("someone else's")
    (wd.run(EVIL) / "score" / "score.json").write_text(json.dumps(score_json(47.5, floor=30.0, copies=0)))
    (wd.run(EVIL) / "train" / "losses.png").unlink()
    (wd.run(EVIL) / "train" / "metrics.csv").unlink()
    write_json(wd.run("never-scored") / "train" / "_stamp.json", {"fingerprint": "x", "summary": {"arch": "dcgan"}})
    lines = []
    report.write_report(wd, leaderboard.collect(wd), out, log=lines.append)
    now = sorted(p.name for p in (out / "leaderboard_files").iterdir())
    gone = set(mine) - set(now)
    assert gone and all(EVIL not in name and "-local-" in name for name in gone)  # its losses and nearest pairs
    assert keep.is_file()
    md = (out / "leaderboard.md").read_text()
    assert "floors disagree" in md and "24.21 for" in md and "30 for" in md
    assert any("floors disagree" in line for line in lines)
    assert "no loss curves" in md
    never = md.split("never-scored")[-1]
    assert "SWD: not scored" in never and "no samples" in never and "no metrics.csv" in never
    assert parse_html((out / "leaderboard.html").read_text()).problems == []


def test_empty_workdir(tmp_path):
    wd = Workdir(tmp_path / "work")
    paths = report.write_report(wd, leaderboard.collect(wd), log=lambda *_: None)
    assert paths["markdown"] == tmp_path / "work" / "leaderboard.md"
    assert "No trained runs yet" in paths["markdown"].read_text()
    page = parse_html(paths["html"].read_text())
    assert page.problems == [] and page.stack == []
