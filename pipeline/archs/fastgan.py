"""FastGAN (Liu et al. 2021, "Towards Faster and Stabilized GAN Training for High-fidelity Few-shot
Image Synthesis"): a light generator and a self-supervised discriminator, made for a few hundred images.

Generator, from a noise vector (model.latent_dim, 256 in the paper): a 4x4 transposed convolution,
batch norm and GLU, then one up-block per doubling: nearest upsampling, 3x3 convolution, batch
norm, GLU. Every other block (at 8, 32 and 128 px) is the "comp" block: a second convolution, and
per-pixel noise added before each batch norm. Widths follow the paper's table, times
model.g_channels (ngf): 4:16, 8:8, 16:4, 32:2, 64:2, 128:1, 256:0.5. Skip-layer excitation (SLE)
gates the 64, 128 and 256 px maps channel by channel with the 4, 8 and 16 px ones (pool to 4x4,
4x4 conv, swish, 1x1 conv, sigmoid). Two tanh heads: the image, and a half-size image from the
previous block, which the discriminator's second branch judges.

Discriminator, widths times model.d_channels (ndf): a 3x3 stem at full size, then "comp" down-blocks
(the average of a strided-conv path and an avg-pool + 1x1 path) down to 8x8, with SLE from each
map of 64 px or more to the map 8 times smaller; a 5x5 map of real/fake logits from the 8x8
features, and another from a second, plain branch that sees the image at half size. On real images
only, three small decoders reconstruct the half-size image from each branch's 8x8 features and one
random quadrant of the image from the matching quadrant of the 16x16 features: D must keep what an
image looks like in its features, which stabilises it on few images.

Loss: the discriminator's hinge with a random margin, relu(U[0.8, 1) - D(real)) and
relu(U[0.8, 1) + D(fake)), plus the reconstruction loss; the generator's -D(G(z)). Adam 2e-4,
betas (0.5, 0.999), batch 8, EMA of G, DiffAugment color,translation (configs/fastgan.toml).

Where it departs from the reference implementation (odegeasslbc/FastGAN-pytorch), and why:
- Reconstruction loss: L1 on pixels, each image's mean absolute error summed over the batch (the
  reference sums LPIPS over the batch, so the weighting against the hinge term stays comparable),
  times fastgan.lambda_rec. LPIPS needs pretrained VGG/AlexNet weights, which cannot be had
  offline or inside a Kaggle kernel without internet; L1 needs none. It is blunter (it asks for
  colours and layout, not perceptual detail), which is what 8x8 features can carry anyway.
- The quadrant is drawn per image on the device, not once per batch on the host (no sync).
- Half-size real images are 2x2 averages rather than nearest-neighbour samples (no aliasing).
- Both generator heads end in tanh, as in the reference's 1024 px model (its 256 px model leaves them
  unbounded); the pipeline expects images in [-1, 1].
- Noise injection draws fresh noise in training mode only; in eval mode (samples, evaluation,
  generation) each layer adds one fixed noise map (StyleGAN2's "const" noise), so image i depends
  on noise vector i alone, whatever the batch, as for the rest of the noise family.
- Any power-of-two resolution from 32 to 256 px: the generator stops at the training resolution
  (SLE only into maps that exist), the discriminator starts there; the decoders always produce
  half-size images (128 px at 256).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .. import losses
from ..options import option
from . import register
from .base import GRID_SIZE, Trainer, frozen, require_train_defaults
from .dcgan import FromNoise, dcgan_init

# The paper's generator (and decoder) widths per feature-map size, as multiples of the base width.
G_WIDTH = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}
SLE_SPAN = 16      # the generator gates a map of size s with the map of size s / 16
D_SLE_SPAN = 8     # the discriminator gates a map of size s with the map of size s * 8
LOGIT_MAP = 8      # both discriminator branches end in 8x8 features (5x5 logits after a 4x4 conv)


@dataclass
class FastGANOptions:
    lambda_rec: float = option(1.0, min=0.0, help="weight of the discriminator's reconstruction loss (L1 in place "
                                                  "of the reference's LPIPS; per image, summed over the batch)")


def _g_width(base: int, size: int) -> int:
    return max(1, int(G_WIDTH[size] * base))


def _d_width(base: int, size: int) -> int:
    """ndf x {256: 1/4, 128: 1/2, 64: 1, 32: 2, 16: 4, 8: 8}, the reference's widths at 256 px."""
    return max(1, base * 64 // size)


def _sizes(low: int, high: int) -> list[int]:
    """Powers of two from low to high, both included."""
    return [2 ** i for i in range(int(math.log2(low)), int(math.log2(high)) + 1)]


def sn_conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
            transposed: bool = False) -> nn.Module:
    """A spectrally normalised convolution without bias (every FastGAN convolution is one)."""
    layer = (nn.ConvTranspose2d if transposed else nn.Conv2d)(c_in, c_out, kernel, stride, padding, bias=False)
    return spectral_norm(layer)


