"""The leaderboard report (pipeline.report) on a workdir of real files: three runs, one from Kaggle; and on
one with a translation run, a noise run and the untouched photos scored as the baseline to beat."""

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
from pipeline.layout import Workdir

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


def local_run(root: Path, name: str, *, arch: str, resolution: int, steps: int, score: dict,
              consumes: str | None = None) -> Path:
    run = root / "runs" / name
    summary = {"arch": arch, "resolution": resolution, "steps": steps, "seconds": steps * 0.9, "device": "cpu"}
    if consumes is not None:  # what train's summary says since translation architectures
        summary["consumes"] = consumes
    write_json(run / "train" / "_stamp.json", {
        "fingerprint": "x", "created": "2024-05-0%dT10:00:00+00:00" % (1 + len(name) % 3), "summary": summary})
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
        folder = wd.run_folder(run).root / ("kaggle" if where == "kaggle" else "score")
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


def test_rewrite_clears_stale_files_and_names_disagreeing_floors(tmp_path):
    wd = make_workdir(tmp_path / "work")
    out = tmp_path / "out"
    report.write_report(wd, leaderboard.collect(wd), out, log=lambda *_: None)
    mine = sorted(p.name for p in (out / "leaderboard_files").iterdir())
    keep = out / "leaderboard_files" / "notes.txt"
    keep.write_text("someone else's")
    (wd.run_folder(EVIL).root / "score" / "score.json").write_text(json.dumps(score_json(47.5, floor=30.0, copies=0)))
    (wd.run_folder(EVIL).root / "train" / "losses.png").unlink()
    (wd.run_folder(EVIL).root / "train" / "metrics.csv").unlink()
    write_json(wd.run_folder("never-scored").root / "train" / "_stamp.json", {"fingerprint": "x", "summary": {"arch": "dcgan"}})
    lines = []
    report.write_report(wd, leaderboard.collect(wd), out, log=lines.append)
    now = sorted(p.name for p in (out / "leaderboard_files").iterdir())
    gone = set(mine) - set(now)
    assert gone and all(EVIL not in name and "-local-" in name for name in gone)  # its losses and nearest pairs
    assert keep.is_file()
    md = (out / "leaderboard.md").read_text()
    assert "floors differ" in md and "24.21 for" in md and "30 for" in md
    assert any("floors differ" in line for line in lines)
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


# ---------------------------------------------------------------------------------------------
# The untouched photos as the baseline to beat, beside a translation run and a noise run

PHOTOS = "data-1a2b3c4d-photos"  # the folder of data.source = "../shared/data": its name and a digest of its path
TITLE = "untouched photos of ../shared/data"  # what a user reads


def baseline_folder(root: Path, name: str, swd: float, source: str = "../shared/data") -> Path:
    """What score.photos_baseline leaves in <workdir>/baselines/<name>/."""
    folder = root / "baselines" / name
    write_json(folder / "_stamp.json", {"fingerprint": "z", "created": "2024-05-06T09:00:00+00:00",
                                        "summary": {"swd": swd}})
    write_json(folder / "score.json", {**score_json(swd), "run": "untouched photos", "source": source,
                                       "n_generated": 7038})
    grid_png(folder / "samples.png", cell=32, seed=7)
    plot_png(folder / "nearest.png", (310, 600))  # no copies: not shown
    return folder


def make_photos_workdir(root: Path, photos_swd: float = 30.0) -> Workdir:
    """The photos (SWD 30) rank above both runs: a translation run (40, eval rows, best.json) and a noise
    run (55, losses.png); both were scored beside the photos."""
    beside = {"photos_baseline": {"name": PHOTOS, "swd": photos_swd}}
    cyclegan = local_run(root, "cyclegan-photos", arch="cyclegan", consumes="photos", resolution=256, steps=300,
                         score={**score_json(40.0), **beside})
    grid_png(cyclegan / "train" / "samples.png", cell=32, seed=5)  # photo, painting, photo, ... along each row
    metrics_csv(cyclegan / "train" / "metrics.csv", 300, {"swd": [70.0, 50.0, 42.0]})
    write_json(cyclegan / "train" / "best.json", {"step": 300, "metric": "swd", "value": 42.0})
    dcgan = local_run(root, "dcgan-noise", arch="dcgan", consumes="noise", resolution=64, steps=200,
                      score={**score_json(55.0), **beside})
    grid_png(dcgan / "train" / "samples.png", cell=32, seed=6)
    plot_png(dcgan / "train" / "losses.png", (700, 350))
    baseline_folder(root, PHOTOS, photos_swd)
    return Workdir(root)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos") / "work"
    wd = make_photos_workdir(root)
    table = leaderboard.collect(wd)
    out = root.parent / "results"
    paths = report.write_report(wd, table, out, log=lambda *_: None)
    return {"wd": wd, "table": table, "out": out, "paths": paths,
            "md": (out / "leaderboard.md").read_text(), "html": (out / "leaderboard.html").read_text()}


