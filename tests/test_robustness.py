"""Nothing is lost when a run is killed or the disk fills up."""

import errno
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from pipeline import prepare

from .conftest import REPO

TINY = ["--config", str(REPO / "configs" / "demo.toml"), "--set", "data.demo_paintings=16",
        "--set", "data.demo_photos=0", "--set", "model.g_channels=8", "--set", "model.d_channels=8",
        "--set", "model.latent_dim=8", "--set", "train.batch_size=4", "--set", "train.log_every=1",
        "--set", "train.steps=300", "--set", "train.checkpoint_every=10", "--set", "train.sample_every=1000"]


def test_training_killed_by_a_signal_resumes_without_losing_steps(painter, tmp_path):
    painter("download", *TINY)
    painter("prepare", *TINY)
    train_dir = tmp_path / "work" / "runs" / "demo" / "train"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "train", *TINY], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (train_dir / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if process.returncode != -signal.SIGKILL:
        pytest.skip("training finished before it could be killed")
    assert not (train_dir / "_stamp.json").exists()   # killed: not marked complete

    resumed = painter("train", *TINY)
    assert "train: running (previous output incomplete)" in resumed.output
    assert "train: resuming from step" in resumed.output
    metrics = pd.read_csv(train_dir / "metrics.csv")
    assert metrics["step"].tolist() == list(range(1, 301))   # every step logged once, none lost or repeated
    assert (train_dir / "_stamp.json").exists() and (train_dir / "generator.pt").exists()


def test_full_disk_is_a_clear_error_and_leaves_no_partial_output(painter, tmp_path, monkeypatch):
    painter("download", *TINY)

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(prepare, "write_bytes_atomic", disk_full)
    result = painter("prepare", *TINY, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no space left on device while writing" in result.output and "run the same command again" in result.output
    shards = tmp_path / "work" / "shards"
    assert not shards.exists() or not any(shards.iterdir())   # nothing half-written left behind

    monkeypatch.undo()
    monkeypatch.setenv("PAINTER_WORKDIR", str(tmp_path / "work"))
    assert "prepare 32px: running" in painter("prepare", *TINY).output
