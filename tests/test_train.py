"""Training: every from-noise architecture, the critic schedule, the penalty, exact resume, the NaN guard, DDP."""

import copy
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from pipeline import archs, losses
from pipeline.archs.base import Trainer
from pipeline.archs.dcgan import DCGAN, DCGANDiscriminator
from pipeline.config import load_config
from pipeline.devices import Process

# Every from-noise architecture goes through the generic tests; the DCGAN family (DCGAN's networks with
# another loss or normalisation) through those of its networks, critic schedule, clipping and penalty too.
ARCHITECTURES = tuple(name for name in archs.names() if archs.get(name).consumes == "noise")
DCGAN_FAMILY = tuple(name for name in ARCHITECTURES if isinstance(archs.get(name), DCGAN))

from .conftest import REPO

TINY = ["--set", "data.demo_paintings=16", "--set", "data.demo_photos=0", "--set", "model.g_channels=8",
        "--set", "model.d_channels=8", "--set", "model.latent_dim=8", "--set", "train.batch_size=4",
        "--set", "train.log_every=1", "--set", "train.sample_every=1000"]


def config(arch: str, *overrides: str):
    return load_config(REPO / "configs" / f"{arch}.toml", ["data.resolution=32", "model.g_channels=8",
                                                             "model.d_channels=8", "model.latent_dim=8",
                                                             "train.batch_size=4", *overrides])


def test_config_and_registry_agree_on_the_architectures():
    from pipeline.config import ModelConfig
    import dataclasses
    choices = {f.name: f for f in dataclasses.fields(ModelConfig)}["arch"].metadata["choices"]
    assert choices() == archs.names()
    assert {"dcgan", "wgan", "wgan-gp", "sngan"} <= set(DCGAN_FAMILY) and "fastgan" in ARCHITECTURES


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_generators_build_at_every_resolution(arch, resolution):
    architecture = archs.get(arch)
    spec = architecture.generator_spec(config(arch, f"data.resolution={resolution}", "model.g_channels=4"))
    g = architecture.build_generator(resolution, spec).eval()
    images = g(architecture.inputs(2, 0, spec).batch(slice(None), torch.device("cpu")))
    assert images.shape == (2, 3, resolution, resolution) and images.abs().max() <= 1


@pytest.mark.parametrize("arch", DCGAN_FAMILY)
@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_dcgan_networks_at_every_resolution(arch, resolution):
    g = archs.get(arch).build_generator(resolution, {"latent_dim": 8, "channels": 4})
    d = DCGANDiscriminator(resolution, 4, archs.get(arch).norm)
    images = g(torch.randn(2, 8))
    assert d(images).shape == (2,)
    # Widths halve from the 4x4 layer to the base width (the tutorial's ngf*8..ngf at 64 px), capped at 8x.
    widths = [m.out_channels for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    expected = [min(4 * 2 ** i, 32) for i in reversed(range(resolution.bit_length() - 3))]
    assert widths == expected + [3]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("augment", ["", "color,translation,cutout"])
def test_each_architecture_trains_with_finite_losses(arch, augment):
    cfg = config(arch, "train.critic_warmup=false", f"train.diffaugment={augment}")
    data = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    trainer = archs.get(arch).trainer(cfg, {"paintings": data}, torch.device("cpu"), Process())
    before = [p.clone() for p in trainer.g.parameters()]
    for step in range(3):
        stats = trainer.train_step(step)
        row = trainer.log_row(stats)
        assert {"loss_d", "loss_g"} <= set(row) and all(torch.isfinite(torch.tensor(v)) for v in row.values())
    assert stats["images"] == archs.get(arch).images_per_step(cfg, 2)
    if arch in DCGAN_FAMILY:
        assert stats["images"] == cfg.train.n_critic * 4
        assert (stats["gp"] > 0) == (arch == "wgan-gp")
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.g.parameters()))
    assert trainer.samples().shape == (64, 3, 32, 32)
    if arch == "wgan":   # clipping keeps every critic weight within [-c, c]
        assert max(p.abs().max().item() for p in trainer.d.parameters()) <= cfg.train.clip + 1e-9