def md_section(md: str, title: str) -> str:
    """The card of `title` (### N. title) up to the next card."""
    return re.split(r"^### \d+\. " + re.escape(title) + r"$", md, flags=re.M)[1].split("\n### ")[0]


def html_card(text: str, name: str) -> str:
    start = text.rindex("<section", 0, text.index(f'id="run-{re.sub(r"[^A-Za-z0-9_.-]+", "-", name)}-'))
    return text[start:text.index("</section>", start)]


def test_baseline_ranks_first_but_is_marked_and_never_best(photos):
    table = photos["table"]
    assert table["run"].tolist() == [TITLE, "cyclegan-photos", "dcgan-noise"]
    assert table[leaderboard.KEY].tolist() == [PHOTOS, "cyclegan-photos", "dcgan-noise"]
    assert table["where"].tolist() == ["baseline", "local", "local"]
    md_rows = [{k: v.strip("*") for k, v in row.items()} for row in md_table(photos["md"])]
    page = parse_html(photos["html"])
    for rows in (md_rows, html_table(page)):
        assert [row["rank"] for row in rows] == ["1", "2", "3"]
        assert rows[0]["where"] == "baseline" and rows[0]["arch"] == "untouched photos"
        assert number(rows[0]["SWD"]) == 30.0 and rows[0]["steps"] == "-" and rows[0]["train time"] == "-"
        assert rows[1]["arch"] == "cyclegan (photos)" and rows[2]["arch"] == "dcgan"  # consumes, no column
        assert "consumes" not in rows[0]
    md_lines = [line for line in photos["md"].splitlines() if line.startswith("| ")]
    assert md_lines[1].startswith(f"| *1* | *{TITLE}* | *baseline* |")  # the row in italics
    assert "**cyclegan-photos**" in md_lines[2] and "**" not in md_lines[1] + md_lines[3]
    rows = {attrs.get("class") for tag, attrs in page.tags if tag == "tr"}
    assert rows == {None, "best", "baseline"}
    body = photos["html"].split("<tbody>")[1].split("</tbody>")[0].split("<tr")[1:]
    assert 'class="baseline"' in body[0] and '<span class="tag baseline">baseline</span>' in body[0]
    assert 'class="best"' in body[1] and '<span class="badge">best</span>' in body[1]
    assert photos["html"].count('<span class="badge">best</span>') == 2  # the table and cyclegan's card
    assert 'class="card baseline"' in html_card(photos["html"], PHOTOS)
    assert 'class="card best"' in html_card(photos["html"], "cyclegan-photos")
    assert f"### 1. {TITLE} (baseline)" in photos["md"]
    tiles = " ".join(" ".join(page.text).split())
    assert "best run cyclegan-photos its SWD 40 untouched photos 30 real-vs-real floor 24.21 runs 2" in tiles
    assert "Runs from cpu (2 runs," in photos["md"]  # the photos are not a run...


