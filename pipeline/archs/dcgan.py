"""DCGAN (Radford et al. 2015), and what the whole from-noise family shares with it.

The generator follows the PyTorch DCGAN tutorial: transposed convolutions 4x4 -> ... -> R with
batch norm and ReLU; the discriminator strided convolutions with LeakyReLU. Both are built for
any power-of-two resolution from 32 to 256 px; widths double towards the 4x4 end and are capped
at 8x the base width, which reproduces the tutorial's 64 px widths exactly.

WGAN, WGAN-GP and SNGAN (their own modules) subclass `DCGAN`: the same generator and training
step, another discriminator normalisation and loss. The step follows [train]: `n_critic`
discriminator steps per generator step (each on a fresh batch; WGAN's warm-up schedule with
`critic_warmup`), weight clipping (`clip`), a gradient penalty (`gp_weight`), DiffAugment on real
and fake images for both networks.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .. import losses
from ..errors import PainterError
from . import register
from .base import GRID_SIZE, Architecture, Trainer, frozen

WARMUP_CRITIC_STEPS = 100  # WGAN (Arjovsky et al. 2017): for the first 25 and every 500th generator step


def _widths(base: int, resolution: int) -> list[int]:
    """Channel widths of the feature maps from resolution/2 down to 4x4 (one per stride-2 layer)."""
    n = int(math.log2(resolution)) - 2
    return [min(base * 2 ** i, base * 8) for i in range(n)]


class DCGANGenerator(nn.Module):
    def __init__(self, resolution: int, latent_dim: int, channels: int):
        super().__init__()
        widths = _widths(channels, resolution)[::-1]  # 4x4 (widest) first
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Outputs one logit (or critic value) per image; no sigmoid, the losses work on raw outputs.

    norm: "batch" (DCGAN, WGAN), "layer" (WGAN-GP: the gradient penalty is per sample, so the
    critic must not mix samples through batch statistics), or "spectral" (SNGAN: every
    convolution spectrally normalised, no other normalisation).
    """

    def __init__(self, resolution: int, channels: int, norm: str = "batch"):
        super().__init__()
        widths = _widths(channels, resolution)

        def conv(c_in: int, c_out: int, *args) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, *args, bias=norm == "spectral")
            return spectral_norm(layer) if norm == "spectral" else layer

        def normalise(c: int) -> list[nn.Module]:
            return {"batch": [nn.BatchNorm2d(c)], "layer": [nn.GroupNorm(1, c)]}.get(norm, [])

        layers: list[nn.Module] = [conv(3, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [conv(c_in, c_out, 4, 2, 1), *normalise(c_out), nn.LeakyReLU(0.2, True)]
        layers += [conv(widths[-1], 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: N(0, 0.02) convolutions, N(1, 0.02) normalisation scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, latent_dim: int, batches: int = 8, batch_size: int = 64,
                          seed: int = 0) -> None:
    """Re-estimate batch-norm statistics as exact averages over fresh noise.

    The running averages lag behind a generator that changed every step; after this, eval-mode
    output matches what the generator does on real batches, and generation no longer depends on
    how images are grouped into batches.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    # Only the norms in training mode: every other layer (noise injection, spectral norm's power
    # iteration) behaves as at generation and draws nothing from torch's generators.
    generator.eval()
    for m in norms:
        m.train()
    for _ in range(batches):
        generator(torch.randn(batch_size, latent_dim, generator=rng).to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    generator.eval()


class NoiseInputs:
    """Input i of a generated set is noise vector i of one seeded CPU stream, so image i is the
    same whatever the batch size, the device, or the images already written."""

    def __init__(self, count: int, latent_dim: int, seed: int):
        self.noise = torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.noise)

    def batch(self, indices: list[int] | slice, device: torch.device) -> torch.Tensor:
        return self.noise[indices].to(device)

    def notes(self) -> list[str]:
        return []


def critic_steps(step: int, n_critic: int, warmup: bool) -> int:
    """Critic steps for generator step `step` (0-based); counted in generator steps, never epochs."""
    if warmup and (step < 25 or step % 500 == 0):
        return WARMUP_CRITIC_STEPS
    return n_critic


class NoiseTrainer(Trainer):
    columns = ["loss_d", "loss_g", "gp", "w_estimate", "d_real", "d_fake"]
    divergence_hint = "Lower train.lr_g/lr_d, or try wgan-gp or sngan"

    def build(self) -> None:
        cfg, mc, tc = self.cfg, self.cfg.model, self.tc
        self.fixed_noise = torch.randn(GRID_SIZE, mc.latent_dim, generator=torch.Generator().manual_seed(tc.seed + 1))
        self.g = self.network("g", self.arch.build_generator(self.resolution, self.arch.generator_spec(cfg)))
        d = DCGANDiscriminator(self.resolution, mc.d_channels, self.arch.norm)
        d.apply(dcgan_init)
        self.d = self.network("d", d)
        self.keep_ema()
        self.opt_g = self.optimizer("g", self.g.parameters(), tc.lr_g)
        self.opt_d = self.optimizer("d", self.d.parameters(), tc.lr_d)
        self.g_run = self.distributed(self.g)
        self.d_run = self.distributed(self.d, compile=tc.gp_weight == 0)  # compile can't do the penalty's double backward

    def noise(self) -> torch.Tensor:
        return torch.randn(self.tc.batch_size, self.g.latent_dim, generator=self.sampler, device=self.device)

    def critic_steps(self, step: int) -> int:
        return critic_steps(step, self.tc.n_critic, self.tc.critic_warmup)

    def step(self, step: int) -> dict:
        """One generator step and its critic steps; returns device tensors (no host sync)."""
        arch, tc = self.arch, self.tc
        n_critic = self.critic_steps(step)
        for i in range(n_critic):
            last = i == n_critic - 1
            real = self.augment(self.real_batch())
            with torch.set_grad_enabled(last), self.autocast():
                fake = self.g_run(self.noise())  # the last one is reused, with its graph, by the generator step
            with self.autocast():
                d_real = self.d_run(real)
                d_fake = self.d_run(self.augment(fake.detach()))
            loss_d = arch.discriminator_loss(d_real, d_fake)
            gp = torch.zeros((), device=self.device)
            if tc.gp_weight > 0:
                gp = losses.gradient_penalty(self.d_run, real, self.augment(fake.detach()))
                loss_d = loss_d + tc.gp_weight * gp
            self.update("d", loss_d)
            if tc.clip > 0:
                with torch.no_grad():
                    for p in self.d.parameters():
                        p.clamp_(-tc.clip, tc.clip)

        with self.autocast(), frozen(self.d):  # the raw module: no weight gradients, no DDP sync for them
            loss_g = arch.generator_loss(self.d(self.augment(fake)))
        self.update("g", loss_g)
        d_real, d_fake = d_real.float().mean().detach(), d_fake.float().mean().detach()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "gp": gp.detach(),
                "d_real": d_real, "d_fake": d_fake, "images": n_critic * tc.batch_size}

    def log_row(self, stats: dict) -> dict:
        row = {k: round(stats[k].item(), 5) for k in ("loss_d", "loss_g", "d_real", "d_fake")}
        if self.tc.gp_weight > 0:
            row["gp"] = round(stats["gp"].item(), 5)
        if self.arch.wasserstein:
            row["w_estimate"] = round(row["d_real"] - row["d_fake"], 5)  # the critic's Wasserstein estimate
        return row

    def samples(self) -> torch.Tensor:
        return self.with_sampling_generator(lambda g: g(self.fixed_noise.to(self.device)))


class FromNoise(Architecture):
    """What every generator drawing from a latent vector shares: its spec, its inputs, and batch-norm
    statistics re-estimated before generation (DCGAN's family, FastGAN)."""
    consumes = "noise"

    def check(self, cfg) -> None:
        if cfg.generate.count == 0:
            raise PainterError(f"config key generate.count: 0 (one image per photo) is for translation "
                               f"architectures; {self.name} needs a count, e.g. 7000")

    def generator_spec(self, cfg) -> dict:
        return {"latent_dim": cfg.model.latent_dim, "channels": cfg.model.g_channels}

    def inputs(self, count: int, seed: int, spec: dict, photos=None) -> NoiseInputs:
        return NoiseInputs(count, spec["latent_dim"], seed)

    def finalize(self, generator: nn.Module, spec: dict, seed: int) -> None:
        recalibrate_batchnorm(generator, spec["latent_dim"], seed=seed)


@register
class DCGAN(FromNoise):
    name = "dcgan"
    description = "DCGAN: batch-norm discriminator, non-saturating BCE loss"
    norm = "batch"          # the discriminator's normalisation (DCGANDiscriminator)
    wasserstein = False     # whether D's outputs estimate a Wasserstein distance (logged as w_estimate)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return losses.bce_discriminator(real, fake)

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return losses.bce_generator(fake)

    def trainer(self, cfg, data, device, process) -> NoiseTrainer:
        return NoiseTrainer(self, cfg, data, device, process)

    def build_generator(self, resolution: int, spec: dict) -> nn.Module:
        g = DCGANGenerator(resolution, spec["latent_dim"], spec["channels"])
        g.apply(dcgan_init)
        return g

    def images_per_step(self, cfg, step: int) -> int:
        return critic_steps(step, cfg.train.n_critic, cfg.train.critic_warmup) * cfg.train.batch_size
