"""Generators and discriminators (critics), built for any power-of-two resolution from 32 to 256 px.

DCGAN follows the PyTorch DCGAN tutorial (Radford et al. 2015): transposed convolutions
4x4 -> ... -> R with batch norm and ReLU in G, strided convolutions with LeakyReLU in D.
Widths double towards the 4x4 end and are capped at 8x the base width, which reproduces the
tutorial's 64 px widths exactly and keeps 256 px models a sensible size.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


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


# Every architecture shares the DCGAN generator; they differ in the critic and the loss (losses.py).
DISCRIMINATOR_NORM = {"dcgan": "batch", "wgan": "batch", "wgan-gp": "layer", "sngan": "spectral"}
ARCHITECTURES = tuple(DISCRIMINATOR_NORM)


def build_generator(arch: str, resolution: int, latent_dim: int, g_channels: int) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    g = DCGANGenerator(resolution, latent_dim, g_channels)
    g.apply(dcgan_init)
    return g


def build_discriminator(arch: str, resolution: int, d_channels: int) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    d = DCGANDiscriminator(resolution, d_channels, DISCRIMINATOR_NORM[arch])
    d.apply(dcgan_init)
    return d


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
    generator.train()
    for _ in range(batches):
        generator(torch.randn(batch_size, latent_dim, generator=rng).to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    generator.eval()
