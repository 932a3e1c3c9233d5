"""Two painter processes never write one folder: the second stops at once naming the first, or with
--wait waits for it; the lock of a holder killed with -9 is taken over. Real processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import PainterError
from pipeline.lock import holding, lock_path

from .conftest import REPO

PAUSE_HOOK = REPO / "tests" / "pause_hook"
TINY = ["--config", str(REPO / "configs" / "demo.toml"), "--set", "data.demo_paintings=16",
        "--set", "data.demo_photos=0", "--set", "model.g_channels=8", "--set", "model.d_channels=8",
        "--set", "model.latent_dim=8", "--set", "train.batch_size=4", "--set", "train.steps=20",
        "--set", "train.checkpoint_every=5", "--set", "train.sample_every=1000", "--set", "train.eval_every=0"]
HOLD = """
import sys, time
from pathlib import Path
from pipeline.lock import holding
with holding(Path(sys.argv[1]), "test"):
    Path(sys.argv[2]).write_text("held")
    time.sleep(60)
"""


@pytest.fixture
def start(tmp_path):
    """start(name, *args, pause=None): `python -m pipeline ARGS` (or with args[0] == "-c", a script) in
    tmp_path, its output in tmp_path/<name>.log; whatever still runs at the end is killed."""
    started = []

    def run(name: str, *args: str, pause: str | None = None) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PAUSE_HOOK), str(REPO)]),
                   PAINTER_WORKDIR=str(tmp_path / "work"), PAINTER_TEST_PAUSED=str(tmp_path / "paused"))
        if pause:
            env["PAINTER_TEST_PAUSE"] = pause
        command = [sys.executable, *(args if args[0] == "-c" else ["-m", "pipeline", *args])]
        with open(tmp_path / f"{name}.log", "w") as log:
            process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        started.append(process)
        return process

    yield run
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"exited with {process.returncode} before {path.name}"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.1)


def test_a_held_folder_stops_a_second_writer_and_a_killed_holder_is_taken_over(tmp_path, start):
    folder = tmp_path / "work" / "runs" / "a" / "train"
    holder = start("holder", "-c", HOLD, str(folder), str(tmp_path / "held"))
    wait_for(tmp_path / "held", holder)
    with pytest.raises(PainterError, match=rf"is being written by PID {holder.pid} .*--wait"):
        with holding(folder, "train"):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    said = []
    with holding(folder, "train", log=said.append):
        assert f"from PID {holder.pid} " in said[0] and "took over" in said[0]
    assert not lock_path(folder).exists()  # a holder that finishes leaves nothing behind
    with holding(folder, "train", log=said.append):  # and the next one takes it without a word
        pass
    assert len(said) == 1


def test_two_trainings_of_one_run(tmp_path, start, painter):
    painter("download", *TINY)
    painter("prepare", *TINY)
    first = start("first", "train", *TINY, pause="train@7")
    wait_for(tmp_path / "paused", first)
    second, waiting = start("second", "train", *TINY), start("waiting", "train", *TINY, "--wait")
    assert second.wait(timeout=120) == 1
    said = (tmp_path / "second.log").read_text()
    assert f"is being written by PID {first.pid} (`painter train" in said and "--wait" in said, said

    deadline = time.monotonic() + 60
    while "waiting for PID" not in (tmp_path / "waiting.log").read_text():
        assert waiting.poll() is None and time.monotonic() < deadline, (tmp_path / "waiting.log").read_text()
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGKILL)
    assert waiting.wait(timeout=120) == 0, (tmp_path / "waiting.log").read_text()
    said = (tmp_path / "waiting.log").read_text()
    assert f"took over the lock on {tmp_path / 'work' / 'runs' / 'demo' / 'train'} from PID {first.pid}" in said
    assert "resuming from step 5 of 20" in said  # the killed run's checkpoint, not mixed with another's


def test_two_prepares_of_one_source(tmp_path, start, painter):
    painter("download", *TINY)
    first = start("first", "prepare", *TINY, pause="prepare 32px@3")
    wait_for(tmp_path / "paused", first)
    second = start("second", "prepare", *TINY)
    assert second.wait(timeout=120) == 1
    said = (tmp_path / "second.log").read_text()
    assert f"prepare 32px: {tmp_path / 'work' / 'shards' / 'demo-32px'} is being written by PID {first.pid}" in said, said
