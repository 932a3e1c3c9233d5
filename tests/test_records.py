"""pipeline.records: a run of each kind (trained here, pulled from Kaggle, the untouched photos) read
from its folder into one record; score.json's numbers and the score's one line."""

import json
from pathlib import Path

from pipeline import records
from pipeline.layout import Workdir


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def score(swd: float, **inception) -> dict:
    return {"run": "?", "n_generated": 7000, "swd": {"value": swd, "floor": 24.5},
            "nearest": {"n_copies": 1}, "inception": {"computed": bool(inception), **inception}, "device": "cpu"}


def make_workdir(root: Path) -> Workdir:
    run = root / "runs" / "cut-photos"
    write_json(run / "train" / "_stamp.json", {"created": "2024-05-01T10:00:00+00:00", "summary": {
        "arch": "cut", "consumes": "photos", "resolution": 256, "steps": 300, "seconds": 90.5, "device": "cuda"}})
    (run / "train" / "config.toml").write_text('[model]\narch = "cut"\n')
    write_json(run / "train" / "best.json", {"step": 200, "metric": "swd", "value": 40.0})
    write_json(run / "score" / "_stamp.json", {"summary": {}})
    write_json(run / "score" / "score.json", {**score(41.0, fid=50.0, kid=0.01, mifid=55.0),
                                               "photos_baseline": {"name": "data-photos", "swd": 30.0}})
    write_json(run / "kaggle" / "kernel.json", {
        "kernel": "me/painter-cut-photos", "version": 2, "gpu": "t4x2", "pushed": "2024-05-02T08:00:00+00:00",
        "config": {"model": {"arch": "cut"}, "data": {"resolution": 256}, "train": {"steps": 900}},
        "train": {"consumes": "photos", "seconds": 1800.0, "device": "Tesla T4"}})
    write_json(run / "kaggle" / "score.json", score(38.0))
    write_json(root / "runs" / "unfinished" / "train" / "checkpoint.json", {})  # no stamp: not a run yet
    photos = root / "baselines" / "data-photos"
    write_json(photos / "_stamp.json", {"created": "2024-05-03T09:00:00+00:00", "summary": {}})
    write_json(photos / "score.json", score(30.0))
    write_json(root / "leaderboard_kaggle.json", {"teams": 900, "runs": [{"run": "cut-photos", "rank": 12}]})
    return Workdir(root)


def test_a_record_of_each_kind(tmp_path):
    wd = make_workdir(tmp_path / "work")
    local, kaggle, photos = records.read_all(wd)

    assert (local.name, local.where, local.arch, local.consumes) == ("cut-photos", "local", "cut", "photos")
    assert local.steps == 300 and local.train_seconds == 90.5 and local.device == local.trained_on == "cuda"
    assert local.config == {"model": {"arch": "cut"}} and local.best["step"] == 200 and local.date == "2024-05-01"
    assert local.scores["mifid"] == 55.0 and local.scores["copies"] == 1 and local.beside == "data-photos"
    assert local.metrics == wd.run_folder("cut-photos").metrics and local.standing is None

    assert (kaggle.where, kaggle.steps, kaggle.device, kaggle.trained_on) == ("kaggle", 900, "t4x2", "Tesla T4")
    assert kaggle.train_seconds == 1800.0 and kaggle.date == "2024-05-02" and kaggle.kernel["version"] == 2
    assert kaggle.standing == {"run": "cut-photos", "rank": 12} and kaggle.teams == 900
    assert kaggle.scores["swd"] == 38.0 and kaggle.samples == wd.run_folder("cut-photos").kaggle / "samples.png"

    assert (photos.name, photos.where, photos.arch) == ("data-photos", "baseline", "untouched photos")
    assert photos.resolution == 256
    assert photos.metrics is None and photos.losses is None and photos.best is None and photos.date == "2024-05-03"
    assert photos.scores["swd"] == 30.0 and photos.device == "cpu"
    assert (local.title, kaggle.title) == ("cut-photos", "cut-photos")