class NoiseInjection(nn.Module):
    """x + w * noise, one noise value per pixel shared by the channels; w learned, starting at 0.

    Training mode draws fresh noise (torch's default generator: resumes exactly); eval mode adds a
    fixed map, kept in the state dict, so generation is deterministic and independent of batching."""

    def __init__(self, size: int, seed: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.register_buffer("fixed", torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        else:
            noise = self.fixed.to(x.dtype)
        return x + self.weight.to(x.dtype) * noise


class SkipExcitation(nn.Module):
    """SLE: a low-resolution map yields one gate in (0, 1) per channel of a high-resolution map."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), sn_conv(c_low, c_high, 4), nn.SiLU(),
                                  sn_conv(c_high, c_high, 1), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


def up_block(c_in: int, c_out: int, size: int, comp: bool) -> nn.Sequential:
    """Upsample to `size` px; the comp block adds noise and a second convolution."""
    layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest"), sn_conv(c_in, 2 * c_out, 3, 1, 1)]
    if comp:
        layers.append(NoiseInjection(size, seed=2 * size))
    layers += [nn.BatchNorm2d(2 * c_out), nn.GLU(dim=1)]
    if comp:
        layers += [sn_conv(c_out, 2 * c_out, 3, 1, 1), NoiseInjection(size, seed=2 * size + 1),
                   nn.BatchNorm2d(2 * c_out), nn.GLU(dim=1)]
    return nn.Sequential(*layers)


class FastGANGenerator(nn.Module):
    def __init__(self, resolution: int, latent_dim: int, channels: int):
        super().__init__()
        self.latent_dim, self.resolution = latent_dim, resolution
        self.sizes = _sizes(8, resolution)
        width = {s: _g_width(channels, s) for s in _sizes(4, resolution)}
        self.init = nn.Sequential(sn_conv(latent_dim, 2 * width[4], 4, transposed=True),
                                  nn.BatchNorm2d(2 * width[4]), nn.GLU(dim=1))
        # comp blocks at 8, 32, 128 px: the reference alternates comp and plain from 8 px up
        self.blocks = nn.ModuleList(up_block(width[s // 2], width[s], s, comp=int(math.log2(s)) % 2 == 1)
                                    for s in self.sizes)
        self.excite = nn.ModuleDict({str(s): SkipExcitation(width[s // SLE_SPAN], width[s])
                                     for s in self.sizes if s // SLE_SPAN >= 4})
        self.to_image = sn_conv(width[resolution], 3, 3, 1, 1)
        self.to_half = sn_conv(width[resolution // 2], 3, 1)

    def forward(self, z: torch.Tensor, both: bool = False):
        """Images in [-1, 1]; with `both`, also the half-size images the discriminator's second branch sees."""
        x = self.init(z.view(z.shape[0], -1, 1, 1))
        features = {4: x}
        for size, block in zip(self.sizes, self.blocks):
            x = block(x)
            if str(size) in self.excite:
                x = self.excite[str(size)](features[size // SLE_SPAN], x)
            features[size] = x
        image = torch.tanh(self.to_image(x))
        if not both:
            return image
        return image, torch.tanh(self.to_half(features[self.resolution // 2]))


class DownBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(sn_conv(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class DownBlockComp(nn.Module):
    """The mean of a strided 4x4 + 3x3 convolution path and a 2x2 average + 1x1 convolution path."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.main = nn.Sequential(DownBlock(c_in, c_out), sn_conv(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out),
                                  nn.LeakyReLU(0.2))
        self.direct = nn.Sequential(nn.AvgPool2d(2), sn_conv(c_in, c_out, 1), nn.BatchNorm2d(c_out),
                                    nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


class Decoder(nn.Sequential):
    """8x8 discriminator features -> a `size` px image in [-1, 1] (the reference's SimpleDecoder)."""

    def __init__(self, c_in: int, base: int, size: int):
        layers: list[nn.Module] = []
        for s in _sizes(16, size):
            c_out = _g_width(base, s)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), sn_conv(c_in, 2 * c_out, 3, 1, 1),
                       nn.BatchNorm2d(2 * c_out), nn.GLU(dim=1)]
            c_in = c_out
        super().__init__(*layers, sn_conv(c_in, 3, 3, 1, 1), nn.Tanh())


def quadrant(x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Quadrant which[i] (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of each x[i]."""
    n, c, h, w = x.shape
    tiles = x.unflatten(2, (2, h // 2)).unflatten(4, (2, w // 2)).permute(0, 2, 4, 1, 3, 5)
    return tiles.reshape(n * 4, c, h // 2, w // 2)[torch.arange(n, device=x.device) * 4 + which]


class FastGANDiscriminator(nn.Module):
    def __init__(self, resolution: int, channels: int):
        super().__init__()

        def width(size: int) -> int:
            return _d_width(channels, size)

        def half_width(size: int) -> int:  # the second branch is half as wide
            return max(1, _d_width(channels, size) // 2)

        self.stem = nn.Sequential(sn_conv(3, width(resolution), 3, 1, 1), nn.LeakyReLU(0.2))
        self.down_sizes = _sizes(LOGIT_MAP, resolution // 2)[::-1]  # the maps each down-block produces
        self.down = nn.ModuleList(DownBlockComp(width(2 * s), width(s)) for s in self.down_sizes)
        self.excite = nn.ModuleDict({str(s): SkipExcitation(width(s * D_SLE_SPAN), width(s))
                                     for s in self.down_sizes if s * D_SLE_SPAN <= resolution})
        self.logits = nn.Sequential(sn_conv(width(LOGIT_MAP), 16 * channels, 1), nn.BatchNorm2d(16 * channels),
                                    nn.LeakyReLU(0.2), sn_conv(16 * channels, 1, 4))
        half = resolution // 2
        small: list[nn.Module] = [sn_conv(3, half_width(half // 2), 4, 2, 1), nn.LeakyReLU(0.2)]
        small += [DownBlock(half_width(s), half_width(s // 2)) for s in _sizes(2 * LOGIT_MAP, half // 2)[::-1]]
        self.small = nn.Sequential(*small)
        self.small_logits = sn_conv(half_width(LOGIT_MAP), 1, 4)
        base = max(1, channels // 2)
        self.decode_whole = Decoder(width(LOGIT_MAP), base, half)
        self.decode_small = Decoder(half_width(LOGIT_MAP), base, half)
        self.decode_part = Decoder(width(2 * LOGIT_MAP), base, half)

    def forward(self, image: torch.Tensor, half: torch.Tensor | None = None, which: torch.Tensor | None = None):
        """Logits, N x 50 (a 5x5 map from each branch). `half`: the half-size images (default: 2x2 averages
        of `image`). With `which` (real images), also the reconstructions (whole image from each branch,
        quadrant `which` of the image), each half the size of `image`."""
        if half is None:
            half = F.avg_pool2d(image, 2)
        x = self.stem(image)
        features = {image.shape[-1]: x}
        for size, block in zip(self.down_sizes, self.down):
            x = block(x)
            if str(size) in self.excite:
                x = self.excite[str(size)](features[size * D_SLE_SPAN], x)
            features[size] = x
        small = self.small(half)
        logits = torch.cat([self.logits(x).flatten(1), self.small_logits(small).flatten(1)], dim=1)
        if which is None:
            return logits
        part = quadrant(features[2 * LOGIT_MAP], which)
        return logits, (self.decode_whole(x), self.decode_small(small), self.decode_part(part))


def reconstruction_targets(real: torch.Tensor, which: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """What the decoders of FastGANDiscriminator.forward(real, which=which) must reproduce, in order."""
    half = F.avg_pool2d(real, 2)
    return half, half, quadrant(real, which)


def reconstruction_loss(reconstructions, targets) -> torch.Tensor:
    """Each image's mean absolute pixel error, summed over the images and the decoders (fp32)."""
    return sum((r.float() - t.float()).abs().flatten(1).mean(1).sum() for r, t in zip(reconstructions, targets))


def hinge_real(logits: torch.Tensor) -> torch.Tensor:
    """mean(relu(m - D(real))) with a fresh random margin m in [0.8, 1) per logit."""
    logits = logits.float()
    return F.relu(0.8 + 0.2 * torch.rand_like(logits) - logits).mean()


def hinge_fake(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    return F.relu(0.8 + 0.2 * torch.rand_like(logits) + logits).mean()


class FastGANTrainer(Trainer):
    columns = ["loss_d", "loss_g", "d_real", "d_fake", "rec"]

    def build(self) -> None:
        cfg, mc, tc = self.cfg, self.cfg.model, self.tc
        self.fixed_noise = torch.randn(GRID_SIZE, mc.latent_dim, generator=torch.Generator().manual_seed(tc.seed + 1))
        self.g = self.network("g", self.arch.build_generator(self.resolution, self.arch.generator_spec(cfg)))
        d = FastGANDiscriminator(self.resolution, mc.d_channels)
        d.apply(dcgan_init)
        self.d = self.network("d", d)
        self.keep_ema()
        self.optimizer("g", self.g.parameters(), tc.lr_g)
        self.optimizer("d", self.d.parameters(), tc.lr_d)
        self.g_run, self.d_run = self.distributed(self.g), self.distributed(self.d)

    def step(self, step: int) -> dict:
        """One discriminator step and one generator step; device tensors only (no host sync)."""
        n = self.tc.batch_size
        real = self.augment(self.real_batch())
        z = torch.randn(n, self.g.latent_dim, generator=self.sampler, device=self.device)
        which = torch.randint(4, (n,), generator=self.sampler, device=self.device)
        with self.autocast():
            fake, fake_half = self.g_run(z, True)
        # Augmented once, each size with its own draw as in the reference; D's step uses them detached,
        # G's step with their graph.
        fake, fake_half = self.augment(fake), self.augment(fake_half)
        targets = reconstruction_targets(real, which)

        with self.autocast():
            # Every decoder takes part in this loss: DDP needs no unused-parameter search.
            d_real, reconstructions = self.d_run(real, targets[0], which)
            d_fake = self.d_run(fake.detach(), fake_half.detach())
        rec = self.cfg.options.lambda_rec * reconstruction_loss(reconstructions, targets)
        loss_d = hinge_real(d_real) + hinge_fake(d_fake) + rec
        self.update("d", loss_d)

        with self.autocast(), frozen(self.d):  # the raw module: its decoders are idle here, and D is not updated
            loss_g = losses.critic_generator(self.d(fake, fake_half))
        self.update("g", loss_g)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "rec": rec.detach(),
                "d_real": d_real.float().mean().detach(), "d_fake": d_fake.float().mean().detach(), "images": n}

    def samples(self) -> torch.Tensor:
        return self.with_sampling_generator(lambda g: g(self.fixed_noise.to(self.device)))


@register
class FastGAN(FromNoise):
    name = "fastgan"
    description = "FastGAN: SLE generator, self-supervised discriminator with decoders, hinge loss"
    Options = FastGANOptions

    def check(self, cfg) -> None:
        super().check(cfg)
        require_train_defaults(self.name, {"n_critic": 1, "critic_warmup": False, "clip": 0.0, "gp_weight": 0.0}, cfg,
                               "is for the DCGAN family's critics (one discriminator step per generator step here, "
                               "without clipping or a penalty)")

    def trainer(self, cfg, data, device, process) -> FastGANTrainer:
        return FastGANTrainer(self, cfg, data, device, process)

    def build_generator(self, resolution: int, spec: dict) -> nn.Module:
        g = FastGANGenerator(resolution, spec["latent_dim"], spec["channels"])
        g.apply(dcgan_init)  # the reference's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch norm
        return g