def test_sentence_counts_the_runs_that_beat_the_photos(photos, tmp_path):
    sentence = ("0 of 2 runs score below the untouched photos (SWD 30): submitting the photos themselves would "
                "be closer to Monet.")
    assert sentence in photos["md"]
    assert sentence in " ".join("".join(parse_html(photos["html"]).text).split())
    wd = make_photos_workdir(tmp_path / "work", photos_swd=47.5)  # between the runs: one beats it
    views = report.collect_runs(wd, leaderboard.collect(wd))
    assert report.baseline_sentences(views) == [
        "1 of 2 runs scores below the untouched photos (SWD 47.5): closer to Monet than the photos themselves."]
    # another data source (a folder of the same name elsewhere): the runs were not scored beside it
    baseline_folder(wd.root, "data-99999999-photos", 60.0, source="/mnt/other/data")
    views = report.collect_runs(wd, leaderboard.collect(wd))
    assert report.baseline_sentences(views) == [
        "1 of 2 runs scores below the untouched photos of ../shared/data (SWD 47.5): closer to Monet than the "
        "photos themselves.", "No scored run to compare with the untouched photos of /mnt/other/data (SWD 60), "
        "the baseline to beat."]
    assert report.best_run(views).name == "cyclegan-photos"
    tiles = parse_html(report.html._tiles(views, report.floors(views)))
    assert "untouched photos 47.5 / 60 " in " ".join(tiles.text)
    assert report.baseline_sentences([v for v in views if not v.baseline]) == []


def test_pair_caption_for_the_translation_run_only(photos):
    md, text = photos["md"], photos["html"]
    pairs = "photo → painting pairs (EMA generator; the grid's top half)"
    assert md.count(pairs) == 1 and text.count(f"<figcaption>{html.escape(pairs)}</figcaption>") == 1
    assert f"![{pairs}](leaderboard_files/run-cyclegan-photos-" in md_section(md, "cyclegan-photos")
    assert pairs not in md_section(md, "dcgan-noise")
    assert "final samples (EMA generator; the grid's top half)" in md_section(md, "dcgan-noise")
    assert "photo → painting translation" in md_section(md, "cyclegan-photos")
    pairs = html.escape(pairs)
    assert pairs in html_card(text, "cyclegan-photos") and pairs not in html_card(text, "dcgan-noise")


def test_baseline_card_shows_the_photos_and_no_training(photos):
    for card in (md_section(photos["md"], f"{TITLE} (baseline)"), html_card(photos["html"], PHOTOS)):
        assert "untouched photos (the baseline)" in card
        assert "1.24× the floor of 24.21" in card  # SWD against the floor
        assert "not computed: no Inception weights (offline)" in card and "copies" in card
        assert "of 7,038 photos against 300 paintings" in card
        assert "scored 2024-05-06" in card
        for absent in ("loss", "metrics.csv", "evaluation", "best checkpoint", "generated/painting", "trained"):
            assert absent not in card
    assert "leaderboard_files/run-data-1a2b3c4d-photos-" in photos["md"]
    assert "-baseline-samples.png" in photos["md"]
    with Image.open(next((photos["out"] / "leaderboard_files").glob("*-baseline-samples.png"))) as image:
        assert image.width <= report.GRID_MAX_WIDTH and image.height < image.width  # the grid's top half


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """`painter leaderboard` on the photos workdir: what it prints and the files it writes."""
    wd = make_photos_workdir(tmp_path_factory.mktemp("board") / "work")
    lines = []
    leaderboard.run(wd, log=lines.append)
    return {"wd": wd, "log": lines, "csv": (wd.root / "leaderboard.csv").read_text(),
            "md": (wd.root / "leaderboard.md").read_text(), "html": (wd.root / "leaderboard.html").read_text()}


def test_the_photos_are_named_by_their_source_not_their_folder(board):
    printed = board["log"][0]  # the table on screen
    assert printed.splitlines()[1].split()[:5] == [*TITLE.split(), "baseline"] and "1a2b3c4d" not in printed
    assert pd.read_csv(io.StringIO(board["csv"]))["run"].tolist() == [TITLE, "cyclegan-photos", "dcgan-noise"]
    assert "1a2b3c4d" not in board["csv"]
    md_text = re.sub(r"\]\([^)]*\)", "]", board["md"])  # less the images' file names (the folder's, unseen)
    assert "1a2b3c4d" not in md_text and md_table(board["md"])[0]["run"] == f"*{TITLE}*"
    page = parse_html(board["html"])
    assert "1a2b3c4d" not in " ".join(page.text) and html_table(page)[0]["run"].startswith(TITLE)
    assert f"{TITLE}<span class=\"tag baseline\">" in html_card(board["html"], PHOTOS)  # the card's title
    wd = board["wd"]
    beside = leaderboard.run(wd, log=lambda *_: None, runs=["dcgan-noise"], out=wd.root / "sweep")
    assert beside["run"].tolist() == [TITLE, "dcgan-noise"]  # the sweep's runs keep the photos they were scored beside


