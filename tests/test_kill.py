"""kill -9 in the middle of a stage loses nothing and never leaves the stage looking complete.

Each test SIGKILLs a real `python -m pipeline STAGE` subprocess mid-work, checks that nothing
claims to be complete, runs the stage again and compares what it writes with the output of an
uninterrupted run. Local stages are stopped at a chosen item of their work loop (the test-only
hook in tests/pause_hook/), network stages while the fake Kaggle holds a download half-sent
(FakeKaggle.stall), and the sweep while its second run trains. train's own SIGKILL test is in
test_robustness.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipeline.artifacts import STAMP_NAME, read_stamp, sha256_file, write_json_atomic
from pipeline.cli import main
from pipeline.download import source_id

from .conftest import REPO
from .fake_kaggle import COMPETITION, FakeKaggle, connect_in_process

PAUSE_HOOK = Path(__file__).resolve().parent / "pause_hook"
TINY = ["--config", str(REPO / "configs" / "demo.toml"), "--set", "data.demo_paintings=16",
        "--set", "data.demo_photos=0", "--set", "model.g_channels=8", "--set", "model.d_channels=8",
        "--set", "model.latent_dim=8", "--set", "train.batch_size=4", "--set", "train.steps=20",
        "--set", "train.checkpoint_every=5", "--set", "train.sample_every=1000", "--set", "train.eval_every=0",
        "--set", "generate.count=64", "--set", "generate.batch_size=8", "--set", "score.inception=false"]
RUN = "demo"  # the run configs/demo.toml names


# ---------------------------------------------------------------------- helpers

def invoke(*args: str):
    """`painter ARGS` in this process (no torch import to wait for), which must succeed."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env={"PAINTER_INCEPTION_WEIGHTS": None})
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The whole chain run once without interruption: the reference every local stage is compared with."""
    root = tmp_path_factory.mktemp("base")
    where = ["--workdir", str(root / "work"), "--submissions", str(root / "submissions")]
    invoke("run", *TINY, *where, "--until", "score")
    invoke("submit", *TINY, *where, "--force")  # 64 images: fewer than Kaggle takes, so --force
    return root


def seed(tmp_path: Path, base: Path, *parts: str) -> None:
    """Copy these folders of the reference workdir (mtimes kept) into the workdir under test."""
    for part in parts:
        shutil.copytree(base / "work" / part, tmp_path / "work" / part)


def digests(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `folder` but the stamp (it holds a date) and `skip`."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != STAMP_NAME and p.name not in skip}


def assert_same_output(folder: Path, reference: Path, skip: tuple[str, ...] = (),
                       resumed: tuple[str, ...] = ()) -> None:
    """The same files and a complete stamp with the same fingerprint and summary (but the `resumed`
    entries, which say how much the last run did)."""
    assert digests(folder, skip) == digests(reference, skip)
    stamp, expected = read_stamp(folder), read_stamp(reference)
    assert stamp is not None and stamp["fingerprint"] == expected["fingerprint"]
    for key in resumed:
        del stamp["summary"][key], expected["summary"][key]
    assert stamp["summary"] == expected["summary"]


def incomplete(folder: Path) -> bool:
    """Nothing at `folder` claims to be complete: no folder, or one without its stamp."""
    return read_stamp(folder) is None


@pytest.fixture
def spawn(tmp_path):
    """spawn(*args, pause=..., env=...) starts `python -m pipeline ARGS` in tmp_path, in a process group
    of its own; whatever of that group still runs at the end of the test is killed."""
    started: list[subprocess.Popen] = []

    def start(*args: str, pause: str | None = None, env: dict | None = None) -> subprocess.Popen:
        env = dict(os.environ if env is None else env, PYTHONPATH=os.pathsep.join([str(PAUSE_HOOK), str(REPO)]),
                   PAINTER_WORKDIR=str(tmp_path / "work"), PAINTER_SUBMISSIONS=str(tmp_path / "submissions"),
                   PAINTER_TEST_PAUSED=str(tmp_path / "paused"),
                   # the reference runs in this process: another thread count sums in another order
                   OMP_NUM_THREADS=str(torch.get_num_threads()))
        env.pop("PAINTER_INCEPTION_WEIGHTS", None)
        if pause:
            env["PAINTER_TEST_PAUSE"] = pause
        with open(tmp_path / "killed.log", "w") as log:  # a file: a full pipe would block the child
            process = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=tmp_path, env=env,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the stage and anything it started (worker processes)
        except ProcessLookupError:
            pass
        process.wait()


def survivors(process: subprocess.Popen, wait: float = 3.0) -> list[int]:
    """The processes of `process`'s group (itself and what it started) still alive after up to `wait` s."""
    if not Path("/proc/self/stat").exists():
        return []  # no process table to read here

    def alive() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue  # gone meanwhile
            if int(group) == process.pid and state != "Z":
                found.append(int(stat.parent.name))
        return found

    deadline = time.monotonic() + wait
    while (found := alive()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def kill_when(process: subprocess.Popen, ready, what: str, log: Path, timeout: float = 180) -> None:
    """SIGKILL `process` once ready() is true: it is then paused (or held by the fake) mid-work."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the stage ended (exit code {process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL


def kill_at(process: subprocess.Popen, tmp_path: Path) -> None:
    """Kill it where its PAINTER_TEST_PAUSE point stopped it."""
    kill_when(process, (tmp_path / "paused").exists, "paused at its kill point", tmp_path / "killed.log")


def jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((256, 256, 3), value, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


# ---------------------------------------------------------------------- download

@pytest.mark.parametrize("source", ["folder", "demo"])
def test_download_killed_while_copying_or_painting(painter, spawn, base, tmp_path, source):
    if source == "folder":  # the reference's demo paintings, as a folder in the competition's layout
        folder = tmp_path / "source"
        shutil.copytree(base / "work" / "raw" / "demo", folder, ignore=shutil.ignore_patterns(STAMP_NAME))
        args, pause, name = ["--source", str(folder)], "download: copy@8", source_id(str(folder))
        painter("download", *TINY, *args, "--workdir", str(tmp_path / "ref"))
        reference = tmp_path / "ref" / "raw" / name
    else:
        args, pause, name = [], "demo data@8", "demo"
        reference = base / "work" / "raw" / "demo"
    raw = tmp_path / "work" / "raw" / name

    kill_at(spawn("download", *TINY, *args, pause=pause), tmp_path)
    assert len(list(raw.parent.rglob("monet_jpg/*.jpg"))) == 8   # mid-work: half the paintings written...
    assert incomplete(raw)                                         # ...and not marked complete

    again = painter("download", *TINY, *args)
    assert "download: running (no previous output)" in again.output
    assert_same_output(raw, reference)
    assert [p.name for p in raw.parent.iterdir()] == [raw.name]   # nothing of the killed run left


def competition_zip(base: Path) -> bytes:
    """The competition's layout holding the reference's demo paintings and two photos."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((base / "work" / "raw" / "demo" / "monet_jpg").glob("*.jpg")):
            archive.write(path, f"monet_jpg/{path.name}")
        for i in range(2):
            archive.writestr(f"photo_jpg/photo{i}.jpg", jpeg(60 + i))
        archive.writestr("monet_tfrec/monet00-16.tfrec", os.urandom(4000))
    return buffer.getvalue()


def test_download_from_kaggle_killed_mid_download(painter, spawn, base, tmp_path, monkeypatch):
    with FakeKaggle(competition_zip=competition_zip(base)) as server:
        connect_in_process(server, monkeypatch, tmp_path / "home")
        painter("download", "--source", "kaggle", "--workdir", str(tmp_path / "ref"))
        reference = tmp_path / "ref" / "raw" / "kaggle"

        stall = server.stall(f"{COMPETITION}.zip")  # half the zip goes out, then the fake holds the rest
        process = spawn("download", "--source", "kaggle", env=server.cli_env(tmp_path / "home"))
        raw = tmp_path / "work" / "raw" / "kaggle"
        kill_when(process, lambda: stall.reached.is_set() and any(raw.parent.rglob(f"{COMPETITION}.zip")),
                  "half-way through the download", tmp_path / "killed.log")
        stall.release.set()
        assert incomplete(raw)

        again = painter("download", "--source", "kaggle")
        assert "download: running (no previous output)" in again.output
        assert_same_output(raw, reference)
        assert sorted(p.name for p in raw.parent.iterdir()) == ["kaggle"]
        assert len(server.calls(f"{COMPETITION}.zip")) == 3 and not server.errors


# ---------------------------------------------------------------------- prepare

def test_prepare_killed_between_its_resolutions(painter, spawn, base, tmp_path):
    seed(tmp_path, base, "raw")
    shards = tmp_path / "work" / "shards"
    # 32 px first, then the 256 px reference: stop half-way through decoding for the latter.
    process = spawn("prepare", *TINY, pause="prepare 256px@8")
    kill_at(process, tmp_path)
    assert incomplete(shards / "demo-256px")
    assert not incomplete(shards / "demo-32px")  # finished before the kill: kept

    again = painter("prepare", *TINY)
    assert "prepare 32px: up to date" in again.output
    assert "prepare 256px: running (no previous output)" in again.output
    for name in ("demo-32px", "demo-256px"):
        assert_same_output(shards / name, base / "work" / "shards" / name)
    assert sorted(p.name for p in shards.iterdir()) == ["demo-256px", "demo-32px"]
    assert not survivors(process)  # its decoding workers exit with it


# ---------------------------------------------------------------------- generate

def test_generate_killed_while_writing_images(painter, spawn, base, tmp_path):
    seed(tmp_path, base, "raw", "shards", f"runs/{RUN}/train")
    images = tmp_path / "work" / "runs" / RUN / "images"
    # Batches of 8, up to 4 of them written ahead of the bar: after 16, not all 64 are written.
    kill_at(spawn("generate", *TINY, pause="generate@16"), tmp_path)
    assert 16 <= len(list(images.glob("*.jpg"))) < 64 and incomplete(images)   # works in place, resumes

    again = painter("generate", *TINY)
    assert "generate: running (previous output incomplete)" in again.output
    assert "images are already written" in again.output
    assert_same_output(images, base / "work" / "runs" / RUN / "images", resumed=("written_this_run",))


# ---------------------------------------------------------------------- score

def score_report(folder: Path) -> dict:
    report = json.loads((folder / "score.json").read_text())
    report.pop("seconds")  # how long it took: the one thing that may differ
    return report


def test_score_killed_while_reading_the_images(painter, spawn, base, tmp_path):
    seed(tmp_path, base, "raw", "shards", f"runs/{RUN}/train", f"runs/{RUN}/images")
    scored = tmp_path / "work" / "runs" / RUN / "score"
    kill_at(spawn("score", *TINY, pause="score: generated@30"), tmp_path)
    assert incomplete(scored)

    again = painter("score", *TINY)
    assert "score: running (no previous output)" in again.output
    reference = base / "work" / "runs" / RUN / "score"
    assert_same_output(scored, reference, skip=("score.json",))
    assert score_report(scored) == score_report(reference)
    assert sorted(p.name for p in scored.parent.iterdir()) == ["images", "score", "train"]


# ---------------------------------------------------------------------- submit

def zip_members(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: hashlib.sha256(archive.read(info)).hexdigest() for info in archive.infolist()}


def test_submit_killed_while_zipping(painter, spawn, base, tmp_path):
    seed(tmp_path, base, "raw", "shards", f"runs/{RUN}")
    submission = tmp_path / "submissions" / RUN
    kill_at(spawn("submit", *TINY, "--force", pause="submit: zip@20"), tmp_path)
    assert any(submission.parent.rglob("images.zip"))   # mid-work: the zip is being written...
    assert incomplete(submission) and not (submission / "images.zip").exists()   # ...not where it is submitted from

    painter("submit", *TINY, "--force")
    reference = base / "submissions" / RUN
    assert zip_members(submission / "images.zip") == zip_members(reference / "images.zip")
    assert_same_output(submission, reference)
    assert [p.name for p in submission.parent.iterdir()] == [RUN]
    assert "submit: up to date" in painter("submit", *TINY).output  # the new stamp is the complete one


# ---------------------------------------------------------------------- sweep

SWEEP = ["sweep", "--archs", "dcgan", "--diffaugment", "both", "--budget-images", "80", "--source", "demo"]
for setting in ("data.resolution=32", "data.demo_paintings=16", "data.demo_photos=0", "model.g_channels=8",
                "model.d_channels=8", "model.latent_dim=8", "train.batch_size=4", "train.checkpoint_every=5",
                "train.sample_every=1000", "train.eval_every=0", "generate.count=16", "score.inception=false"):
    SWEEP += ["--set", setting]  # TINY's (with fewer images), over configs/dcgan.toml


def test_sweep_killed_while_training_its_second_run(painter, spawn, base, tmp_path):
    for workdir in ("ref", "work"):  # the data is the reference chain's: only the sweep's runs are made
        for part in ("raw", "shards"):
            shutil.copytree(base / "work" / part, tmp_path / workdir / part)
    painter(*SWEEP, "--workdir", str(tmp_path / "ref"))
    runs = ["sweep-dcgan", "sweep-dcgan-da"]

    # 80 images at batch 4: 20 steps a run, a checkpoint every 5. Stop the second run at step 12.
    kill_at(spawn(*SWEEP, pause="train#2@12"), tmp_path)
    work = tmp_path / "work" / "runs"
    assert not incomplete(work / runs[0] / "score")                    # the first run: finished and kept
    assert (work / runs[1] / "train" / "checkpoint.pt").is_file() and incomplete(work / runs[1] / "train")
    assert not (work / runs[1] / "images").exists()

    again = painter(*SWEEP).output
    first, second = again.split(f"sweep 2/2: {runs[1]}")
    assert all(f"{stage}: up to date" in first for stage in ("train", "generate", "score"))
    assert "train: running (previous output incomplete)" in second and "resuming from step 10 of 20" in second
    for run in runs:
        reference = tmp_path / "ref" / "runs" / run
        assert digests(work / run / "images") == digests(reference / "images")
        assert score_report(work / run / "score") == score_report(reference / "score")
    columns = lambda path: pd.read_csv(path).drop(columns=["train_seconds"])  # noqa: E731
    pd.testing.assert_frame_equal(columns(tmp_path / "work" / "leaderboard.csv"),
                                  columns(tmp_path / "ref" / "leaderboard.csv"))


# ---------------------------------------------------------------------- kernel pull

def kernel_output() -> dict[str, bytes]:
    """What a finished kernel leaves: a valid images.zip (Kaggle's 7,000 JPEGs) and painter's score."""
    buffer, image = io.BytesIO(), jpeg(90)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(7000):
            archive.writestr(zipfile.ZipInfo(f"{i:05d}.jpg", date_time=(2020, 1, 1, 0, 0, 0)), image)
    score = {"run": RUN, "n_generated": 7000, "swd": {"value": 41.5}, "nearest": {"n_copies": 0},
             "inception": {"computed": False}}
    return {"images.zip": buffer.getvalue(), "score.json": json.dumps(score).encode(), "samples.png": b"png"}


def test_kernel_pull_killed_mid_download(painter, spawn, tmp_path, monkeypatch):
    with FakeKaggle() as server:
        kernel = f"{server.username}/painter-{RUN}"
        server.set_kernel_output(kernel, kernel_output(), log="painter kernel: done")
        for workdir in ("ref", "work"):  # as `painter kernel push` records it
            (tmp_path / workdir / "kernels" / RUN).mkdir(parents=True)
            write_json_atomic(tmp_path / workdir / "kernels" / RUN / "push.json", {"kernel": kernel, "version": 1})
        connect_in_process(server, monkeypatch, tmp_path / "home")
        painter("kernel", "pull", *TINY, "--workdir", str(tmp_path / "ref"), "--submissions", str(tmp_path / "ref-sub"))

        stall = server.stall("images.zip")
        process = spawn("kernel", "pull", *TINY, env=server.cli_env(tmp_path / "home"))
        submissions = tmp_path / "submissions"
        kill_when(process, lambda: stall.reached.is_set() and any(submissions.rglob("images.zip")),
                  "half-way through downloading images.zip", tmp_path / "killed.log")
        stall.release.set()
        assert not (submissions / RUN / "images.zip").exists()   # the half download is not the submission
        assert not (tmp_path / "work" / "runs" / RUN / "kaggle").exists()   # and the run is not registered

        painter("kernel", "pull", *TINY)
        assert not server.errors
    pulled, reference = tmp_path / "submissions" / RUN, tmp_path / "ref-sub" / RUN
    assert digests(pulled, skip=("kernel.json",)) == digests(reference, skip=("kernel.json",))
    assert sorted(p.name for p in pulled.parent.iterdir()) == [RUN]   # no staging left

    def info(path: Path) -> dict:
        return {k: v for k, v in json.loads(path.read_text()).items() if k != "pulled"}

    assert info(pulled / "kernel.json") == info(reference / "kernel.json")
    registered = tmp_path / "work" / "runs" / RUN / "kaggle"
    reference_registered = tmp_path / "ref" / "runs" / RUN / "kaggle"
    assert digests(registered, skip=("kernel.json",)) == digests(reference_registered, skip=("kernel.json",))
    assert info(registered / "kernel.json") == info(reference_registered / "kernel.json")
