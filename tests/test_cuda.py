"""What only a CUDA GPU can check: mixed precision (bf16, and fp16 with loss scaling as on Kaggle's T4),
channels-last, torch.compile, nvJPEG decoding and encoding against the CPU codecs, checkpoint and
resume on the device, every architecture's training step, and the chain end to end on the GPU.

Every test is marked `cuda` and skipped without a GPU: `pytest -m cuda` runs them (with the other
files' CUDA tests); bench/gpu_check.sh does so on a GPU machine. Sizes are tiny: the file takes well
under two minutes on an H200, most of it torch.compile's first compilation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import decode_jpeg, encode_jpeg

from pipeline import archs
from pipeline.archs import base
from pipeline.config import load_config
from pipeline.devices import Process
from pipeline.generate import encode_on_gpu, write_images
from pipeline.images import read_jpegs

from .conftest import REPO

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")
NOISE_TINY = ["data.resolution=32", "model.g_channels=8", "model.d_channels=8", "model.latent_dim=8",
              "train.batch_size=4", "train.critic_warmup=false", "train.diffaugment=color,translation,cutout"]


def tiny_config(arch: str, *extra: str):
    """The architecture's preset at 32 px and tiny widths."""
    if archs.get(arch).consumes == "noise":
        overrides = NOISE_TINY
    else:
        overrides = ["data.resolution=32", "model.g_channels=4", "model.d_channels=4", f"{arch}.blocks=1",
                     f"{arch}.crop=32"]
    return load_config(REPO / "configs" / f"{arch}.toml", [*overrides, *extra])


def tiny_trainer(arch: str, *extra: str):
    """A trainer on the GPU over the same random uint8 images every time (and photos, for a
    translation architecture); its weights and random streams come from train.seed."""
    images = torch.Generator().manual_seed(0)
    data = {"paintings": torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=images).to(CUDA)}
    if archs.get(arch).consumes == "photos":
        data["photos"] = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=images).to(CUDA)
    return archs.get(arch).trainer(tiny_config(arch, *extra), data, CUDA, Process())


def smooth_images(count: int, size: int = 256) -> torch.Tensor:
    """uint8 count x 3 x size x size images of smooth colour fields: what JPEG is made for."""
    torch.manual_seed(1)
    low = torch.rand(count, 3, 8, 8)
    return F.interpolate(low, size=size, mode="bicubic", align_corners=False).clamp(0, 1).mul(255).round().to(torch.uint8)


def float_tensors(state, prefix: str = ""):
    """(name, tensor) of every tensor in a nested state dict."""
    if isinstance(state, dict):
        for key, value in state.items():
            yield from float_tensors(value, f"{prefix}.{key}")
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from float_tensors(value, f"{prefix}[{i}]")
    elif isinstance(state, torch.Tensor):
        yield prefix, state


# ---------------------------------------------------------------------------------------------
# mixed precision and every architecture's step


@pytest.mark.parametrize("precision", ["default", "float16"])
@pytest.mark.parametrize("arch", archs.names())
def test_every_architecture_trains_on_the_gpu(arch, precision, monkeypatch):
    """bf16 autocast where the GPU has it (H100/H200: yes), and fp16 with GradScaler as on a T4."""
    if precision == "float16":
        monkeypatch.setattr(base, "autocast_dtype", lambda device: torch.float16)
    trainer = tiny_trainer(arch)
    expected = torch.float16 if precision == "float16" else \
        torch.bfloat16 if torch.cuda.get_device_capability(CUDA) >= (8, 0) else torch.float16
    assert trainer.amp_dtype == expected
    assert all(scaler.is_enabled() == (expected == torch.float16) for scaler in trainer.scalers.values())
    before = [p.detach().clone() for p in trainer.g.parameters()]

    def moved() -> bool:
        return any(not torch.equal(a, b) for a, b in zip(before, trainer.g.parameters()))

    # In fp16 the first steps may overflow at GradScaler's initial scale of 2 ** 16 and be skipped,
    # each halving it: on CPU emulation of these tiny networks the generator's first update came at
    # step 9 at the latest (FastCUT, at a scale of 128).
    for step in range(20):
        stats = trainer.train_step(step)
        row = trainer.log_row(stats)
        assert all(torch.isfinite(torch.tensor(value)) for value in row.values()), row
        if step >= 2 and moved():
            break
    assert moved(), "the generator did not move in 20 steps"
    assert all(p.device.type == CUDA.type for net in trainer.networks.values() for p in net.parameters())
    for name, scaler in trainer.scalers.items():
        if scaler.is_enabled():
            # Gradients that overflow at every step would have halved it at every one, down to 2 ** -4.
            assert scaler._scale is not None and 1.0 <= scaler.get_scale() <= 2.0 ** 16, name
    samples = trainer.samples()
    assert samples.device.type == CUDA.type and torch.isfinite(samples.float()).all()