def test_the_line_above_the_table_counts_its_rows(board, tmp_path):
    rows = md_table(board["md"])
    assert len(rows) == 3 and (
        "Runs from cpu (2 runs, 2024-05-01 to 2024-05-03); beside them, the untouched photos as the baseline to beat."
        in board["md"].splitlines())
    assert "beside them, the untouched photos as the baseline to beat." in " ".join(parse_html(board["html"]).text)
    wd = make_photos_workdir(tmp_path / "work")
    baseline_folder(wd.root, "data-99999999-photos", 60.0, source="/mnt/other/data")
    assert report.text.provenance(report.collect_runs(wd, leaderboard.collect(wd))).endswith(
        "; beside them, the untouched photos of 2 data sources as the baseline to beat.")
    (wd.run_folder("dcgan-noise").train / "_stamp.json").unlink()  # one run
    assert report.text.provenance(report.collect_runs(wd, leaderboard.collect(wd))) == (
        "Runs from cpu (1 run, 2024-05-01); beside it, the untouched photos of 2 data sources as the baseline to beat.")
    wd = make_workdir(tmp_path / "runs-only")  # no photos: the line as it was
    assert report.text.provenance(report.collect_runs(wd, leaderboard.collect(wd))) == \
        "Runs from cpu (2 runs, 2024-05-02 to 2024-05-03); Kaggle Tesla T4 (1 run, 2024-05-04)."


def test_one_line_says_what_was_written(board):
    wrote = [line for line in board["log"] if "wrote" in line]
    root = board["wd"].root
    assert len(wrote) == 1 and re.fullmatch(
        rf"leaderboard: wrote {re.escape(str(root / 'leaderboard.csv'))}, {re.escape(str(root / 'leaderboard.md'))} "
        rf"\(7 images in leaderboard_files/, \d+ KB\) and {re.escape(str(root / 'leaderboard.html'))} "
        rf"\(\d+ KB, self-contained\)", wrote[0]), wrote
    assert board["log"][-1] == wrote[0]


def test_photos_report_is_self_contained_with_both_charts(photos):
    text = photos["html"]
    page = parse_html(text)
    assert page.problems == [] and page.stack == [] and len(page.tables) == 1
    assert "<script" not in text.lower() and "<link" not in text.lower() and "url(" not in text
    assert len(page.imgs) == 2 + 3 + 2  # two charts, three grids, two runs' losses (cyclegan's from metrics.csv)
    for img in page.imgs:
        assert img["src"].startswith("data:image/png;base64,")
    out = photos["out"] / "leaderboard_files"
    for chart in ("chart-eval-vs-step.png", "chart-final-swd.png"):
        assert f"leaderboard_files/{chart}" in photos["md"]
        with Image.open(out / chart) as image:
            assert image.format == "PNG"
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", photos["md"])
    assert sorted(photos["out"] / ref for ref in refs) == sorted(out.iterdir())
    assert "The hatched bar and the dotted line are the untouched photos" in photos["md"]
    assert report.EVAL_PHOTOS in photos["md"] and report.EVAL_CAPTION in photos["md"]