@pytest.mark.parametrize("arch", archs.names())
def test_every_architecture_learns_in_fp16_with_loss_scaling(arch, monkeypatch):
    """What a T4 runs (fp16 autocast, a GradScaler per optimiser), here on the CPU: overflowing steps
    are skipped and halve the scale, and the generator still learns within a few steps."""
    from pipeline.archs import base

    monkeypatch.setattr(base, "autocast_dtype", lambda device: torch.float16)
    if archs.get(arch).consumes == "noise":
        cfg = config(arch, "train.critic_warmup=false", "train.diffaugment=color,translation,cutout")
    else:
        cfg = load_config(REPO / "configs" / f"{arch}.toml", ["data.resolution=32", "model.g_channels=4",
                                                              "model.d_channels=4", f"{arch}.blocks=1",
                                                              f"{arch}.crop=32"])
    images = torch.Generator().manual_seed(0)
    data = {"paintings": torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=images),
            "photos": torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=images)}
    trainer = archs.get(arch).trainer(cfg, data, torch.device("cpu"), Process())
    assert all(scaler.is_enabled() for scaler in trainer.scalers.values())
    before = [p.detach().clone() for p in trainer.g.parameters()]
    moved_at = None
    for step in range(20):
        row = trainer.log_row(trainer.train_step(step))
        assert all(torch.isfinite(torch.tensor(value)) for value in row.values()), row
        if any(not torch.equal(a, b) for a, b in zip(before, trainer.g.parameters())):
            moved_at = step
            break
    # Measured: FastCUT's first update at step 9 (its NCE heads in fp16, step 19 at a scale of 1/16, before
    # they ran in fp32); 2 ** -4 would mean every step overflowed.
    assert moved_at is not None and moved_at <= 12, moved_at
    assert all(1.0 <= scaler.get_scale() <= 2.0 ** 16 for scaler in trainer.scalers.values())


def test_gradient_penalty_value_on_a_linear_critic():
    # D(x) = <w, x> has gradient w everywhere, so the penalty is (||w|| - 1)^2 exactly.
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1, bias=False))
    torch.nn.init.normal_(critic[1].weight)
    real, fake = torch.rand(5, 3, 8, 8), torch.rand(5, 3, 8, 8)
    expected = (critic[1].weight.norm() - 1) ** 2
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(expected.item(), rel=1e-5)
    critic[1].weight.data /= critic[1].weight.norm()
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_loss_definitions():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.5])
    assert archs.get("wgan").discriminator_loss(real, fake).item() == pytest.approx(-1.5)   # E[D(fake)] - E[D(real)]
    assert archs.get("sngan").discriminator_loss(real, fake).item() == pytest.approx(0.25 + 0.75)  # hinge
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert archs.get("dcgan").discriminator_loss(real, fake).item() == pytest.approx(
        (bce(real, torch.ones(2)) + bce(fake, torch.zeros(2))).item())
    assert archs.get("dcgan").generator_loss(fake).item() == pytest.approx(bce(fake, torch.ones(2)).item())
    assert archs.get("wgan-gp").generator_loss(fake).item() == pytest.approx(0.25)


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                   ((9, 0), torch.bfloat16)])
def test_mixed_precision_is_fp16_on_a_t4_and_bf16_from_ampere_on(capability, expected, monkeypatch):
    """A T4 (sm_75) can hold bf16 tensors, so torch.cuda.is_bf16_supported() says yes there; cuDNN has no
    bf16 convolutions for it. fp16 with loss scaling is what it runs well."""
    from pipeline import devices

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert devices.autocast_dtype(torch.device("cuda", 0)) == expected


def test_critic_schedule_counts_generator_steps():
    trainer = archs.get("wgan").trainer(config("wgan"), {"paintings": torch.zeros(3, 3, 32, 32, dtype=torch.uint8)},
                                        torch.device("cpu"), Process())
    schedule = [trainer.critic_steps(step) for step in (0, 24, 25, 26, 499, 500, 501, 1000)]
    assert schedule == [100, 100, 5, 5, 5, 100, 5, 100]
    trainer.tc.critic_warmup = False
    assert trainer.critic_steps(0) == 5


