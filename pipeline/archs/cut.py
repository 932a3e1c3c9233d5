"""CUT and FastCUT (Park et al. 2020): contrastive unpaired translation with one generator.

Instead of a second generator and a cycle, a patch of the translated image must be recognisable as
its own source patch among the other patches of the same photo (PatchNCE): the generator's encoder
features at `nce_layers` are sampled at `num_patches` positions per layer, projected by a small MLP
per layer (256 features) and compared at temperature 0.07. A least-squares PatchGAN discriminator
pulls the translations towards the paintings. About half of CycleGAN's work per step.

As in the reference implementation (taesungp/contrastive-unpaired-translation): anti-aliased
(blur-pool) ResNet generator and discriminator, Xavier initialisation with gain 0.02, NCE layers
0, 4, 8, 12, 16, discriminator step then generator step, one Adam for the generator and the MLPs.
CUT adds the identity NCE loss (the generator applied to a painting, against the painting);
FastCUT drops it, weighs NCE by 10, and asks the generator to commute with horizontal flips.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .. import losses
from ..options import option
from ..errors import PainterError
from . import register
from .base import frozen
from .nets import PatchDiscriminator, PatchSampler, ResnetGenerator, init_xavier, patch_nce_loss
from .translation import TranslationArchitecture, TranslationOptions, TranslationTrainer


@dataclass
class CUTOptions(TranslationOptions):
    lambda_gan: float = option(1.0, min=0.0, help="weight of the GAN loss")
    lambda_nce: float = option(1.0, min=0.0, help="weight of the PatchNCE loss (FastCUT: 10)")
    nce_idt: bool = option(True, help="also PatchNCE between a painting and its translation (CUT: yes, FastCUT: no)")
    flip_equivariance: bool = option(False, help="translate a mirrored batch half the time and compare features "
                                                 "mirrored back (FastCUT)")
    nce_layers: str = option("0,4,8,12,16", help="generator layers whose features PatchNCE compares")
    num_patches: int = option(256, min=1, max=4096, help="positions sampled per layer")
    nce_temperature: float = option(0.07, min=1e-4, max=10.0, help="PatchNCE temperature tau")
    nce_features: int = option(256, min=8, max=4096, help="width of the per-layer MLP projection")


@dataclass
class FastCUTOptions(CUTOptions):
    decay_from: float = option(0.75, min=0.0, max=1.0, help="learning rates stay constant, then decay linearly to "
                                                            "zero from this fraction of train.steps (the reference's "
                                                            "150 + 50 epochs)")
    lambda_nce: float = option(10.0, min=0.0, help="weight of the PatchNCE loss")
    nce_idt: bool = option(False, help="also PatchNCE between a painting and its translation")
    flip_equivariance: bool = option(True, help="translate a mirrored batch half the time and compare features "
                                                "mirrored back")


def nce_layer_indices(options) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in options.nce_layers.split(","))
    except ValueError:
        raise PainterError(f"config key nce_layers: {options.nce_layers!r} must be comma-separated layer "
                           "indices, e.g. \"0,4,8,12,16\"") from None


class CUTTrainer(TranslationTrainer):
    columns = ["loss_d", "loss_g", "d_real", "d_fake", "gan", "nce", "nce_idt"]

    def build_networks(self) -> None:
        options, mc, tc = self.cfg.options, self.cfg.model, self.tc
        spec = self.arch.generator_spec(self.cfg)
        self.layers = nce_layer_indices(options)
        g = ResnetGenerator(spec["channels"], spec["blocks"], spec["antialias"])
        g.apply(init_xavier)
        self.g = self.network("g", g)
        d = PatchDiscriminator(mc.d_channels, options.d_layers, antialias=self.arch.antialias)
        d.apply(init_xavier)
        self.d = self.network("d", d)
        sampler = PatchSampler(g.feature_channels(self.layers), options.nce_features)
        sampler.apply(init_xavier)
        self.sampler_mlp = self.network("mlp", sampler)
        self.keep_ema()
        # The reference gives the MLPs an Adam of their own with the generator's settings; one Adam over
        # both is the same update, and lets one loss scaler serve the loss they share.
        self.optimizer("g", itertools.chain(self.g.parameters(), self.sampler_mlp.parameters()), tc.lr_g)
        self.optimizer("d", self.d.parameters(), tc.lr_d)
        self.g_run, self.d_run = self.distributed(self.g), self.distributed(self.d)
        self.mlp_run = self.distributed(self.sampler_mlp, compile=False)

    def nce(self, source: torch.Tensor, translated: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between the source images and their translations, averaged over the layers."""
        options = self.cfg.options
        with torch.no_grad():  # the keys are targets: no gradient reaches them (the loss detaches them too)
            source_features = self.g.encode(source, self.layers)
        features = self.g.encode(translated, self.layers)
        if flipped:  # the translation of the mirrored batch, mirrored back onto the source's positions
            features = [f.flip(3) for f in features]
        # The heads and the loss in fp32 (a small share of the step): normalising the heads' outputs
        # divides the loss's gradient by their norms, which overflowed fp16 at every loss scale on
        # small networks.
        with torch.autocast(self.device.type, enabled=False):
            with torch.no_grad():
                keys, ids = self.sampler_mlp([f.float() for f in source_features], options.num_patches,
                                             generator=self.sampler)
            queries, _ = self.mlp_run([f.float() for f in features], options.num_patches, ids)
            per_layer = [patch_nce_loss(q, k, len(source), options.nce_temperature).mean()
                         for q, k in zip(queries, keys)]
        return options.lambda_nce * torch.stack(per_layer).mean()

    def step(self, step: int) -> dict:
        options = self.cfg.options
        photo, painting = self.real_pair()
        both = torch.cat([photo, painting]) if options.nce_idt else photo
        flipped = options.flip_equivariance and bool(torch.rand((), generator=self.host_rng) < 0.5)
        with self.autocast():
            translated = self.g_run(both.flip(3) if flipped else both)
        fake_painting = translated[:len(photo)]

        with self.autocast():
            d_real = self.d_run(self.augment(painting))
            d_fake = self.d_run(self.augment(fake_painting.detach()))
            loss_d = 0.5 * (losses.least_squares(d_fake, real=False) + losses.least_squares(d_real, real=True))
        self.update("d", loss_d)

        zero = torch.zeros((), device=self.device)
        with self.autocast():
            with frozen(self.d):  # the raw module: no DDP gradient sync for weights left unchanged
                gan = options.lambda_gan * losses.least_squares(self.d(self.augment(fake_painting)), real=True) \
                    if options.lambda_gan > 0 else zero
            nce = self.nce(photo, fake_painting, flipped) if options.lambda_nce > 0 else zero
            nce_idt = self.nce(painting, translated[len(photo):], flipped) \
                if options.nce_idt and options.lambda_nce > 0 else zero
        loss_g = gan + (nce + nce_idt) / 2 if options.nce_idt else gan + nce
        self.update("g", loss_g)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "d_real": d_real.float().mean().detach(),
                "d_fake": d_fake.float().mean().detach(), "gan": gan.detach(), "nce": nce.detach(),
                "nce_idt": nce_idt.detach(), "images": self.tc.batch_size}


@register
class CUT(TranslationArchitecture):
    name = "cut"
    description = "CUT: one ResNet generator, PatchNCE + identity NCE, LSGAN PatchGAN"
    Options = CUTOptions
    antialias = True

    def check(self, cfg) -> None:
        super().check(cfg)
        layers = nce_layer_indices(cfg.options)
        with torch.device("meta"):  # the layout only: no weights, no random numbers drawn
            count = len(ResnetGenerator(4, cfg.options.blocks, self.antialias).layers)
        if not layers or any(not 0 <= i < count for i in layers):
            raise PainterError(f"config key {self.name}.nce_layers: {cfg.options.nce_layers!r} must name layers of "
                               f"the generator, 0 to {count - 1} with {cfg.options.blocks} blocks")

    def trainer(self, cfg, data, device, process) -> CUTTrainer:
        return CUTTrainer(self, cfg, data, device, process)


@register
class FastCUT(CUT):
    name = "fastcut"
    description = "FastCUT: CUT with NCE weight 10, no identity NCE, flip equivariance"
    Options = FastCUTOptions
