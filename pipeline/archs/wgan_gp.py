"""WGAN-GP (Gulrajani et al. 2017): WGAN with a gradient penalty instead of weight clipping.

The penalty (train.gp_weight, lambda = 10) is computed per sample at random interpolates of real
and fake images, so the critic uses layer norm rather than batch norm, which would mix samples.
"""

from __future__ import annotations

from . import register
from .wgan import WGAN


@register
class WGANGP(WGAN):
    name = "wgan-gp"
    description = "WGAN-GP: layer-norm critic, Wasserstein loss with gradient penalty"
    norm = "layer"
