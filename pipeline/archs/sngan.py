"""SNGAN (Miyato et al. 2018): every discriminator convolution spectrally normalised, hinge loss."""

from __future__ import annotations

from .. import losses
from . import register
from .dcgan import DCGAN


@register
class SNGAN(DCGAN):
    name = "sngan"
    description = "SNGAN: spectrally normalised discriminator, hinge loss"
    norm = "spectral"

    def discriminator_loss(self, real, fake):
        return losses.hinge_discriminator(real, fake)

    def generator_loss(self, fake):
        return losses.critic_generator(fake)
