"""train.tensorboard: the metrics rows, evaluations and sample grids as TensorBoard events, read back
with TensorBoard's own reader; a resumed run repeats no step; a missing package is a clear error."""

import io
import sys

import pandas as pd
import pytest
from PIL import Image

from pipeline.archs.base import Trainer

from .conftest import REPO

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

# Rows at steps 2, 3 (an evaluation), 4 and 6 (the last, evaluated too); sample grids at 2, 4 and 6.
TINY = ["--config", str(REPO / "configs" / "demo.toml"), "--set", "data.demo_paintings=16",
        "--set", "data.demo_photos=0", "--set", "model.g_channels=8", "--set", "model.d_channels=8",
        "--set", "model.latent_dim=8", "--set", "train.batch_size=4", "--set", "train.steps=6",
        "--set", "train.log_every=2", "--set", "train.eval_every=3", "--set", "train.eval_images=16",
        "--set", "train.sample_every=2", "--set", "train.checkpoint_every=3", "--set", "train.tensorboard=true"]


def events(train_dir):
    accumulator = event_accumulator.EventAccumulator(str(train_dir / "tensorboard"),
                                                     size_guidance={"scalars": 0, "images": 0})
    return accumulator.Reload()


def assert_matches_metrics(train_dir):
    """Every metrics.csv value is a scalar at its row's step, once; every sample grid an image at its step."""
    board = events(train_dir)
    metrics = pd.read_csv(train_dir / "metrics.csv")
    evaluated = metrics.dropna(subset=["swd"])
    assert metrics["step"].tolist() == [2, 3, 4, 6] and evaluated["step"].tolist() == [3, 6]
    # The columns this architecture logs (the CSV has every DCGAN-family column; DCGAN leaves gp empty).
    logged = [column for column in metrics.columns if metrics[column].notna().any()
              and column not in ("step", "seconds", "swd", "fid", "kid")]
    expected = {f"train/{column}": metrics for column in logged}
    expected["eval/swd"] = evaluated   # no Inception weights here: FID and KID are never computed
    assert set(board.Tags()["scalars"]) == set(expected)
    assert {"train/loss_d", "train/loss_g", "train/img_per_s"} <= set(expected)
    for tag, rows in expected.items():
        scalars = board.Scalars(tag)
        assert [s.step for s in scalars] == rows["step"].tolist(), tag
        assert [s.value for s in scalars] == pytest.approx(rows[tag.split("/")[1]].tolist(), rel=1e-6), tag

    grids = board.Images("samples")
    assert [g.step for g in grids] == [2, 4, 6]
    for grid in grids:   # the very pixels of samples/step_*.png
        saved = Image.open(train_dir / "samples" / f"step_{grid.step:06d}.png").convert("RGB")
        shown = Image.open(io.BytesIO(grid.encoded_image_string)).convert("RGB")
        assert (grid.width, grid.height) == saved.size and shown.tobytes() == saved.tobytes()


def test_training_writes_metrics_evaluations_and_samples_as_tensorboard_events(painter, tmp_path):
    painter("download", *TINY)
    painter("prepare", *TINY)
    painter("train", *TINY)
    train_dir = tmp_path / "work" / "runs" / "demo" / "train"
    assert len(list((train_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert_matches_metrics(train_dir)

    # TensorBoard only watches: switching it off is no reason to train again.
    assert "train: up to date" in painter("train", *TINY, "--set", "train.tensorboard=false").output


def test_a_resumed_run_appends_without_repeating_steps(painter, tmp_path, monkeypatch):
    painter("download", *TINY)
    painter("prepare", *TINY)
    real_step = Trainer.train_step

    def crash_at_step_5(self, step):
        if step == 4:   # 0-based: the fifth step, after events for steps 2-4 and the checkpoint of step 3
            raise RuntimeError("simulated crash")
        return real_step(self, step)

    monkeypatch.setattr(Trainer, "train_step", crash_at_step_5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        painter("train", *TINY)
    train_dir = tmp_path / "work" / "runs" / "demo" / "train"
    assert [s.step for s in events(train_dir).Scalars("train/loss_d")] == [2, 3, 4]   # closed and readable

    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert "train: resuming from step 3" in painter("train", *TINY).output
    assert len(list((train_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2   # appended to the folder
    assert_matches_metrics(train_dir)   # step 4, logged by both runs, appears once: the resumed run's


def test_missing_tensorboard_is_a_clear_error_before_training(painter, tmp_path, monkeypatch):
    painter("download", *TINY)
    painter("prepare", *TINY)
    for module in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, module, None)   # `import` now fails as if it were not installed

    result = painter("train", *TINY, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "train.tensorboard = true needs the tensorboard package" in result.output
    assert "pip install 'painter[tensorboard]'" in result.output and "train.tensorboard=false" in result.output
    assert not (tmp_path / "work" / "runs").exists()   # nothing trained, nothing written

    assert "train: running" in painter("train", *TINY, "--set", "train.tensorboard=false").output
