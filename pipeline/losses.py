"""GAN losses on raw discriminator outputs, computed in fp32 whatever precision the nets ran in.

dcgan: non-saturating BCE (Goodfellow et al. 2014, as in the DCGAN tutorial).
wgan, wgan-gp: the Wasserstein critic loss (Arjovsky et al. 2017; Gulrajani et al. 2017).
sngan: the hinge loss (Miyato et al. 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(arch: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    if arch == "dcgan":
        return F.softplus(-real).mean() + F.softplus(fake).mean()  # BCE(real, 1) + BCE(fake, 0)
    if arch in ("wgan", "wgan-gp"):
        return fake.mean() - real.mean()
    if arch == "sngan":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown architecture {arch!r}")


def generator_loss(arch: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if arch == "dcgan":
        return F.softplus(-fake).mean()  # BCE(fake, 1): the non-saturating generator loss
    if arch in ("wgan", "wgan-gp", "sngan"):
        return -fake.mean()
    raise ValueError(f"unknown architecture {arch!r}")


def gradient_penalty(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x D(x)||_2 - 1)^2] at random interpolates of real and fake images, in fp32.

    The penalty's second-order gradients are fragile in low precision, so autocast is off here.
    """
    with torch.autocast(device_type=real.device.type, enabled=False):
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        mixed = (alpha * real.float() + (1 - alpha) * fake.float()).requires_grad_(True)
        scores = critic(mixed)
        (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