def run_cli(painter, arch: str, *extra: str, ok: bool = True):
    return painter("train", "--config", str(REPO / "configs" / f"{arch}.toml"), "--set", "data.source=demo",
                   "--set", "data.resolution=32", *TINY, *extra, ok=ok)


def final_state(tmp_path, name: str) -> dict:
    return torch.load(tmp_path / "work" / "runs" / name / "train" / "checkpoint.pt", weights_only=True)["trainer"]


def assert_same_state(a: dict, b: dict, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.fixture
def prepared(painter):
    args = ["--config", str(REPO / "configs" / "wgan-gp.toml"), "--set", "data.source=demo",
            "--set", "data.resolution=32", *TINY]
    painter("download", *args)
    painter("prepare", *args)


RESUME_ARGS = ["--set", "train.steps=12", "--set", "train.checkpoint_every=4",
               "--set", "train.diffaugment=color,translation,cutout"]


def test_interrupted_and_resumed_equals_uninterrupted(painter, prepared, tmp_path, monkeypatch):
    run_cli(painter, "wgan-gp", *RESUME_ARGS, "--set", "run.name=straight")

    real_step = Trainer.train_step

    def step_then_sigterm(self, step):
        stats = real_step(self, step)
        if step == 5:
            signal.raise_signal(signal.SIGTERM)   # a real signal, caught by the training loop
        return stats

    monkeypatch.setattr(Trainer, "train_step", step_then_sigterm)
    stopped = run_cli(painter, "wgan-gp", *RESUME_ARGS, "--set", "run.name=interrupted", ok=False)
    assert stopped.exit_code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM at step 6 of 12; checkpoint saved" in stopped.output
    assert torch.load(tmp_path / "work/runs/interrupted/train/checkpoint.pt", weights_only=True)["step"] == 6
    monkeypatch.setattr(Trainer, "train_step", real_step)

    resumed = run_cli(painter, "wgan-gp", *RESUME_ARGS, "--set", "run.name=interrupted")
    assert "train: resuming from step 6 of 12" in resumed.output
    assert_same_state(final_state(tmp_path, "straight"), final_state(tmp_path, "interrupted"))
    steps = pd.read_csv(tmp_path / "work/runs/interrupted/train/metrics.csv")["step"].tolist()
    assert steps == list(range(1, 13))


def test_a_raised_time_limit_continues_a_run_and_a_lowered_one_it_passed_starts_it_over(painter, prepared,
                                                                                       tmp_path):
    """train.max_minutes only says when to stop: under another limit the steps are the same, so the run's
    checkpoint is resumed while it has trained less than the new limit, and not once it has trained more."""
    folder = tmp_path / "work/runs/timed/train"

    def timed(minutes: float, steps: int = 100_000):
        result = run_cli(painter, "wgan-gp", "--set", f"train.steps={steps}", "--set", f"train.max_minutes={minutes}",
                         "--set", "run.name=timed")
        return result.output, pd.read_json(folder / "summary.json", typ="series")

    output, first = timed(0.002)  # 0.12 s
    assert first["stopped"] == "max_minutes" and "resuming" not in output
    output, raised = timed(0.05)  # 3 s
    assert f"train: resuming from step {first['steps']} of 100000 (" in output
    assert "s trained under another train.max_minutes)" in output
    assert raised["stopped"] == "max_minutes" and raised["steps"] > first["steps"]
    assert pd.read_csv(folder / "metrics.csv")["step"].tolist() == list(range(1, raised["steps"] + 1))
    output, lowered = timed(0.002)  # below the 3 s trained: the run would have stopped before
    assert "resuming" not in output and lowered["stopped"] == "max_minutes"
    assert pd.read_csv(folder / "metrics.csv")["step"].tolist() == list(range(1, lowered["steps"] + 1))

    timed(0, steps=12)
    before = final_state(tmp_path, "timed")
    output, guarded = timed(60, steps=12)  # a guard that does not bind: nothing to train again
    assert "train: resuming from step 12 of 12" in output
    assert guarded["steps"] == 12 and guarded["stopped"] is None
    assert_same_state(before, final_state(tmp_path, "timed"))


def test_a_checkpoint_of_another_precision_resumes_with_fresh_streams(painter, prepared, tmp_path, monkeypatch):
    """Moving a run between machines (a CPU and a GPU, bf16 and fp16): weights and optimisers carry
    over; random streams, whose form differs between devices, and loss scales start afresh."""
    from pipeline.archs import base

    real_step = Trainer.train_step

    def step_then_sigterm(self, step):
        stats = real_step(self, step)
        if step == 5:
            signal.raise_signal(signal.SIGTERM)
        return stats

    monkeypatch.setattr(Trainer, "train_step", step_then_sigterm)
    assert run_cli(painter, "wgan-gp", *RESUME_ARGS, ok=False).exit_code == 128 + signal.SIGTERM
    saved = torch.load(tmp_path / "work/runs/wgan-gp/train/checkpoint.pt", weights_only=True)
    assert (saved["device"], saved["precision"]) == ("cpu", "float32")
    monkeypatch.setattr(Trainer, "train_step", real_step)

    loaded = {}
    real_load = Trainer.load_state_dict

    def load_and_keep(self, state, streams=True, scalers=True):
        real_load(self, state, streams, scalers)
        loaded.update(g=copy.deepcopy(self.g.state_dict()), sampler=self.sampler.get_state())

    monkeypatch.setattr(Trainer, "load_state_dict", load_and_keep)
    monkeypatch.setattr(base, "autocast_dtype", lambda device: torch.bfloat16)  # emulated on this CPU
    resumed = run_cli(painter, "wgan-gp", *RESUME_ARGS)
    assert "resuming from step 6 of 12 (written on cpu in float32, now on cpu in bfloat16" in resumed.output
    assert_same_state(loaded["g"], saved["trainer"]["g"])
    assert not torch.equal(loaded["sampler"], saved["trainer"]["sampler"])  # this run's own, fresh
    summary = pd.read_json(tmp_path / "work/runs/wgan-gp/train/summary.json", typ="series")
    assert summary["precision"] == "bfloat16" and summary["steps"] == 12


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(painter, prepared, tmp_path, monkeypatch):
    calls = {"n": 0}
    wgan_gp = type(archs.get("wgan-gp"))
    real_loss = wgan_gp.generator_loss

    def loss_that_explodes(self, fake):
        calls["n"] += 1
        loss = real_loss(self, fake)
        return loss * float("nan") if calls["n"] > 9 else loss

    monkeypatch.setattr(wgan_gp, "generator_loss", loss_that_explodes)
    result = run_cli(painter, "wgan-gp", "--set", "train.steps=20", "--set", "train.checkpoint_every=4",
                     "--set", "train.log_every=5", ok=False)
    assert result.exit_code == 1
    assert "training diverged: a loss became NaN or inf by step 10; the checkpoint of step 8 is kept" in result.output
    checkpoint = torch.load(tmp_path / "work/runs/wgan-gp/train/checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 8
    assert all(torch.isfinite(t).all() for t in checkpoint["trainer"]["g"].values())
    assert not (tmp_path / "work/runs/wgan-gp/train/_stamp.json").exists()


def test_a_long_schedule_on_a_cpu_gets_an_estimate_and_what_to_do_instead(painter, prepared, monkeypatch):
    from pipeline import train_log

    monkeypatch.setattr(train_log, "SLOW_CPU_MEASURE_S", 0.0)  # estimate after the first step
    short = run_cli(painter, "wgan-gp", "--set", "train.steps=12", "--set", "run.name=short")
    assert "on this CPU" not in short.output  # 11 steps of a tiny model: seconds, not hours

    monkeypatch.setattr(train_log, "SLOW_CPU_HOURS", 0.0)
    slow = run_cli(painter, "wgan-gp", "--set", "train.steps=12", "--set", "run.name=slow")
    assert slow.output.count("train: the 11 steps left take about 0 h on this CPU") == 1
    assert "CPU-sized overrides" in slow.output
    budgeted = run_cli(painter, "wgan-gp", "--set", "train.steps=12", "--set", "train.max_minutes=60",
                       "--set", "run.name=budgeted")
    assert "on this CPU" not in budgeted.output  # a wall-clock budget already bounds it


def test_painter_run_on_a_cpu_says_up_front_what_a_long_schedule_takes(painter, monkeypatch):
    """Before the download: a training step timed on random images of the config's size, the schedule's hours
    and the CPU preset to run instead; the estimate after training's first minute is then not repeated."""
    from pipeline import chain, layout, train_log
    from pipeline.config import load_config

    monkeypatch.setattr(train_log, "SLOW_CPU_MEASURE_S", 0.0)
    monkeypatch.setattr(chain, "UP_FRONT_MIN_STEPS", 10)  # tiny schedules are not timed up front
    args = ["run", "--config", str(REPO / "configs" / "wgan-gp.toml"), "--set", "data.source=demo",
            "--set", "data.resolution=32", *TINY, "--set", "train.steps=12", "--until", "train"]
    quick = painter(*args, "--set", "run.name=quick")
    assert "on this CPU" not in quick.output  # 12 steps of a tiny model: seconds, not hours

    monkeypatch.setattr(train_log, "SLOW_CPU_HOURS", 0.0)
    slow = painter(*args, "--set", "run.name=slow")
    said = slow.output.index("run: no GPU here: the slow run's 12 training steps take about 0 h on this CPU")
    assert said < slow.output.index("download:")
    assert f"make all CONFIG=configs/{layout.CPU_PRESET}" in slow.output
    assert "steps left take" not in slow.output  # said once, up front
    assert "on this CPU" not in painter(*args, "--set", "run.name=slow").output  # trained: nothing to estimate
    budgeted = painter(*args, "--set", "run.name=budgeted", "--set", "train.max_minutes=60")
    assert "on this CPU" not in budgeted.output

    cpu_preset = load_config(layout.PRESETS / layout.CPU_PRESET)  # the preset the advice names loads
    assert cpu_preset.model.arch == "cut" and cpu_preset.generate.count == 0  # every photo: a valid submission


def test_two_processes_under_torchrun_train_one_model_and_resume_exactly(painter, prepared, tmp_path):
    """Each rank draws its own batches; a run stopped by SIGTERM (torchrun passes it on) and resumed
    ends with the weights of an uninterrupted one, which needs every rank's own random streams back."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")

    def torchrun(name: str) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "pipeline", "train", "--config", str(REPO / "configs" / "sngan.toml"),
                "--set", "data.source=demo", "--set", "data.resolution=32", *TINY, "--set", "train.steps=30",
                "--set", "train.checkpoint_every=1000", "--set", f"run.name={name}"]

    result = subprocess.run(torchrun("straight"), cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "work" / "runs" / "straight" / "train"
    summary = pd.read_json(out / "summary.json", typ="series")
    assert summary["world_size"] == 2 and summary["ranks_in_sync"]
    assert pd.read_csv(out / "metrics.csv")["step"].tolist() == list(range(1, 31))   # rank 0 alone writes
    assert result.stdout.count("train: running") == 1

    stopped = subprocess.Popen(torchrun("stopped"), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "work" / "runs" / "stopped" / "train" / "metrics.csv"
    while stopped.poll() is None and (not metrics.exists() or len(metrics.read_text().splitlines()) < 4):
        time.sleep(0.05)
    stopped.send_signal(signal.SIGTERM)
    output = stopped.communicate(timeout=120)[0]
    step = torch.load(metrics.parent / "checkpoint.pt", weights_only=True)["step"]
    assert stopped.returncode != 0 and f"stopped by SIGTERM at step {step} of 30" in output and 3 <= step < 30
    resumed = subprocess.run(torchrun("stopped"), cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0 and f"resuming from step {step} of 30" in resumed.stdout, resumed.stderr[-3000:]
    assert_same_state(final_state(tmp_path, "straight"), final_state(tmp_path, "stopped"))