def test_fp16_loss_scaler_skips_an_overflowing_step_and_backs_off(monkeypatch):
    monkeypatch.setattr(base, "autocast_dtype", lambda device: torch.float16)
    trainer = tiny_trainer("dcgan")
    trainer.train_step(0)
    scaler = trainer.scalers["g"]
    scale = scaler.get_scale()
    before = [p.detach().clone() for p in trainer.g.parameters()]
    with trainer.autocast():
        images = trainer.g_run(trainer.noise())
    trainer.update("g", images.float().mean() * float("inf"))  # every gradient inf or nan
    assert scaler.get_scale() == scale / 2
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.g.parameters())), "an inf step was applied"
    stats = trainer.train_step(1)  # and training goes on
    assert torch.isfinite(stats["loss_g"]) and torch.isfinite(stats["loss_d"])


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_layout_on_the_gpu(channels_last):
    trainer = tiny_trainer("dcgan", f"train.channels_last={str(channels_last).lower()}")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert trainer.memory_format == layout

    def layouts_hold() -> bool:  # weights whose two layouts differ: several input channels, k x k kernels
        weights = [p for net in trainer.networks.values() for p in net.parameters()
                   if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1]
        return bool(weights) and all(w.is_contiguous(memory_format=layout) for w in weights)

    assert layouts_hold()
    assert trainer.real_batch().shape == (4, 3, 32, 32)
    trainer.train_step(0)
    assert layouts_hold(), "an optimiser step changed the weights' layout"


def test_compiled_generator_matches_eager():
    """train.compile = true: the compiled generator computes what the eager one does, in fp32, on outputs in
    [-1, 1]: within 1e-2 everywhere and 1e-3 on average (inductor fuses and reorders float arithmetic,
    and convolutions may run in TF32 on either side, so not bit for bit; a wrong graph is off by 0.1 or more)."""
    trainer = tiny_trainer("cut", "train.compile=true")
    assert trainer.g_run is not trainer.g
    photos = trainer.real_batch("photos")
    with torch.no_grad():
        eager = trainer.g(photos)
        compiled = trainer.g_run(photos)
    assert compiled.shape == eager.shape == photos.shape
    difference = (compiled.float() - eager.float()).abs()
    assert difference.max() <= 1e-2 and difference.mean() <= 1e-3, (difference.max(), difference.mean())


# ---------------------------------------------------------------------------------------------
# checkpoint and resume


@pytest.mark.parametrize("arch, extra", [("dcgan", ()), ("cut", ()),
                                         ("cyclegan", ("cyclegan.pool_size=2",))])  # full pools after a step
def test_checkpoint_restores_exactly_and_training_continues_on_the_gpu(arch, extra, tmp_path):
    """The whole state (networks, EMA, Adam, loss scalers, the CUDA, CPU and sampler random streams)
    goes through a file and back bit for bit, as checkpoint.py saves and loads it. The steps after that
    equal those of the uninterrupted run up to the GPU's non-deterministic kernels (atomic adds in some
    backward passes): losses within 1e-2 relative, and every floating-point tensor of the state within
    1e-5 on average, which a lost optimiser state or random stream cannot meet (each weight's Adam step
    would differ by about the learning rate, 2e-4)."""
    straight = tiny_trainer(arch, *extra)
    for step in range(3):
        straight.train_step(step)
    path = tmp_path / "checkpoint.pt"
    torch.save({"trainer": straight.state_dict()}, path)
    # The uninterrupted run goes on first: the CPU and CUDA random streams are the process's, not the
    # trainer's, and loading the checkpoint sets them back to where the save found them.
    expected_losses = [straight.train_step(step) for step in range(3, 6)]
    expected = {name: t.detach().cpu().clone() for name, t in float_tensors(straight.state_dict())
                if t.is_floating_point()}

    saved = torch.load(path, map_location="cpu", weights_only=True)["trainer"]
    resumed = tiny_trainer(arch, *extra, "train.seed=1")  # other initial weights and streams, all overwritten
    resumed.load_state_dict(saved)
    restored = dict(float_tensors(resumed.state_dict()))
    assert sorted(restored) == sorted(name for name, _ in float_tensors(saved))
    for name, tensor in float_tensors(saved):
        assert torch.equal(restored[name].cpu(), tensor), name
    assert "cuda_rng" in saved and all(p.device.type == CUDA.type for p in resumed.g.parameters())
    adam = resumed.optimizers["g"].state_dict()["state"]
    assert adam and all(s["exp_avg"].device.type == CUDA.type for s in adam.values())

    for step, want in zip(range(3, 6), expected_losses):
        got = resumed.train_step(step)
        for key in ("loss_d", "loss_g"):
            torch.testing.assert_close(got[key].float(), want[key].float(), rtol=1e-2, atol=1e-5)
    final = dict(float_tensors(resumed.state_dict()))
    for name, tensor in expected.items():
        difference = (tensor.double() - final[name].cpu().double()).abs().mean().item()
        assert difference <= 1e-5, f"{name}: mean difference {difference:.2e}"