def test_charts_draw_the_photos_as_a_hatched_bar_and_a_dotted_line(photos, monkeypatch):
    figures = []
    monkeypatch.setattr(report.charts, "_figure_png", lambda fig: figures.append(fig) or b"png")
    views = report.collect_runs(photos["wd"], photos["table"])
    found = report.floors(views)
    assert report.chart_final_swd(views, found) == b"png" and report.chart_eval_curves(views, found) == b"png"
    bars_ax, swd_ax = figures[0].axes[0], figures[1].axes[0]
    bars = [patch for patch in bars_ax.patches if patch.get_height() > 0]
    assert [b.get_height() for b in bars] == [30.0, 40.0, 55.0]
    assert bars[0].get_hatch() == "///" and not bars[1].get_hatch() and not bars[2].get_hatch()
    colours = [matplotlib_hex(b.get_facecolor()) for b in bars]
    assert colours == [report.PHOTOS_FILL, report.BEST_COLOUR, report.OTHER_COLOUR]
    for ax in (bars_ax, swd_ax):
        dotted = {line.get_label(): line for line in ax.get_lines() if line.get_linestyle() == ":"}
        assert list(dotted) == ["untouched photos 30"] and dotted["untouched photos 30"].get_ydata()[0] == 30.0
        assert any(line.get_linestyle() == "--" for line in ax.get_lines())  # the floor, still there
    assert [t.get_text() for t in bars_ax.get_xticklabels()][0] == "1. untouched photos"


def matplotlib_hex(rgba) -> str:
    import matplotlib.colors

    return matplotlib.colors.to_hex(rgba)


def test_runs_within_the_uncertainty_of_the_one_above_are_marked_level(tmp_path):
    """SWDs with standard errors: a run, the photos and a run level with it are marked ≈ on screen, in the CSV,
    the Markdown and the HTML; a run far behind is not; the finest level stands beside the mean."""
    root = tmp_path / "work"

    def with_error(swd: float, se: float) -> dict:
        score = score_json(swd)
        score["swd"].update(se=se, floor_se=0.4, per_level={"256": swd + 20, "16": swd - 20},
                            per_level_se={"256": se * 2, "16": se})
        return {**score, "photos_baseline": {"name": PHOTOS, "swd": 52.0, "swd_se": 2.0}}

    for name, swd, se in (("cut", 50.0, 1.0), ("fastcut", 51.0, 1.0), ("dcgan", 60.0, 0.4)):
        local_run(root, name, arch=name, resolution=256, steps=100, score=with_error(swd, se))
    baseline_folder(root, PHOTOS, 52.0)
    photos = json.loads((root / "baselines" / PHOTOS / "score.json").read_text())
    photos["swd"].update(se=2.0, floor_se=0.4)
    write_json(root / "baselines" / PHOTOS / "score.json", photos)
    lines = []
    table = leaderboard.run(Workdir(root), log=lines.append, out=tmp_path / "out")

    assert list(table["run"]) == ["cut", "fastcut", "untouched photos of ../shared/data", "dcgan"]
    assert list(table["tied"]) == [False, True, True, False]  # 1 < 2*1.4; 1 < 2*2.2; 8 > 2*2.2
    screen = lines[0].splitlines()
    assert "≈ 51.0 ± 1.0" in screen[2] and "≈ 52.0 ± 2.0" in screen[3] and "≈" not in screen[1] + screen[4]
    assert "71.0 ± 2.0" in screen[2] and "24.2 ± 0.4" in screen[1]  # the finest level and the floor, with theirs
    assert any(line.startswith("≈: level with the run above") for line in lines)
    csv = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert list(csv["tied"]) == [False, True, True, False] and list(csv["swd_se"]) == [1.0, 1.0, 2.0, 0.4]

    md = md_table((tmp_path / "out" / "leaderboard.md").read_text())
    assert [row["SWD"].strip("*") for row in md] == ["50 ± 1", "≈ 51 ± 1", "≈ 52 ± 2", "60.0 ± 0.4"]  # photos: italics; never "± 0"
    assert [row["SWD, finest level"].strip("*") for row in md] == ["70 ± 2", "71 ± 2", "-", "80 ± 1"]
    page = parse_html((tmp_path / "out" / "leaderboard.html").read_text())
    assert [row["SWD"] for row in html_table(page)] == ["50 ± 1", "≈ 51 ± 1", "≈ 52 ± 2", "60.0 ± 0.4"]
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "SWD of one half of the paintings against the other: 24.21 ± 0.40" in text
    with Image.open(tmp_path / "out" / "leaderboard_files" / "chart-swd-levels.png") as chart:  # the profiles
        assert chart.format == "PNG" and chart.width > 400
    assert "](leaderboard_files/chart-swd-levels.png)" in text and "chart-swd-levels.png" not in \
        (tmp_path / "out" / "leaderboard.html").read_text()  # embedded there, not linked
    assert "SWD per pyramid level" in (tmp_path / "out" / "leaderboard.html").read_text()
    assert ("0 of 3 runs score below the untouched photos (SWD 52 ± 2) beyond the uncertainty; 2 are level with "
            "them: none is surely closer to Monet") in md_unescape(text)  # 50 ± 1 and 51 ± 1 against 52 ± 2


