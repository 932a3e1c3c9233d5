"""`painter submit --kaggle` and `painter leaderboard --kaggle` with the real kaggle client against a fake Kaggle."""

import json

import pytest

from pipeline.artifacts import write_json_atomic

from .conftest import REPO
from .fake_kaggle import FakeKaggle, connect_in_process

DEMO = ["--config", str(REPO / "configs" / "demo.toml")]
BOARD = [("Monet Lovers", "35.10"), ("Brush Strokes", "52.00"), ("Canvas Crew", "60.5"), ("Late Start", "90")]


@pytest.fixture
def kaggle(monkeypatch, tmp_path):
    with FakeKaggle(leaderboard=BOARD) as server:
        api = connect_in_process(server, monkeypatch, tmp_path / "home")
        server.api = api
        yield server
        assert not server.errors, server.errors[0]


def pushed_kernel(kaggle, tmp_path, run="demo") -> str:
    """A kernel version pushed with the real client, recorded as `painter kernel push` records it."""
    folder = tmp_path / "kernel"
    folder.mkdir()
    kernel = f"{kaggle.username}/painter-{run}"
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": kernel, "title": f"painter-{run}", "code_file": "painter_kernel.py", "language": "python",
        "kernel_type": "script", "is_private": True, "enable_gpu": True, "enable_internet": False,
        "competition_sources": ["gan-getting-started"], "dataset_sources": []}))
    (folder / "painter_kernel.py").write_text("print('painting')\n")
    reply = kaggle.api.kernels_push(str(folder))
    record = tmp_path / "work" / "kernels" / run / "push.json"
    record.parent.mkdir(parents=True)
    write_json_atomic(record, {"kernel": kernel, "version": reply.version_number, "url": reply.url})
    return kernel


def test_submit_a_finished_kernel_version_then_see_where_it_stands(painter, kaggle, tmp_path):
    kernel = pushed_kernel(kaggle, tmp_path)
    result = painter("submit", *DEMO, "--kaggle", "--message", "first try")
    [submission] = kaggle.submissions
    assert (f"{submission['kernel_owner']}/{submission['kernel_slug']}", submission["kernel_version"]) == (kernel, 1)
    assert submission["file_name"] == "images.zip" and submission["description"] == "first try"
    record = json.loads((tmp_path / "work" / "runs" / "demo" / "kaggle" / "submission.json").read_text())
    assert record["ref"] == submission["ref"] and "submitted" in result.output

    kaggle.score_submission(public_score="55.0")
    board = painter("leaderboard", "--kaggle")
    standings = json.loads((tmp_path / "work" / "leaderboard_kaggle.json").read_text())
    [row] = standings["runs"]
    assert (row["public_mifid"], row["rank"], row["teams"], row["top_percent"]) == (55.0, 3, 4, 75.0)
    assert "demo" in board.output and "55" in board.output


def test_a_pending_submission_has_no_rank_yet(painter, kaggle, tmp_path):
    pushed_kernel(kaggle, tmp_path)
    painter("submit", *DEMO, "--kaggle")
    painter("leaderboard", "--kaggle")
    [row] = json.loads((tmp_path / "work" / "leaderboard_kaggle.json").read_text())["runs"]
    assert row["status"] == "pending" and row["rank"] is None


def test_an_unfinished_or_failed_kernel_is_not_submitted(painter, kaggle, tmp_path):
    kernel = pushed_kernel(kaggle, tmp_path)
    kaggle.script_kernel_status(kernel, "running")
    result = painter("submit", *DEMO, "--kaggle", ok=False)
    assert "not complete" in result.output and "status --wait" in result.output and not kaggle.submissions

    kaggle.script_kernel_status(kernel, ("error", "CUDA out of memory"))  # waiting cannot help that one
    failed = painter("submit", *DEMO, "--kaggle", ok=False)
    assert "ended with status error: CUDA out of memory" in failed.output and "status --wait" not in failed.output
    assert "push again: `painter kernel push" in failed.output and not kaggle.submissions


def test_submit_without_a_pushed_kernel_says_what_to_run(painter, kaggle):
    result = painter("submit", *DEMO, "--kaggle", ok=False)
    assert "painter kernel push" in result.output and not kaggle.submissions


def test_submission_refusals_are_clear(painter, kaggle, tmp_path):
    pushed_kernel(kaggle, tmp_path)
    kaggle.competitions["gan-getting-started"]["rules_accepted"] = False
    result = painter("submit", *DEMO, "--kaggle", ok=False)
    assert "403" in result.output and "/rules" in result.output
    assert not (tmp_path / "work" / "runs" / "demo" / "kaggle" / "submission.json").exists()