# ---------------------------------------------------------------------------------------------
# JPEGs on the GPU


def write_jpegs(folder: Path, images: torch.Tensor) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, quality=95)
        paths.append(path)
    return paths


def test_nvjpeg_decoding_matches_the_cpu_decoder(tmp_path):
    """read_jpegs on CUDA (nvJPEG, in batches of 256: 300 files make two) against libjpeg on the CPU:
    decoders may differ by a level here and there; torchvision holds them to a mean of 2."""
    files = write_jpegs(tmp_path / "jpegs", smooth_images(300))
    cpu = read_jpegs(files, torch.device("cpu"))
    gpu = read_jpegs(files, CUDA)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.uint8 and gpu.shape == cpu.shape == (300, 3, 256, 256)
    per_image = (gpu.cpu().float() - cpu.float()).abs().mean(dim=(1, 2, 3))
    assert per_image.max() < 2, f"worst image differs by {per_image.max():.2f} on average"


def test_nvjpeg_encoding_matches_the_cpu_encoder():
    """generate encodes on the GPU: the JPEGs must decode (CPU decoder) to the image, as close as the
    CPU encoder's do (torchvision holds GPU-encoded images to a mean difference of 3)."""
    images = smooth_images(8)
    encoded = encode_on_gpu(images.to(CUDA), quality=95)
    assert encoded is not None, "this torchvision cannot encode JPEGs on the GPU: generate falls back to the CPU"
    for data, original in zip(encoded, images):
        from_gpu = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        from_cpu = decode_jpeg(encode_jpeg(original, quality=95))
        assert (from_gpu.float() - original.float()).abs().mean() < 3
        assert (from_gpu.float() - from_cpu.float()).abs().mean() < 2


def test_generate_writes_the_same_images_on_the_gpu_as_on_the_cpu(tmp_path):
    """write_images on CUDA (float upsampling, nvJPEG) and on the CPU (uint8 upsampling, libjpeg) from the
    same generator in fp32: every file decodes, and the images agree to a mean of 3 levels."""
    torch.manual_seed(0)
    generator = archs.get("dcgan").build_generator(32, {"latent_dim": 8, "channels": 8}).eval()
    notes: list[str] = []
    count = 20  # three batches of 8
    (tmp_path / "gpu").mkdir()
    (tmp_path / "cpu").mkdir()
    write_images(copy.deepcopy(generator).to(CUDA), tmp_path / "gpu", count, 0, 8, 95, CUDA, amp=False,
                 log=notes.append)
    write_images(generator, tmp_path / "cpu", count, 0, 8, 95, torch.device("cpu"), amp=False, log=notes.append)
    assert not any("cannot encode" in note for note in notes), notes
    for i in range(count):
        name = f"{i:05d}.jpg"
        gpu = decode_jpeg(torch.frombuffer(bytearray((tmp_path / "gpu" / name).read_bytes()), dtype=torch.uint8))
        cpu = decode_jpeg(torch.frombuffer(bytearray((tmp_path / "cpu" / name).read_bytes()), dtype=torch.uint8))
        assert gpu.shape == cpu.shape == (3, 256, 256)
        assert (gpu.float() - cpu.float()).abs().mean() < 3, name


