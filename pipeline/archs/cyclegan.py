"""CycleGAN (Zhu et al. 2017): two generators, photo -> painting (G) and painting -> photo (F), each
with a PatchGAN discriminator, trained so that translating there and back returns the original.

As in the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix): ResNet generators with
reflection padding and instance norm (9 blocks at 256 px), 70x70 PatchGAN discriminators,
least-squares GAN loss, cycle-consistency weight 10 in each direction, identity weight 0.5 x 10,
discriminators updated on a history of 50 generated images, Adam(2e-4, betas 0.5/0.999) shared by
both generators and by both discriminators, constant learning rate then linear decay to zero
(configs/cyclegan.toml). One step updates both generators, then both discriminators.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import losses
from ..options import option
from . import register
from .base import frozen
from .nets import ImagePool, PatchDiscriminator, ResnetGenerator
from .translation import TranslationArchitecture, TranslationOptions, TranslationTrainer


@dataclass
class CycleGANOptions(TranslationOptions):
    lambda_cycle: float = option(10.0, min=0.0, help="weight of each cycle-consistency L1 loss")
    lambda_identity: float = option(0.5, min=0.0, help="identity loss weight, relative to lambda_cycle "
                                                       "(G(painting) should stay the painting); 0 = off")
    pool_size: int = option(50, min=0, max=1000, help="generated images each discriminator keeps and reuses; 0 = off")


class CycleGANTrainer(TranslationTrainer):
    columns = ["loss_d", "loss_g", "d_real", "d_fake", "gan_painting", "gan_photo", "cycle_photo", "cycle_painting",
               "idt_painting", "idt_photo", "d_painting", "d_photo"]

    def build_networks(self) -> None:
        options, mc, tc = self.cfg.options, self.cfg.model, self.tc
        spec = self.arch.generator_spec(self.cfg)
        self.g = self.network("g", ResnetGenerator(spec["channels"], spec["blocks"]))          # photo -> painting
        self.f = self.network("f", ResnetGenerator(spec["channels"], spec["blocks"]))          # painting -> photo
        self.d = self.network("d", PatchDiscriminator(mc.d_channels, options.d_layers))        # paintings
        self.d_photo = self.network("d_photo", PatchDiscriminator(mc.d_channels, options.d_layers))
        self.keep_ema()
        self.optimizer("g", itertools.chain(self.g.parameters(), self.f.parameters()), tc.lr_g)
        self.optimizer("d", itertools.chain(self.d.parameters(), self.d_photo.parameters()), tc.lr_d)
        self.g_run, self.f_run = self.distributed(self.g), self.distributed(self.f)
        self.d_run, self.d_photo_run = self.distributed(self.d), self.distributed(self.d_photo)
        self.pools = {"painting": ImagePool(options.pool_size), "photo": ImagePool(options.pool_size)}

    def step(self, step: int) -> dict:
        options = self.cfg.options
        photo, painting = self.real_pair()
        weight_identity = options.lambda_cycle * options.lambda_identity

        # Generators: fool the (frozen) discriminators, come back around the cycle, leave the target domain
        # alone. Instance norm treats each image on its own, so images bound for the same generator go in one
        # batch: the same results as the reference's six calls, in four.
        identity = weight_identity > 0
        with self.autocast():
            out_g = self.g_run(torch.cat([photo, painting]) if identity else photo)
            out_f = self.f_run(torch.cat([painting, photo]) if identity else painting)
            fake_painting, same_painting = out_g[:len(photo)], out_g[len(photo):]
            fake_photo, same_photo = out_f[:len(painting)], out_f[len(painting):]
            back_photo, back_painting = self.f_run(fake_painting), self.g_run(fake_photo)
            with frozen(self.d, self.d_photo):  # the raw modules: no DDP gradient sync for weights left unchanged
                gan_painting = losses.least_squares(self.d(self.augment(fake_painting)), real=True)
                gan_photo = losses.least_squares(self.d_photo(self.augment(fake_photo)), real=True)
        cycle_photo = options.lambda_cycle * F.l1_loss(back_photo.float(), photo)
        cycle_painting = options.lambda_cycle * F.l1_loss(back_painting.float(), painting)
        zero = torch.zeros((), device=self.device)
        idt_painting = weight_identity * F.l1_loss(same_painting.float(), painting) if identity else zero
        idt_photo = weight_identity * F.l1_loss(same_photo.float(), photo) if identity else zero
        loss_g = gan_painting + gan_photo + cycle_photo + cycle_painting + idt_painting + idt_photo
        self.update("g", loss_g)

        # Discriminators: real against generated images, drawn half from a history of earlier ones.
        pooled_painting = self.pools["painting"].query(fake_painting.detach(), self.host_rng)
        pooled_photo = self.pools["photo"].query(fake_photo.detach(), self.host_rng)
        with self.autocast():  # real and generated images in one batch per discriminator, as above
            scores = self.d_run(self.augment(torch.cat([painting, pooled_painting])))
            d_real, d_fake = scores[:len(painting)], scores[len(painting):]
            d_painting = 0.5 * (losses.least_squares(d_real, real=True) + losses.least_squares(d_fake, real=False))
            scores_photo = self.d_photo_run(self.augment(torch.cat([photo, pooled_photo])))
            d_photo = 0.5 * (losses.least_squares(scores_photo[:len(photo)], real=True)
                             + losses.least_squares(scores_photo[len(photo):], real=False))
        loss_d = d_painting + d_photo
        self.update("d", loss_d)
        terms = {"gan_painting": gan_painting, "gan_photo": gan_photo, "cycle_photo": cycle_photo,
                 "cycle_painting": cycle_painting, "idt_painting": idt_painting, "idt_photo": idt_photo,
                 "d_painting": d_painting, "d_photo": d_photo}
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "d_real": d_real.float().mean().detach(),
                "d_fake": d_fake.float().mean().detach(), **{k: v.detach() for k, v in terms.items()},
                "images": self.tc.batch_size}

    def extra_state(self) -> dict:
        return {**super().extra_state(), **{f"pool_{name}": pool.state_dict() for name, pool in self.pools.items()}}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        for name, pool in self.pools.items():
            pool.load_state_dict(state[f"pool_{name}"], self.device)


@register
class CycleGAN(TranslationArchitecture):
    name = "cyclegan"
    description = "CycleGAN: two ResNet generators and PatchGANs, LSGAN + cycle + identity losses"
    Options = CycleGANOptions

    def trainer(self, cfg, data, device, process) -> CycleGANTrainer:
        return CycleGANTrainer(self, cfg, data, device, process)
