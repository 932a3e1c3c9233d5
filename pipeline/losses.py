"""GAN losses on raw discriminator outputs, computed in fp32 whatever precision the nets ran in.

Each architecture picks its own (pipeline/archs/): non-saturating BCE (Goodfellow et al. 2014, the
DCGAN tutorial's), Wasserstein (Arjovsky et al. 2017; Gulrajani et al. 2017), hinge (Miyato et al.
2018) and least squares (Mao et al. 2017, CycleGAN's and CUT's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_discriminator(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real.float()).mean() + F.softplus(fake.float()).mean()  # BCE(real, 1) + BCE(fake, 0)


def bce_generator(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake.float()).mean()  # BCE(fake, 1): the non-saturating generator loss


def wasserstein_discriminator(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return fake.float().mean() - real.float().mean()


def hinge_discriminator(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real.float()).mean() + F.relu(1 + fake.float()).mean()


def critic_generator(fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: the generator loss of the Wasserstein and hinge GANs."""
    return -fake.float().mean()


def least_squares(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """LSGAN: mean((D - 1)^2) towards real, mean(D^2) towards fake."""
    scores = scores.float()
    return (scores - 1).square().mean() if real else scores.square().mean()


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