# ---------------------------------------------------------------------------------------------
# the chain on the GPU, through the command line


def tiny_run(arch: str) -> list[str]:
    common = ["--config", str(REPO / "configs" / f"{arch}.toml"), "--source", "demo", "--set", "run.device=cuda",
              "--set", "data.demo_paintings=16", "--set", "data.resolution=32", "--set", "train.steps=4",
              "--set", "train.log_every=1", "--set", "train.sample_every=1000", "--set", "train.eval_every=2",
              "--set", "train.eval_images=16", "--set", "score.inception=false"]
    if archs.get(arch).consumes == "noise":
        return common + ["--set", "data.demo_photos=0", "--set", "model.g_channels=8", "--set", "model.d_channels=8",
                         "--set", "model.latent_dim=8", "--set", "train.batch_size=4", "--set", "generate.count=300",
                         "--set", "generate.batch_size=128"]
    return common + ["--set", "data.demo_photos=6", "--set", "model.g_channels=4", "--set", "model.d_channels=4",
                     "--set", f"{arch}.blocks=1", "--set", f"{arch}.crop=32", "--set", "generate.count=0"]


@pytest.mark.parametrize("arch", ["dcgan", "cut"])
def test_train_generate_and_score_on_the_gpu_through_the_cli(arch, painter, tmp_path):
    painter("run", *tiny_run(arch), "--until", "score")
    run = tmp_path / "work" / "runs" / arch
    summary = json.loads((run / "train" / "summary.json").read_text())
    assert summary["device"] == torch.cuda.get_device_name(0) and summary["steps"] == 4
    assert summary["precision"] == ("bfloat16" if torch.cuda.get_device_capability(0) >= (8, 0) else "float16")
    assert (run / "train" / "best.pt").is_file()  # evaluated on the GPU at steps 2 and 4
    generated = json.loads((run / "images" / "_stamp.json").read_text())["summary"]
    assert generated["device"].startswith("cuda") and generated["written_this_run"] == generated["count"]
    files = sorted((run / "images").glob("*.jpg"))
    assert len(files) == (300 if arch == "dcgan" else 6)
    with Image.open(files[-1]) as image:
        assert image.size == (256, 256) and image.mode == "RGB"
    score = json.loads((run / "score" / "score.json").read_text())
    assert score["device"].startswith("cuda") and score["n_scored"] == len(files)
    assert torch.isfinite(torch.tensor(score["swd"]["value"])) and score["swd"]["value"] > 0


@pytest.mark.parametrize("first, then", [("cpu", "cuda"), ("cuda", "cpu")])
def test_a_run_stopped_on_one_device_resumes_on_the_other(first, then, painter, tmp_path, monkeypatch):
    """CycleGAN: the most state (pools, a host stream). Weights and optimisers carry over; the streams,
    whose form differs between a CPU and a GPU, and the loss scales start afresh."""
    import signal

    real_step = base.Trainer.train_step

    def step_then_sigterm(self, step):
        stats = real_step(self, step)
        if step == 1:
            signal.raise_signal(signal.SIGTERM)
        return stats

    args = [*tiny_run("cyclegan"), "--set", "cyclegan.pool_size=2"]
    monkeypatch.setattr(base.Trainer, "train_step", step_then_sigterm)
    assert painter("train", *args, "--set", f"run.device={first}", ok=False).exit_code == 128 + signal.SIGTERM
    monkeypatch.setattr(base.Trainer, "train_step", real_step)
    resumed = painter("train", *args, "--set", f"run.device={then}")
    assert f"resuming from step 2 of 4 (written on {first} in " in resumed.output
    summary = json.loads((tmp_path / "work" / "runs" / "cyclegan" / "train" / "summary.json").read_text())
    assert summary["steps"] == 4 and (summary["device"] == "cpu") == (then == "cpu")


def test_info_names_the_gpu_and_this_torch_supports_it(painter):
    output = painter("info").output
    assert torch.cuda.get_device_name(0) in output
    assert "NOT usable" not in output


def test_a_bad_jpeg_is_named_when_decoding_on_the_gpu(tmp_path):
    """Last in the file on purpose: it hands nvJPEG a broken file."""
    files = write_jpegs(tmp_path / "jpegs", smooth_images(3))
    broken = tmp_path / "jpegs" / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all" * 20)
    with pytest.raises(ValueError, match="broken.jpg"):
        read_jpegs([*files, broken], CUDA)