def test_the_photos_are_titled_by_their_data_source(tmp_path):
    wd = make_workdir(tmp_path / "work")  # a score.json that does not name its source: the folder's name says it
    assert records.read(wd, "data-photos", "baseline").title == "untouched photos of data"
    folder = wd.baselines_root / "data-1a2b3c4d-photos"  # a folder source: its name and a digest of its path
    write_json(folder / "score.json", {**score(30.0), "source": "../shared/data"})
    assert records.read(wd, folder.name, "baseline").title == "untouched photos of ../shared/data"
    (folder / "score.json").unlink()
    assert records.read(wd, folder.name, "baseline").title == "untouched photos of data"


def test_an_unscored_run_has_no_score(tmp_path):
    wd = make_workdir(tmp_path / "work")
    (wd.run_folder("cut-photos").score / "_stamp.json").unlink()  # score.json of an unfinished score stage
    record = records.read(wd, "cut-photos", "local")
    assert record.score == {} and set(record.scores.values()) == {None}


def test_score_numbers_and_the_summary_line():
    old = records.score_numbers(score(41.0, fid=50.0, kid=0.01, mifid=55.0))  # one SWD, as painter wrote before
    assert old == {"swd": 41.0, "swd_se": None, "swd_floor": 24.5, "swd_floor_se": None, "swd_per_level": None,
                   "swd_floor_per_level": None, "swd_finest": None,
                   "swd_finest_se": None, "swd_splits": None, "swd_floor_splits": None, "fid": 50.0, "fid_se": None, "kid": 0.01, "mifid": 55.0,
                   "mifid_se": None, "copies": 1,
                   "n_generated": 7000}
    split = score(41.0)
    split["swd"].update(se=0.8, floor_se=0.4, split_values=[40.0, 42.0], per_level={"16": 80.0, "256": 60.0, "32": 9.0},
                        per_level_se={"16": 2.0, "256": 1.5, "32": 0.1})
    numbers = records.score_numbers(split)
    assert (numbers["swd_se"], numbers["swd_floor_se"], numbers["swd_splits"]) == (0.8, 0.4, [40.0, 42.0])
    assert (numbers["swd_finest"], numbers["swd_finest_se"]) == (60.0, 1.5)  # the 256 px level, not the last key
    assert list(numbers["swd_per_level"].items()) == [("256", 60.0), ("32", 9.0), ("16", 80.0)]  # finest first
    split["swd"]["per_level"]["64"] = "odd"
    assert records.score_numbers(split)["swd_per_level"] is None  # a malformed profile is not drawn
    assert records.summary_line(numbers) == "SWD 41.000 ± 0.800 (floor 24.500)"
    numbers = old
    assert records.score_numbers({"swd": 12.0})["swd"] == 12.0 and records.score_numbers(None)["swd"] is None
    assert records.summary_line({**numbers, "photos_swd": 30.0}) == \
        "SWD 41.000 (floor 24.500; untouched photos 30.000), FID 50.00, MiFID 55.00"
    assert records.summary_line({"swd": 41.0, "fid": None, "mifid": None}) == "SWD 41.000"
    assert records.summary_line({"swd": None}) == "no SWD"


def test_two_scores_are_tied_within_two_standard_errors_of_their_difference():
    assert records.compare(50.0, 1.0, 52.0, 1.0) == "tied"  # 2 < 2 * 1.41
    assert records.compare(50.0, 1.0, 53.0, 1.0) == "ahead" and records.compare(53.0, 1.0, 50.0, 1.0) == "behind"
    assert records.compare(50.0, None, 50.5, None) == "ahead"  # older scores, no error known: taken as exact
    assert records.plus_minus(57.61, 0.83) == "57.6 ± 0.8" and records.plus_minus(57.61, None) == "57.6"
    assert records.plus_minus(float("nan"), 0.8) == "-" and records.plus_minus(57.61, float("nan")) == "57.6"


def test_lock_files_beside_the_folders_are_not_runs(tmp_path):
    # what a writer killed with -9 leaves beside the folder it wrote (pipeline/lock.py)
    wd = make_workdir(tmp_path / "work")
    for folder in (wd.baseline("data"), wd.run_folder("cut-photos").root, wd.run_folder("cut-photos").train):
        folder.with_name(f".{folder.name}.lock").write_text('{"pid": 1}')
    assert [(record.name, record.where) for record in records.read_all(wd)] == \
        [("cut-photos", "local"), ("cut-photos", "kaggle"), ("data-photos", "baseline")]
