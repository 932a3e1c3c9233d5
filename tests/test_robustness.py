"""Nothing is lost when a run is killed or the disk fills up."""

import errno
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from pipeline import artifacts

from .conftest import REPO

TINY = ["--config", str(REPO / "configs" / "demo.toml"), "--set", "data.demo_paintings=16",
        "--set", "data.demo_photos=0", "--set", "model.g_channels=8", "--set", "model.d_channels=8",
        "--set", "model.latent_dim=8", "--set", "train.batch_size=4", "--set", "train.log_every=1",
        "--set", "train.steps=300", "--set", "train.checkpoint_every=10", "--set", "train.sample_every=1000"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_training_stopped_by_a_signal_resumes_to_the_same_weights(painter, tmp_path, signum):
    painter("download", *TINY)
    painter("prepare", *TINY)
    painter("train", *TINY, "--set", "run.name=straight")
    train_dir = tmp_path / "work" / "runs" / "demo" / "train"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "train", *TINY], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (train_dir / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("training finished before the signal arrived")
    if signum == signal.SIGTERM:   # caught: checkpoint at the current step, then a clear exit
        assert process.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in stderr
    else:                          # not catchable: the last periodic checkpoint is what survives
        assert process.returncode == -signal.SIGKILL
    assert not (train_dir / "_stamp.json").exists()   # stopped: not marked complete

    resumed = painter("train", *TINY)
    assert "train: running (previous output incomplete)" in resumed.output
    assert "train: resuming from step" in resumed.output
    metrics = pd.read_csv(train_dir / "metrics.csv")
    assert metrics["step"].tolist() == list(range(1, 301))   # every step logged once, none lost or repeated
    final = torch.load(train_dir / "checkpoint.pt", weights_only=True)["trainer"]
    straight = torch.load(tmp_path / "work/runs/straight/train/checkpoint.pt", weights_only=True)["trainer"]
    for part in ("g", "d", "ema"):
        for name, tensor in straight[part].items():
            assert torch.equal(final[part][name], tensor), f"{part}.{name}"


def test_full_disk_is_a_clear_error_and_leaves_no_partial_output(painter, tmp_path, monkeypatch):
    painter("download", *TINY)

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(artifacts, "write_bytes_atomic", disk_full)   # every artifact write goes through it
    result = painter("prepare", *TINY, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no space left on device while writing" in result.output and "run the same command again" in result.output
    shards = tmp_path / "work" / "shards"
    assert not shards.exists() or not any(shards.iterdir())   # nothing half-written left behind

    monkeypatch.undo()
    monkeypatch.setenv("PAINTER_WORKDIR", str(tmp_path / "work"))
    assert "prepare 32px: running" in painter("prepare", *TINY).output
