"""FastGAN: the networks at every resolution, skip-layer excitation, the self-supervised discriminator and its
reconstruction loss, the loss terms, training, exact resume, generation that ignores batching, the whole chain."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import torch
from PIL import Image

from pipeline import archs, generate
from pipeline.archs import fastgan
from pipeline.archs.dcgan import recalibrate_batchnorm
from pipeline.archs.fastgan import (FastGANDiscriminator, FastGANGenerator, NoiseInjection, SkipExcitation, quadrant,
                                    reconstruction_loss, reconstruction_targets)
from pipeline.config import load_config
from pipeline.devices import Process
from pipeline.errors import PainterError

from .conftest import REPO
from .test_train import assert_same_state

RESOLUTIONS = [32, 64, 128, 256]


def trainer(*overrides: str, resolution: int = 32):
    cfg = load_config(REPO / "configs" / "fastgan.toml", [f"data.resolution={resolution}", "model.g_channels=4",
                                                          "model.d_channels=4", "model.latent_dim=8",
                                                          "train.batch_size=4", *overrides])
    data = {"paintings": torch.randint(0, 256, (6, 3, resolution, resolution), dtype=torch.uint8,
                                       generator=torch.Generator().manual_seed(1))}
    return archs.get("fastgan").trainer(cfg, data, torch.device("cpu"), Process())


def test_the_preset_has_the_papers_settings():
    cfg = load_config(REPO / "configs" / "fastgan.toml")
    assert (cfg.data.resolution, cfg.model.latent_dim, cfg.model.g_channels, cfg.model.d_channels) == (256, 256, 64, 64)
    tc = cfg.train
    assert (tc.batch_size, tc.lr_g, tc.lr_d, tc.beta1, tc.beta2, tc.ema_decay) == (8, 2e-4, 2e-4, 0.5, 0.999, 0.999)
    assert tc.diffaugment == "color,translation" and tc.n_critic == 1 and cfg.options.lambda_rec == 1.0
    for setting in ("train.n_critic=2", "train.gp_weight=10", "train.clip=0.01", "generate.count=0"):
        with pytest.raises(PainterError, match=setting.split("=")[0].replace(".", r"\.")):
            load_config(REPO / "configs" / "fastgan.toml", [setting])


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_networks_at_every_resolution(resolution):
    torch.manual_seed(0)
    g, d = FastGANGenerator(resolution, 8, 8), FastGANDiscriminator(resolution, 8)
    image, half = g(torch.randn(3, 8), both=True)
    assert image.shape == (3, 3, resolution, resolution) and half.shape == (3, 3, resolution // 2, resolution // 2)
    assert image.abs().max() <= 1 and half.abs().max() <= 1
    assert torch.equal(g.eval()(torch.ones(3, 8)), g(torch.ones(3, 8), both=True)[0])   # `both` only adds the half
    which = torch.tensor([0, 3, 1])
    logits, reconstructions = d(image, half, which)
    assert logits.shape == (3, 50)   # a 5x5 map from each branch
    assert [r.shape for r in reconstructions] == [(3, 3, resolution // 2, resolution // 2)] * 3
    assert [t.shape for t in reconstruction_targets(image, which)] == [r.shape for r in reconstructions]
    d.eval()   # (training mode would advance spectral norm's power iteration between the calls)
    assert torch.equal(d(image, half), d(image, half, which)[0])   # fake images: the same logits, no decoders
    # SLE into the 64, 128, 256 px maps from the 4, 8, 16 px ones, where the generator reaches them; in D
    # from each map of 64 px or more into the one 8 times smaller.
    assert list(g.excite) == [str(s) for s in (64, 128, 256) if s <= resolution]
    assert list(d.excite) == [str(s) for s in (32, 16, 8) if s * 8 <= resolution]


def test_generator_widths_and_comp_blocks_follow_the_paper():
    g = FastGANGenerator(256, 8, 16)
    first_convs = [block[1].out_channels // 2 for block in g.blocks]   # each conv feeds a GLU: twice the width
    assert [g.init[0].out_channels // 2, *first_convs] == [16 * 16, 8 * 16, 4 * 16, 2 * 16, 2 * 16, 1 * 16, 8]
    noise_sizes = [m.fixed.shape[-1] for m in g.modules() if isinstance(m, NoiseInjection)]
    assert noise_sizes == [8, 8, 32, 32, 128, 128]    # the comp blocks: two injections each
    d = FastGANDiscriminator(256, 64)
    assert [block.main[0][0].out_channels for block in d.down] == [32, 64, 128, 256, 512]   # 128 .. 8 px
    assert d.logits[0].out_channels == 1024 and d.small_logits.in_channels == 256


def test_skip_layer_excitation_gates_each_channel_by_the_low_resolution_map():
    torch.manual_seed(0)
    sle = SkipExcitation(6, 5).eval()
    high = torch.rand(2, 5, 16, 16) + 0.5
    # A zero low-res map: every gate is sigmoid(0) (no biases anywhere), so the output is exactly half the input.
    assert torch.allclose(sle(torch.zeros(2, 6, 8, 8), high), high / 2)
    low = torch.randn(2, 6, 8, 8)
    gate = sle(low, high) / high
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-6)   # one gate per channel...
    assert (gate > 0).all() and (gate < 1).all() and not torch.allclose(gate, torch.full_like(gate, 0.5))
    changed = low.clone()
    changed[1] = -changed[1]
    out = sle(changed, high)
    assert torch.equal(out[0], sle(low, high)[0]) and not torch.allclose(out[1], sle(low, high)[1])  # ...per image
    # In the generator the 64 px map is gated from the 4x4 features: other gate weights, another image.
    g = FastGANGenerator(64, 8, 8)
    recalibrate_batchnorm(g, 8, batches=1, batch_size=16)   # eval mode, images of a normal contrast
    z = torch.randn(2, 8)
    before = g(z)
    with torch.no_grad():
        weight = g.excite["64"].gate[3].parametrizations.weight.original
        weight.copy_(torch.randn_like(weight))
    assert (g(z) - before).abs().max() > 0.05 * before.abs().max()
    # In the discriminator the 8x8 map is gated from the 64 px one: other gate weights, other logits
    # from the main branch (the first 25).
    d = FastGANDiscriminator(64, 8).eval()
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    before = d(images)[:, :25]
    with torch.no_grad():
        weight = d.excite["8"].gate[3].parametrizations.weight.original
        weight.copy_(torch.randn_like(weight))
    assert (d(images)[:, :25] - before).abs().max() > 0.05 * before.abs().max()


def test_quadrants_and_reconstruction_targets():
    image = torch.arange(4.0).view(1, 1, 2, 2).repeat_interleave(4, 2).repeat_interleave(4, 3).repeat(4, 3, 1, 1)
    picked = quadrant(image, torch.tensor([2, 0, 3, 1]))   # image: 4x4 tiles valued 0 1 / 2 3
    assert picked.shape == (4, 3, 4, 4) and picked[:, 0, 0, 0].tolist() == [2.0, 0.0, 3.0, 1.0]
    assert (picked == picked[:, :, :1, :1]).all()
    whole, small, part = reconstruction_targets(image, torch.tensor([2, 0, 3, 1]))
    assert torch.equal(whole, small) and torch.equal(part, picked)
    assert whole[0, 0].tolist() == [[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2   # 2x2 averages
    # L1: each image's mean absolute error, summed over images and decoders.
    zero = torch.zeros(4, 3, 4, 4)
    assert reconstruction_loss([zero, zero, zero], [zero + 0.5, zero, zero - 0.25]).item() == pytest.approx(4 * 0.75)


def test_decoders_learn_to_reconstruct_a_fixed_batch():
    torch.manual_seed(0)
    d = FastGANDiscriminator(32, 8)
    d.apply(fastgan.dcgan_init)
    # smooth images (upsampled 4x4 noise): what 8x8 features can carry
    real = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4) * 2 - 1, size=32, mode="bilinear")
    which = torch.tensor([0, 1, 2, 3])
    targets = reconstruction_targets(real, which)
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    history = []
    for _ in range(15):
        _, reconstructions = d(real, targets[0], which)
        loss = reconstruction_loss(reconstructions, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0]   # at first the decoders output ~0: the images' mean |pixel|


def test_losses_are_hinges_with_a_random_margin():
    high, low = torch.full((4, 50), 1.0), torch.full((4, 50), -1.0)
    assert fastgan.hinge_real(high).item() == 0 and fastgan.hinge_fake(low).item() == 0    # past every margin
    assert 1.8 <= fastgan.hinge_real(low).item() < 2.0 and 1.8 <= fastgan.hinge_fake(high).item() < 2.0
    margins = fastgan.hinge_real(torch.zeros(10_000))
    assert margins.item() == pytest.approx(0.9, abs=0.01)   # U[0.8, 1) on average


def test_noise_injection_is_fresh_in_training_and_fixed_in_eval():
    g = FastGANGenerator(32, 8, 8)
    for m in g.modules():
        if isinstance(m, NoiseInjection):
            m.weight.data.fill_(1.0)
    z = torch.randn(4, 8)
    assert not torch.equal(g(z), g(z))
    g.eval()
    assert torch.equal(g(z), g(z)) and torch.allclose(g(z)[1:2], g(z[1:2]), atol=1e-6)
    assert sum(key.endswith(".fixed") for key in g.state_dict()) == 4   # the fixed maps go into generator.pt
    fresh = FastGANGenerator(32, 8, 8)
    fresh.load_state_dict(g.state_dict())
    assert torch.equal(fresh.eval()(z), g(z))


def test_training_steps_are_finite_and_change_the_generator():
    t = trainer("train.diffaugment=color,translation")
    before = [p.clone() for p in t.g.parameters()]
    d_before = [p.clone() for p in t.d.parameters()]
    for step in range(3):
        stats = t.train_step(step)
    row = t.log_row(stats)
    assert set(row) == set(t.columns) and all(torch.isfinite(torch.tensor(v)) for v in row.values())
    assert row["rec"] > 0 and stats["images"] == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, t.g.parameters()))
    decoders = {id(p) for name in ("decode_whole", "decode_small", "decode_part")
                for p in getattr(t.d, name).parameters()}
    assert all(not torch.equal(a, b) for a, b in zip(d_before, t.d.parameters()) if id(b) in decoders)
    assert any(not torch.equal(a, b) for a, b in zip(t.ema.parameters(), t.g.parameters()))
    assert t.samples().shape == (64, 3, 32, 32)


def test_bf16_autocast_steps_stay_finite():
    t = trainer("train.diffaugment=color,translation")
    t.amp_dtype = torch.bfloat16   # what a bf16 GPU or CPU gets; emulated on this CPU
    for step in range(2):
        stats = t.train_step(step)
    assert all(torch.isfinite(stats[k]) for k in ("loss_d", "loss_g", "rec"))


def _saved(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)   # as the checkpoint is: a copy, loadable with weights_only
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_resumed_training_equals_uninterrupted_training():
    args = ("train.diffaugment=color,translation,cutout",)
    straight = trainer(*args)
    for step in range(4):
        straight.train_step(step)
    expected = _saved(straight.state_dict())

    first = trainer(*args)
    for step in range(2):
        first.train_step(step)
    checkpoint = _saved(first.state_dict())
    resumed = trainer(*args)
    resumed.load_state_dict(checkpoint)
    for step in range(2, 4):
        resumed.train_step(step)
    assert_same_state(expected, _saved(resumed.state_dict()))   # networks, EMA, optimisers, every random stream


def test_generated_images_do_not_depend_on_batching(tmp_path):
    t = trainer()
    for step in range(2):
        t.train_step(step)
    g = t.sampling_generator
    rng, vectors = torch.get_rng_state(), [b.clone() for name, b in g.named_buffers() if name.endswith("._u")]
    archs.get("fastgan").finalize(g, archs.get("fastgan").generator_spec(t.cfg), seed=0)
    # Batch-norm statistics re-estimated with noise and spectral norm as at generation: the training
    # stream untouched (evaluations mid-run must not change it), the power iteration not advanced.
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in zip(vectors, (b for n, b in g.named_buffers() if n.endswith("._u"))))
    files = {}
    for name, batch_size in (("a", 3), ("b", 10)):
        (tmp_path / name).mkdir()
        generate.write_images(g, tmp_path / name, 10, seed=5, batch_size=batch_size, jpeg_quality=90,
                              device=torch.device("cpu"), log=lambda _: None)
        files[name] = {p.name: p.read_bytes() for p in (tmp_path / name).glob("*.jpg")}
    assert len(files["a"]) == 10 and files["a"] == files["b"] and len(set(files["a"].values())) == 10


def test_fastgan_through_the_chain(painter, tmp_path):
    args = ["--config", str(REPO / "configs" / "fastgan.toml"), "--set", "data.source=demo",
            "--set", "data.demo_paintings=12", "--set", "data.demo_photos=0", "--set", "data.resolution=32",
            "--set", "model.g_channels=4", "--set", "model.d_channels=4", "--set", "model.latent_dim=8",
            "--set", "train.batch_size=4", "--set", "train.steps=4", "--set", "train.log_every=1",
            "--set", "train.sample_every=1000", "--set", "train.checkpoint_every=2", "--set", "train.eval_every=2",
            "--set", "train.eval_images=16", "--set", "generate.count=12", "--set", "generate.batch_size=5"]
    painter("run", *args, "--until", "generate")
    run = tmp_path / "work" / "runs" / "fastgan"
    metrics = pd.read_csv(run / "train" / "metrics.csv")
    assert metrics["step"].tolist() == [1, 2, 3, 4] and metrics[["loss_d", "loss_g", "rec"]].notna().all().all()
    assert metrics.dropna(subset=["swd"])["step"].tolist() == [2, 4]
    saved = torch.load(run / "train" / "generator.pt", weights_only=True)
    assert saved["arch"] == "fastgan" and saved["spec"] == {"latent_dim": 8, "channels": 4}
    assert json.loads((run / "train" / "best.json").read_text())["step"] in (2, 4)
    images = sorted((run / "images").glob("*.jpg"))
    assert [p.name for p in images] == [f"{i:05d}.jpg" for i in range(12)]
    with Image.open(images[0]) as img:
        assert (img.format, img.size, img.mode) == ("JPEG", (256, 256), "RGB")
