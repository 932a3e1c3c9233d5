"""`painter sweep --backend ray`: trials under a real local Ray Tune on this machine, a worker killed with -9
midway, ASHA stopping a trial whose evaluations trail; and the clear stop without Ray."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pandas as pd
import pytest
import torch

from pipeline import leaderboard
from pipeline.config import load_config
from pipeline.layout import Workdir
from pipeline.lock import lock_path

from .conftest import REPO

TINY = ["data.source=demo", "data.demo_paintings=24", "data.demo_photos=0", "data.resolution=32",
        "model.g_channels=8", "model.d_channels=8", "model.latent_dim=16", "train.batch_size=8", "train.steps=20",
        "train.log_every=5", "train.checkpoint_every=5", "train.sample_every=1000", "train.eval_every=5",
        "train.eval_images=24", "train.ema_decay=0.5", "generate.count=24", "score.max_images=24",
        "score.inception=false", "score.splits=2"]


def test_without_ray_the_ray_backend_stops_before_doing_anything(painter, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = painter("sweep", "--backend", "ray", "--archs", "dcgan", "--set", "data.source=demo", ok=False)
    assert result.exit_code == 1 and "--backend ray needs Ray Tune" in result.output
    assert not (tmp_path / "work").exists()


def _kill_when_checkpointed(folder, killed: list) -> None:
    """kill -9 the worker training `folder` (the holder its lock names) once it saved a checkpoint."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        lock = lock_path(folder)
        if (folder / "checkpoint.pt").exists() and lock.exists():
            try:
                pid = json.loads(lock.read_text())["pid"]
            except (ValueError, KeyError):
                pid = None
            if pid and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.05)


def test_a_ray_sweep_resumes_a_killed_trial_exactly_and_asha_stops_the_one_that_trails(tmp_path):
    from pipeline import sweep_ray

    # Three trials that train identically (the JPEG quality comes after training), their evaluated generator an
    # EMA that follows the generator closely; the fourth's EMA barely moves from where it started: it trails.
    configs = [load_config(REPO / "configs" / "demo.toml", [*TINY, f"run.name=t{q}", f"generate.jpeg_quality={q}"])
               for q in (90, 91, 92)]
    configs.append(load_config(REPO / "configs" / "demo.toml", [*TINY, "run.name=frozen", "train.ema_decay=0.99999"]))
    wd = Workdir(tmp_path / "work")
    killed: list = []
    killer = threading.Thread(target=_kill_when_checkpointed, args=(wd.run_folder("t91").train, killed), daemon=True)
    killer.start()
    try:
        names = sweep_ray.run(configs, wd, cpus_per_trial=1, asha=True, log=lambda _: None)
    finally:
        import ray
        ray.shutdown()
    killer.join(timeout=1)
    assert killed, "the trial's worker was never killed"

    assert names == ["t90", "t91", "t92", "frozen"]
    weights = {name: torch.load(wd.run_folder(name).generator, weights_only=False)["state_dict"]
               for name in ("t90", "t91", "t92")}
    for key, value in weights["t90"].items():  # the killed trial resumed to the uninterrupted ones' weights
        assert torch.equal(value, weights["t91"][key]) and torch.equal(value, weights["t92"][key]), key
    stopped = json.loads(wd.run_folder("frozen").stopped.read_text())
    assert stopped["by"] == "ASHA" and stopped["step"] < 20

    table = leaderboard.run(wd, log=lambda _: None)
    frozen = table[table["run"] == "frozen"].iloc[0]
    assert frozen["status"].startswith("stopped early at step") and pd.isna(frozen["swd"])
    assert list(table["run"])[-1] == "frozen"  # not ranked as finished
    assert table[table["run"] != "frozen"]["swd"].notna().all()
