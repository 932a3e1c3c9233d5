"""Run folders written before the redesign of issue 19 (tests/fixtures/workdir-b101b54, made by the
code of commit b101b54) are still ranked by the leaderboard and resumed by training."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from .conftest import torch_threads

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "workdir-b101b54"


def old_workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"  # the `painter` fixture's PAINTER_WORKDIR
    shutil.copytree(FIXTURE, work, ignore=shutil.ignore_patterns("README.md"))
    return work


def test_an_old_scored_run_is_ranked(tmp_path, painter):
    work = old_workdir(tmp_path)
    result = painter("leaderboard")
    table = (work / "leaderboard.csv").read_text().splitlines()
    rows = [line.split(",") for line in table[1:]]
    assert [row[0] for row in rows] == ["old-scored"], result.output  # the interrupted run has no stamp
    header = table[0].split(",")
    swd = json.loads((work / "runs" / "old-scored" / "score" / "score.json").read_text())["swd"]["value"]
    assert float(rows[0][header.index("swd")]) == swd
    assert rows[0][header.index("steps")] == "20" and rows[0][header.index("arch")] == "dcgan"
    assert "old-scored" in (work / "leaderboard.md").read_text()


@pytest.fixture
def two_threads():
    """The fixture was trained with two CPU threads; with another count (OMP_NUM_THREADS=1) the float sums
    are split differently and the weights differ in their last bits."""
    with torch_threads(2):
        yield


def test_an_old_checkpoint_resumes_to_the_uninterrupted_result(tmp_path, painter, two_threads):
    work = old_workdir(tmp_path)
    run = work / "runs" / "old-interrupted"
    result = painter("train", "--config", str(run / "train" / "config.toml"))
    assert "resuming from step 10 of 20" in result.output
    resumed = torch.load(run / "train" / "generator.pt", weights_only=False)["state_dict"]
    uninterrupted = torch.load(work / "runs" / "old-scored" / "train" / "generator.pt",
                               weights_only=False)["state_dict"]
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in resumed)
    assert json.loads((run / "train" / "summary.json").read_text())["steps"] == 20
