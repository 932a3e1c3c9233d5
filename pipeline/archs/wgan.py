"""WGAN (Arjovsky et al. 2017): the DCGAN networks with a critic instead of a classifier.

The critic's outputs are unbounded scores and the loss estimates the Wasserstein distance; the
critic is kept Lipschitz by clipping its weights (train.clip, 0.01 in the paper) and trained
n_critic = 5 times per generator step with RMSprop (configs/wgan.toml), 100 times during the
first 25 generator steps and every 500th (train.critic_warmup).
"""

from __future__ import annotations

from .. import losses
from . import register
from .dcgan import DCGAN


@register
class WGAN(DCGAN):
    name = "wgan"
    description = "WGAN: batch-norm critic with clipped weights, Wasserstein loss"
    norm = "batch"
    wasserstein = True

    def discriminator_loss(self, real, fake):
        return losses.wasserstein_discriminator(real, fake)

    def generator_loss(self, fake):
        return losses.critic_generator(fake)