def test_compare_says_which_run_is_ahead_paired_over_the_same_splits(tmp_path, painter):
    import torch

    from pipeline.metrics.swd import swd_with_floor

    g = torch.Generator().manual_seed(0)
    smooth = lambda n: (torch.nn.functional.interpolate(  # noqa: E731
        torch.rand(n, 3, 8, 8, generator=g), size=32, mode="bilinear") * 255).to(torch.uint8)
    real, close, noise = smooth(40), smooth(40), torch.randint(0, 256, (40, 3, 32, 32), generator=g, dtype=torch.uint8)
    root = tmp_path / "work"
    for name, images, seed in (("close", close, 0), ("again", close, 0), ("noise", noise, 0), ("other", noise, 5)):
        local_run(root, name, arch="dcgan", resolution=32, steps=10,
                  score={**score_json(0.0), "swd": swd_with_floor(real, images, seed, splits=4)})
    compare = lambda a, b: painter("leaderboard", "--workdir", str(root), "--compare", a, b).output  # noqa: E731

    assert compare("noise", "close").startswith("close is ahead of noise by ")
    assert "standard errors (paired over the same 4 splits)" in compare("noise", "close")
    assert compare("close", "again").startswith("close and again are level: ")  # the same images, the same splits
    assert "(not scored over the same splits)" in compare("close", "other")  # another scorer seed: unpaired
    assert not (root / "leaderboard.csv").exists()  # a comparison writes nothing
    missing = painter("leaderboard", "--workdir", str(root), "--compare", "close", "nope", ok=False)
    assert missing.exit_code != 0 and "no run named 'nope'" in missing.output


def test_runs_ranked_by_mifid_are_level_by_its_bootstrap_error(tmp_path):
    root = tmp_path / "work"
    for name, value, swd in (("a", 40.0, 33.0), ("b", 42.0, 32.0), ("c", 60.0, 31.0)):
        inception = {"computed": True, "fid": value, "fid_se": 2.0, "kid": 0.01, "kid_std": 0.001,
                     "mifid": value, "mifid_se": 2.0}
        local_run(root, name, arch="cut", resolution=256, steps=10, score=score_json(swd, inception=inception))
    table = leaderboard.run(Workdir(root), log=lambda *_: None, out=tmp_path / "out")
    assert list(table["tied"]) == [False, True, False]  # 2 < 2 * 2.8 (SWD, the same for all, does not decide)
    md = md_table((tmp_path / "out" / "leaderboard.md").read_text())
    assert [row["MiFID"] for row in md] == ["40 ± 2", "≈ 42 ± 2", "60 ± 2"]
    assert "≈" not in "".join(row["SWD"] for row in md)
    by_swd = leaderboard.run(Workdir(root), log=lambda *_: None, out=tmp_path / "swd", by="swd")  # a spec's metric
    assert list(by_swd["run"]) == ["c", "b", "a"] and not by_swd["tied"].any()  # no SWD errors: exact

    # Ranked by SWD (a sweep spec's metric) with SWD errors, the marks follow SWD, even though MiFID exists.
    for name in ("a", "b", "c"):
        path = root / "runs" / name / "score" / "score.json"
        score = json.loads(path.read_text())
        write_json(path, {**score, "swd": {**score["swd"], "se": 0.5}})
    by_swd = leaderboard.run(Workdir(root), log=lambda *_: None, out=tmp_path / "swd-se", by="swd")
    assert list(by_swd["tied"]) == [False, True, True] and set(by_swd["ranked_by"]) == {"swd"}  # 1 < 2 * 0.71
    md = md_table((tmp_path / "swd-se" / "leaderboard.md").read_text())
    assert [row["SWD"][:2] for row in md] == ["31", "≈ ", "≈ "]
    assert "≈" not in "".join(row["MiFID"] for row in md)
