"""The score stage end to end: feature caches, the copy check, and what score.json reports."""

import json

import matplotlib.axes
from PIL import Image

from pipeline.metrics import inception

from .test_cli import TINY
from .test_inception import STAND_IN

# Scoring needs no submission: 64 images (all of them scored) instead of 7,000 and a zip.
SCORED = [*TINY, "--set", "generate.count=64"]


def report(tmp_path, run):
    return json.loads((tmp_path / "work" / "runs" / run / "score" / "score.json").read_text())


def test_the_reference_features_are_extracted_once_and_reused(painter, tmp_path, monkeypatch):
    # The real Inception weights cannot be had here: the same code path runs a small stand-in network.
    monkeypatch.setattr(inception, "EXTRACTOR", STAND_IN)
    painter("run", *SCORED, "--set", "run.name=first", "--until", "score")
    # The untouched photos are scored first (the baseline), so they extract the paintings' features.
    photos = json.loads((tmp_path / "work" / "baselines" / "demo-photos" / "score.json").read_text())["inception"]
    assert photos["features"] == {"reference": "extracted", "generated": "extracted"}
    first = report(tmp_path, "first")["inception"]
    assert first["computed"] and first["extractor"] == STAND_IN
    assert first["features"] == {"reference": "cached", "generated": "extracted"}
    assert first["n_fake"] == 64 and first["kid_subset_size"] == min(first["n_real"], 64, 1000)
    assert len(list((tmp_path / "work" / "features").glob("features-*.pt"))) == 1

    painter("run", *SCORED, "--set", "run.name=second", "--set", "train.seed=1", "--until", "score")
    second = report(tmp_path, "second")["inception"]
    assert second["features"] == {"reference": "cached", "generated": "extracted"}
    assert second["fid"] != first["fid"]

    again = painter("score", *SCORED, "--set", "run.name=first", "--force")
    rescored = report(tmp_path, "first")["inception"]
    assert rescored["features"] == {"reference": "cached", "generated": "cached"}
    assert (rescored["fid"], rescored["kid"], rescored["mifid"]) == (first["fid"], first["kid"], first["mifid"])
    assert "generated cached, reference cached" in again.output


def test_a_planted_copy_of_a_training_painting_is_flagged(painter, tmp_path, monkeypatch):
    painter("run", *SCORED, "--until", "score")
    painting = sorted((tmp_path / "work" / "raw" / "demo").glob("monet_jpg/*.jpg"))[5]
    images = tmp_path / "work" / "runs" / "demo" / "images"
    with Image.open(painting) as img:  # re-encoded, as a generator's output would be
        img.convert("RGB").save(images / "00042.jpg", quality=90)
    clean = report(tmp_path, "demo")["nearest"]
    titles = []  # nearest.png's labels
    real_set_title = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title",
                        lambda ax, text, *args, **kwargs: titles.append(text) or real_set_title(ax, text, *args, **kwargs))
    result = painter("score", *SCORED, "--force")
    nearest = report(tmp_path, "demo")["nearest"]
    assert clean["n_copies"] == 0 and nearest["n_copies"] >= 1
    assert nearest["closest"][0]["fake_file"] == "00042.jpg" and nearest["closest"][0]["real_file"] == painting.name
    assert titles[:2] == ["00042.jpg", painting.name]  # the pair's row is labelled with its files' names
    assert nearest["closest"][0]["distance"] < nearest["copy_threshold"] < nearest["real_floor"]
    assert "look like copies of training paintings" in result.output
    with Image.open(tmp_path / "work" / "runs" / "demo" / "score" / "nearest.png") as png:
        assert png.format == "PNG"


def test_swd_comes_with_a_floor_on_the_same_terms():
    import torch

    from pipeline.metrics.swd import swd_with_floor

    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(40, 3, 8, 8, generator=g), size=64, mode="bilinear")
    real = (smooth * 255).to(torch.uint8)
    noise = torch.randint(0, 256, (30, 3, 64, 64), generator=g, dtype=torch.uint8)
    bad, few = swd_with_floor(real, noise, 0), swd_with_floor(real, noise[:5], 0)
    assert bad["n_used"] == 20 and few["n_used"] == 5
    assert bad["floor"] == swd_with_floor(real, noise[:25], 0)["floor"]  # one floor for every run
    assert bad["value"] > 1.5 * bad["floor"] > 0 and set(bad["per_level"]) == set(bad["floor_per_level"])
    assert swd_with_floor(real, noise, 0) == bad  # seeded
