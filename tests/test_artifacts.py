import json

import pytest

from pipeline.artifacts import STAMP_NAME, explain_change, fingerprint, read_stamp, run_stage


class Builder:
    """A stage body that records how often it ran and writes one file."""

    def __init__(self, fail_after_write: bool = False):
        self.calls = 0
        self.fail_after_write = fail_after_write

    def __call__(self, out):
        self.calls += 1
        (out / "result.txt").write_text(f"run {self.calls}")
        if self.fail_after_write:
            raise KeyboardInterrupt  # stands in for a kill half-way through
        return {"calls": self.calls}


def test_fingerprint_is_order_independent_and_sensitive():
    assert fingerprint({"a": 1, "b": {"c": 2}}) == fingerprint({"b": {"c": 2}, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_matching_fingerprint_skips_with_one_line(tmp_path):
    out, build, lines = tmp_path / "stage", Builder(), []
    first = run_stage("demo", out, {"x": 1}, build, log=lines.append)
    second = run_stage("demo", out, {"x": 1}, build, log=lines.append)
    assert build.calls == 1 and second == first
    assert lines == ["demo: running (no previous output)", f"demo: up to date ({out})"]
    assert first["summary"] == {"calls": 1} and first["inputs"] == {"x": 1}


def test_changed_input_and_force_rerun_and_say_why(tmp_path):
    out, build, lines = tmp_path / "stage", Builder(), []
    run_stage("demo", out, {"train": {"steps": 1}}, build, log=lines.append)
    run_stage("demo", out, {"train": {"steps": 2}}, build, log=lines.append)
    run_stage("demo", out, {"train": {"steps": 2}}, build, force=True, log=lines.append)
    assert build.calls == 3
    assert lines[1] == "demo: running (train.steps: 1 -> 2)"
    assert lines[2] == "demo: running (--force)"
    assert (out / "result.txt").read_text() == "run 3"


def test_killed_build_keeps_the_previous_complete_output(tmp_path):
    out = tmp_path / "stage"
    run_stage("demo", out, {"x": 1}, Builder())
    with pytest.raises(KeyboardInterrupt):
        run_stage("demo", out, {"x": 2}, Builder(fail_after_write=True))
    assert read_stamp(out)["inputs"] == {"x": 1}          # still the old, complete output
    assert (out / "result.txt").read_text() == "run 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]  # no temporary left behind


def test_in_place_stage_drops_its_stamp_before_working(tmp_path):
    out = tmp_path / "stage"
    run_stage("train", out, {"x": 1}, Builder(), in_place=True)
    with pytest.raises(KeyboardInterrupt):
        run_stage("train", out, {"x": 2}, Builder(fail_after_write=True), in_place=True)
    assert read_stamp(out) is None   # killed: nothing claims to be complete...
    lines = []
    run_stage("train", out, {"x": 2}, Builder(), in_place=True, log=lines.append)
    assert lines == ["train: running (previous output incomplete)"]  # ...so the next run redoes it


def test_stamp_is_written_last_and_whole(tmp_path):
    out = tmp_path / "stage"
    seen = {}

    def build(folder):
        seen["stamp_during_build"] = (folder / STAMP_NAME).exists()

    run_stage("demo", out, {"x": 1}, build)
    assert seen == {"stamp_during_build": False}
    assert json.loads((out / STAMP_NAME).read_text())["fingerprint"] == fingerprint({"x": 1})


def test_explain_change_names_upstream_changes():
    old = {"train": {"fingerprint": "a"}, "generate": {"count": 1}}
    new = {"train": {"fingerprint": "b"}, "generate": {"count": 2}}
    assert explain_change(old, new) == "generate.count: 1 -> 2, train changed"
