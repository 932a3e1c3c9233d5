"""Translation architectures (CycleGAN, CUT, FastCUT): photos as a domain, every guarantee the noise GANs
have (exact resume, signals, the NaN guard, evaluation and best.pt, wall-clock budgets, DDP, mixed
precision, pair grids, loss terms), and generation that translates each photo."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch
from PIL import Image

from pipeline import archs, losses
from pipeline.archs.base import Trainer
from pipeline.archs.nets import ResnetGenerator
from pipeline.archs.translation import SAMPLE_PAIRS, PhotoInputs
from pipeline.config import load_config
from pipeline.devices import Process
from pipeline.errors import PainterError

from .conftest import REPO
from .test_train import assert_same_state

TRANSLATION = tuple(name for name in archs.names() if archs.get(name).consumes == "photos")


def tiny(arch: str, *extra: str) -> list[str]:
    """CLI arguments for a tiny translation run on the demo set (32 px, widths 4, one residual block)."""
    return ["--config", str(REPO / "configs" / f"{arch}.toml"), "--set", "data.source=demo",
            "--set", "data.demo_paintings=12", "--set", "data.demo_photos=6", "--set", "data.resolution=32",
            "--set", "model.g_channels=4", "--set", "model.d_channels=4", "--set", f"{arch}.blocks=1",
            "--set", f"{arch}.crop=32", "--set", "train.log_every=1", "--set", "train.sample_every=1000",
            "--set", "train.eval_every=0", "--set", "train.checkpoint_every=4", *extra]


def trainer_for(arch: str, *overrides: str) -> Trainer:
    cfg = load_config(REPO / "configs" / f"{arch}.toml", ["data.resolution=32", "model.g_channels=4",
                                                          "model.d_channels=4", f"{arch}.blocks=1",
                                                          f"{arch}.crop=32", *overrides])
    torch.manual_seed(0)
    data = {"paintings": torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8),
            "photos": torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)}
    return archs.get(arch).trainer(cfg, data, torch.device("cpu"), Process())


def test_the_registry_lists_every_architecture_with_its_preset_and_its_own_keys(painter):
    names = archs.names()
    noise = sorted(name for name in names if archs.get(name).consumes == "noise")
    assert list(names) == noise + sorted(set(names) - set(noise))   # the from-noise family first, each alphabetical
    assert {"dcgan", "sngan", "wgan", "wgan-gp", "cut", "cyclegan", "fastcut"} <= set(names)
    keys = painter("config", "--keys").output
    for name in archs.names():
        assert load_config(REPO / "configs" / f"{name}.toml").model.arch == name   # its preset, valid
        assert re.search(rf"^#\s+{name}\s+\((from noise|translates photos)\) ", keys, re.M), name
    for key in ("cyclegan.lambda_cycle = 10.0", "cyclegan.pool_size = 50", "cut.nce_temperature = 0.07",
                "cut.num_patches = 256", "fastcut.lambda_nce = 10.0", "fastcut.nce_idt = false", "cut.crop = 0", "fastcut.decay_from = 0.75"):
        assert key in keys, key
    shown = painter("config", "--config", str(REPO / "configs" / "fastcut.toml")).output
    assert "[fastcut]" in shown and "flip_equivariance = true" in shown and "[cyclegan]" not in shown


@pytest.mark.parametrize("setting, message", [
    ("cyclegan.crop=30", "must be a multiple of 4"),
    ("cyclegan.crop=512", "out of range"),
    ("train.n_critic=5", "train.n_critic = 5 is for the from-noise architectures"),
    ("train.gp_weight=10", "train.gp_weight = 10.0 is for the from-noise architectures"),
    ("cyclegan.lambda_cycle=-1", "out of range"),
    ("cyclegan.pool=3", "unknown config key cyclegan.pool"),
])
def test_bad_translation_settings_name_the_key(setting, message):
    with pytest.raises(PainterError, match=message.replace("(", r"\(")):
        load_config(REPO / "configs" / "cyclegan.toml", ["data.resolution=64", setting])


def test_cut_checks_its_layers_and_noise_gans_refuse_count_zero():
    with pytest.raises(PainterError, match="nce_layers"):
        load_config(REPO / "configs" / "cut.toml", ["cut.nce_layers=0,99"])
    with pytest.raises(PainterError, match="nce_layers"):
        load_config(REPO / "configs" / "cut.toml", ["cut.nce_layers=zero"])
    with pytest.raises(PainterError, match="generate.count: 0"):
        load_config(REPO / "configs" / "dcgan.toml", ["generate.count=0"])


def test_batched_generator_calls_equal_separate_ones():
    # CycleGAN batches the images bound for one generator: instance norm keeps them independent.
    torch.manual_seed(0)
    g = ResnetGenerator(4, 1)
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(g(torch.cat([a, b])), torch.cat([g(a), g(b)]), atol=1e-6)


@pytest.mark.parametrize("arch", TRANSLATION)
@pytest.mark.parametrize("augment", ["", "color,translation,cutout"])
def test_each_translation_architecture_trains_with_finite_losses(arch, augment):
    trainer = trainer_for(arch, f"train.diffaugment={augment}")
    before = [p.clone() for p in trainer.g.parameters()]
    for step in range(3):
        stats = trainer.train_step(step)
    row = trainer.log_row(stats)
    assert set(row) == set(trainer.columns) and all(torch.isfinite(torch.tensor(v)) for v in row.values())
    assert stats["images"] == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.g.parameters()))
    # the EMA follows the generator but is not it
    assert trainer.sampling_generator is trainer.ema
    assert any(not torch.equal(a, b) for a, b in zip(trainer.ema.parameters(), trainer.g.parameters()))
    grid = trainer.samples()
    assert grid.shape == (2 * SAMPLE_PAIRS, 3, 32, 32)
    # tiles alternate photo, painting: the even ones are the sample photos themselves
    assert torch.allclose(grid[0::2], trainer.sample_inputs.batch(slice(None), torch.device("cpu")))


def test_each_loss_term_is_what_the_paper_says():
    trainer = trainer_for("cyclegan", "cyclegan.lambda_identity=0")
    stats = trainer.train_step(0)
    assert stats["idt_painting"] == 0 and stats["idt_photo"] == 0 and stats["cycle_photo"] > 0
    scores = torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=torch.float16)
    assert losses.least_squares(scores, real=True).item() == pytest.approx((1 + 0 + 1 + 4) / 4)
    assert losses.least_squares(scores, real=False).item() == pytest.approx((0 + 1 + 4 + 1) / 4)
    fast = trainer_for("fastcut").train_step(0)
    assert fast["nce_idt"] == 0 and fast["nce"] > 0     # FastCUT: no identity NCE, NCE weighted by 10
    cut = trainer_for("cut").train_step(0)
    assert cut["nce_idt"] > 0


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    trainer = trainer_for("cut", "train.steps=100", "cut.decay_from=0.5")
    lrs = []
    for step in (0, 49, 50, 75, 99):
        trainer.schedule(step)
        lrs.append(trainer.optimizers["g"].param_groups[0]["lr"])
    assert lrs[:3] == [2e-4, 2e-4, 2e-4] and lrs[3] == pytest.approx(1e-4) and lrs[4] == pytest.approx(4e-6)


def test_bf16_autocast_steps_stay_finite():
    trainer = trainer_for("cyclegan")
    trainer.amp_dtype = torch.bfloat16  # what a bf16 GPU or CPU gets; here emulated on this CPU
    stats = trainer.train_step(0)
    assert all(torch.isfinite(stats[k]) for k in ("loss_d", "loss_g"))


@pytest.mark.parametrize("arch", ["cut", "fastcut"])
def test_under_autocast_the_nce_heads_learn(arch):
    """The keys are made under no_grad inside the autocast region. On torch 2.10 (Kaggle's), autocast's
    weight cache then handed the query pass casts without autograd history: the MLPs never trained."""
    trainer = trainer_for(arch)
    trainer.amp_dtype = torch.bfloat16  # what a bf16 GPU or CPU gets; here emulated on this CPU
    before = [p.detach().clone() for p in trainer.sampler_mlp.parameters()]
    trainer.train_step(0)
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.sampler_mlp.parameters()))


def test_photo_inputs_every_photo_a_subset_or_mirrored_rounds():
    photos = torch.arange(5).view(5, 1, 1, 1).expand(5, 3, 2, 2).to(torch.uint8).contiguous()
    photos[:, :, :, 0] += 100  # left column marks the orientation
    every = PhotoInputs(photos, 5, seed=0)
    assert every.source(slice(None))[:, 0, 0, 1].tolist() == [0, 1, 2, 3, 4]
    subset = PhotoInputs(photos, 3, seed=0)
    picked = subset.source(slice(None))[:, 0, 0, 1].tolist()
    assert len(set(picked)) == 3 and picked == sorted(picked) and PhotoInputs(photos, 3, seed=0).order.equal(
        subset.order)
    more = PhotoInputs(photos, 12, seed=0)
    images = more.source(list(range(12)))
    assert images[5:10, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]           # the second round is mirrored...
    assert images[:5, 0, 0, 0].tolist() == [100, 101, 102, 103, 104]  # ...the first is not
    assert torch.equal(images[10:], images[:2])                         # the third repeats the first
    assert "7 more from the photos mirrored; images beyond 10 repeat" in more.notes()[0]


def test_prepare_packs_the_photos_and_a_folder_without_them_is_an_error(painter, tmp_path):
    source = tmp_path / "competition"
    (source / "monet_jpg").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (256, 256), (i * 40, 90, 10)).save(source / "monet_jpg" / f"m{i}.jpg")
    args = ["--config", str(REPO / "configs" / "cyclegan.toml"), "--set", f"data.source={source}",
            "--set", "data.resolution=64", "--set", "cyclegan.crop=64"]
    painter("download", *args)
    failed = painter("prepare", *args, ok=False)
    assert failed.exit_code == 1 and "cyclegan translates photos into paintings" in failed.output
    assert "photo_jpg/" in failed.output and "Traceback" not in failed.output

    (source / "photo_jpg").mkdir()
    for i in range(3):
        Image.new("RGB", (300, 200), (10, i * 60, 200)).save(source / "photo_jpg" / f"p{i}.jpg")
    (source / "photo_jpg" / "broken.jpg").write_bytes(b"not a jpeg")
    out = painter("run", *args, "--until", "prepare").output
    assert "prepare photos 64px: running" in out and "prepare photos 256px: running" in out
    shards = {p.name: p for p in (tmp_path / "work" / "shards").iterdir()}
    photos = next(p for name, p in shards.items() if name.endswith("-photos-64px"))
    manifest = json.loads((photos / "manifest.json").read_text())
    assert manifest["count"] == 3 and manifest["skipped"][0]["file"] == "broken.jpg"
    assert any("resized and centre-cropped" in c["changes"][0] for c in manifest["changed"])
    # a changed photo re-runs what depends on it, the paintings stay up to date
    Image.new("RGB", (256, 256), (0, 0, 0)).save(source / "photo_jpg" / "p0.jpg")
    again = painter("run", *args, "--until", "prepare").output
    assert "prepare photos 64px: running" in again and "prepare 64px: running" in again  # the download changed


def test_translation_run_is_scored_beside_the_untouched_photos(painter, tmp_path):
    # The whole chain to a valid images.zip of 7,000 translations: test_kernel's fake-Kaggle run of cyclegan.
    result = painter("run", *tiny("fastcut", "--set", "train.steps=3", "--set", "generate.count=20",
                                  "--set", "score.max_images=20"), "--until", "score")
    assert "generate: 6 photos, each translated once, then 14 more from the photos mirrored" in result.output
    report = json.loads((tmp_path / "work" / "runs" / "fastcut" / "score" / "score.json").read_text())
    baseline = report["photos_baseline"]
    assert baseline["name"].endswith("-photos") and baseline["swd"] > 0
    assert "the untouched photos score" in result.output
    painter("leaderboard")
    table = pd.read_csv(tmp_path / "work" / "leaderboard.csv")
    rows = {row["where"]: row for row in table.to_dict("records")}
    assert rows["local"]["consumes"] == "photos" and rows["baseline"]["arch"] == "untouched photos"
    assert rows["baseline"]["swd"] == pytest.approx(baseline["swd"])
    with Image.open(tmp_path / "work" / "runs" / "fastcut" / "train" / "samples.png") as grid:
        assert grid.size == (8 * 34 + 2, 4 * 34 + 2)  # 16 pairs of 32 px tiles, 8 a row, 2 px padding


def test_generate_translates_every_photo_once_deterministically_and_resumes(painter, tmp_path, full_disk):
    args = tiny("cyclegan", "--set", "train.steps=2", "--set", "generate.count=0")
    painter("run", *args, "--until", "generate")
    images = tmp_path / "work" / "runs" / "cyclegan" / "images"
    first = {p.name: p.read_bytes() for p in images.glob("*.jpg")}
    assert sorted(first) == [f"{i:05d}.jpg" for i in range(6)]  # one per demo photo
    full_disk(after=3)
    failed = painter("generate", *args, "--force", ok=False)
    assert "no space left on device" in failed.output and not (images / "_stamp.json").exists()
    full_disk(None)
    resumed = painter("generate", *args).output
    assert "3 of 6 images are already written" in resumed
    assert {p.name: p.read_bytes() for p in images.glob("*.jpg")} == first


@pytest.mark.parametrize("arch", TRANSLATION)
def test_interrupted_and_resumed_equals_uninterrupted(arch, painter, tmp_path, monkeypatch):
    args = tiny(arch, "--set", "train.steps=8", "--set", "train.diffaugment=color,translation")
    painter("run", *args, "--until", "prepare")
    painter("train", *args, "--set", "run.name=straight")
    real_step = Trainer.train_step

    def step_then_sigint(self, step):
        stats = real_step(self, step)
        if step == 4:
            signal.raise_signal(signal.SIGINT)   # Ctrl-C, caught by the training loop
        return stats

    monkeypatch.setattr(Trainer, "train_step", step_then_sigint)
    stopped = painter("train", *args, "--set", "run.name=interrupted", ok=False)
    assert stopped.exit_code == 128 + signal.SIGINT and "stopped by SIGINT at step 5 of 8" in stopped.output
    monkeypatch.setattr(Trainer, "train_step", real_step)
    resumed = painter("train", *args, "--set", "run.name=interrupted")
    assert "train: resuming from step 5 of 8" in resumed.output
    states = [torch.load(tmp_path / "work" / "runs" / name / "train" / "checkpoint.pt", weights_only=True)["trainer"]
              for name in ("straight", "interrupted")]
    assert_same_state(*states)  # networks, EMA, optimisers, image pools, every random stream
    metrics = pd.read_csv(tmp_path / "work" / "runs" / "interrupted" / "train" / "metrics.csv")
    assert metrics["step"].tolist() == list(range(1, 9))


def test_nan_loss_stops_a_translation_run_and_keeps_the_last_good_checkpoint(painter, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_loss = losses.least_squares

    def loss_that_explodes(scores, real):
        calls["n"] += 1
        loss = real_loss(scores, real)
        return loss * float("nan") if calls["n"] > 5 * 6 else loss  # six calls a CycleGAN step

    monkeypatch.setattr(losses, "least_squares", loss_that_explodes)
    result = painter("run", *tiny("cyclegan", "--set", "train.steps=10"), ok=False)
    assert "training diverged: a loss became NaN or inf by step 6; the checkpoint of step 4 is kept" in result.output
    checkpoint = torch.load(tmp_path / "work" / "runs" / "cyclegan" / "train" / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 4 and all(torch.isfinite(t).all() for t in checkpoint["trainer"]["g"].values())


def test_translation_evaluates_keeps_best_logs_every_term_and_stops_on_time(painter, tmp_path):
    painter("run", *tiny("cut", "--set", "train.steps=6", "--set", "train.eval_every=3",
                         "--set", "train.eval_images=16"), "--until", "generate")
    trained = tmp_path / "work" / "runs" / "cut" / "train"
    metrics = pd.read_csv(trained / "metrics.csv")
    assert metrics.dropna(subset=["swd"])["step"].tolist() == [3, 6]
    assert metrics[["gan", "nce", "nce_idt", "loss_d", "loss_g"]].notna().all().all()
    best = json.loads((trained / "best.json").read_text())
    assert best["value"] == metrics["swd"].min() and (trained / "best.pt").is_file() and (trained / "losses.png").is_file()
    saved = torch.load(trained / "best.pt", weights_only=True)
    assert saved["arch"] == "cut" and saved["consumes"] == "photos" and saved["spec"]["antialias"] is True
    stamp = json.loads((tmp_path / "work" / "runs" / "cut" / "images" / "_stamp.json").read_text())
    assert stamp["summary"]["generator"] == "best.pt"

    timed = painter("train", *tiny("cut", "--set", "train.steps=100000", "--set", "train.max_minutes=0.002",
                                   "--set", "run.name=timed"))
    assert "min of training reached" in timed.output
    summary = json.loads((tmp_path / "work" / "runs" / "timed" / "train" / "summary.json").read_text())
    assert 1 <= summary["steps"] < 100000 and summary["photos"] == 6


@pytest.mark.parametrize("arch", ["cut"])  # cyclegan: test_kernel's fake-Kaggle run trains it under torchrun
def test_two_processes_under_torchrun_train_one_translation_model(arch, painter, tmp_path):
    args = tiny(arch, "--set", "train.steps=4")
    painter("run", *args, "--until", "prepare")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "pipeline", "train", *args]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "work" / "runs" / arch / "train" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", TRANSLATION)
def test_cuda_step_in_mixed_precision_and_channels_last(arch):
    cfg = load_config(REPO / "configs" / f"{arch}.toml", ["data.resolution=64", "model.g_channels=8",
                                                          "model.d_channels=8", f"{arch}.blocks=2", f"{arch}.crop=64"])
    data = {"paintings": torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, device="cuda"),
            "photos": torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, device="cuda")}
    for dtype in (torch.bfloat16, torch.float16):
        trainer = archs.get(arch).trainer(cfg, data, torch.device("cuda"), Process())
        trainer.amp_dtype = dtype
        if dtype == torch.float16:
            for name in trainer.scalers:
                trainer.scalers[name] = torch.amp.GradScaler("cuda")
        assert trainer.g.layers[1].weight.is_contiguous(memory_format=torch.channels_last)
        stats = trainer.train_step(0)
        assert torch.isfinite(stats["loss_g"]) and torch.isfinite(stats["loss_d"])


def test_a_sweep_plans_every_architecture_and_each_keeps_its_own_section():
    from pipeline import sweep

    assert sweep.architectures("all") == list(archs.names())
    configs = sweep.plan(sweep.shorthand(["dcgan", "cyclegan", "fastcut"], [None],
                                         ["cyclegan.crop=128", "fastcut.crop=64", "data.resolution=128"], 64, None))
    by_arch = {c.model.arch: c for c in configs}
    assert by_arch["cyclegan"].options.crop == 128 and by_arch["fastcut"].options.crop == 64
    assert "cyclegan" not in by_arch["dcgan"].to_dict()                 # another architecture's keys don't count
    assert by_arch["cyclegan"].train.steps == 64                        # one painting per step at batch 1
    assert by_arch["dcgan"].train.steps == 1 and by_arch["dcgan"].train.diffaugment == ""  # the preset's
