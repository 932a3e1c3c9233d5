"""What the translation architectures (CycleGAN, CUT, FastCUT) share: photos as generator inputs,
training on random crops, the learning-rate schedule, photo -> painting sample grids.

They learn from two unpaired domains, the photos and the paintings, and generate by translating
each photo into a painting with a fully convolutional ResNet generator: trained on `crop` px
windows, it translates whole 256 px photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..options import option
from ..errors import PainterError
from .base import Architecture, Trainer, require_train_defaults
from .nets import ResnetGenerator

SAMPLE_PAIRS = 16  # photo -> painting pairs in a sample grid (8 tiles a row: 4 pairs, 4 rows)


@dataclass
class TranslationOptions:
    """Keys every translation architecture has; each architecture's Options adds its own."""
    crop: int = option(0, min=0, max=256, help="train on random crops of this many pixels, a multiple of 4 from 32 "
                                               "to data.resolution (the presets: 256; 128 on a CPU); the generator "
                                               "still translates whole photos; 0 = whole images at data.resolution")
    blocks: int = option(9, min=0, max=32, help="residual blocks of the ResNet generator (9 at 256 px)")
    d_layers: int = option(3, min=1, max=6, help="strided layers of the PatchGAN discriminator (3: 70x70 patches)")
    decay_from: float = option(0.5, min=0.0, max=1.0, help="learning rates stay constant, then decay linearly to "
                                                           "zero from this fraction of train.steps (1 = never)")


class PhotoInputs:
    """Image i of a generated set is the translation of one photo, in the photos' fixed order: with as
    many images as photos, every photo once; fewer, a seeded subset (kept in photo order); more, the
    photos again, mirrored every other round."""

    def __init__(self, photos: torch.Tensor, count: int, seed: int):
        self.photos, n = photos, len(photos)
        if count <= n:
            picked = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count] if count < n \
                else torch.arange(n)
            self.order, self.mirrored = picked.sort().values, torch.zeros(count, dtype=torch.bool)
        else:
            rounds = torch.arange(count)
            self.order, self.mirrored = rounds % n, (rounds // n) % 2 == 1

    def __len__(self) -> int:
        return len(self.order)

    def source(self, indices: list[int] | slice) -> torch.Tensor:
        """The uint8 photos (mirrored where the set mirrors them) that images `indices` are made from."""
        order, mirrored = self.order[indices], self.mirrored[indices]
        images = self.photos[order.to(self.photos.device)]
        flip = mirrored.to(images.device).view(-1, 1, 1, 1)
        return torch.where(flip, images.flip(3), images)

    def batch(self, indices: list[int] | slice, device: torch.device) -> torch.Tensor:
        return self.source(indices).to(device).float().div_(127.5).sub_(1.0)

    def notes(self) -> list[str]:
        n, count = len(self.photos), len(self.order)
        if count < n:
            return [f"{count} of the {n} photos (a seeded subset), each translated once"]
        if count == n:
            return [f"all {n} photos, each translated once"]
        repeats = f"; images beyond {2 * n} repeat earlier ones" if count > 2 * n else ""
        return [f"{n} photos, each translated once, then {count - n} more from the photos mirrored{repeats}"]


class TranslationArchitecture(Architecture):
    consumes = "photos"
    antialias = False   # blur-pool down/upsampling in the generator and discriminator (CUT's default)

    def check(self, cfg) -> None:
        options = cfg.options
        require_train_defaults(self.name, {"n_critic": 1, "critic_warmup": False, "clip": 0.0, "gp_weight": 0.0,
                                           "optimizer": "adam"}, cfg, "is for the from-noise architectures")
        crop = options.crop or cfg.data.resolution
        if crop % 4 or crop < 32 or crop > cfg.data.resolution:
            raise PainterError(f"config key {self.name}.crop: {options.crop} must be a multiple of 4 from 32 to "
                               f"data.resolution ({cfg.data.resolution}), or 0 for whole images")

    def generator_spec(self, cfg) -> dict:
        return {"channels": cfg.model.g_channels, "blocks": cfg.options.blocks, "antialias": self.antialias}

    def build_generator(self, resolution: int, spec: dict) -> nn.Module:
        return ResnetGenerator(spec["channels"], spec["blocks"], spec["antialias"])

    def inputs(self, count: int, seed: int, spec: dict, photos: torch.Tensor | None = None) -> PhotoInputs:
        if photos is None:
            raise PainterError(f"{self.name} translates photos, and none were given")
        return PhotoInputs(photos, count, seed)


class TranslationTrainer(Trainer):
    """Photos and paintings drawn as random `crop` windows; learning rates on the schedule; pair grids."""

    def build(self) -> None:
        options, tc = self.cfg.options, self.tc
        self.crop = options.crop or self.resolution
        # Host-side random choices (image pools, FastCUT's flips) use a CPU stream: no device sync.
        self.host_rng = torch.Generator().manual_seed(tc.seed + 104_729 * self.process.rank)
        self.sample_inputs = PhotoInputs(self.data["photos"], SAMPLE_PAIRS, tc.seed + 1)
        self.build_networks()
        self.base_lrs = {name: [group["lr"] for group in opt.param_groups] for name, opt in self.optimizers.items()}

    def build_networks(self) -> None:
        raise NotImplementedError

    def real_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of photo crops and a batch of painting crops, in [-1, 1]."""
        return self.real_batch("photos", self.crop), self.real_batch("paintings", self.crop)

    def schedule(self, step: int) -> None:
        """Constant learning rates, then linear decay to zero over the last (1 - decay_from) of the steps."""
        start = self.cfg.options.decay_from * self.tc.steps
        factor = 1.0 if step < start else max(0.0, (self.tc.steps - step) / max(1.0, self.tc.steps - start))
        for name, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self.base_lrs[name]):
                group["lr"] = base * factor

    def train_step(self, step: int) -> dict:
        self.schedule(step)
        return super().train_step(step)

    def samples(self) -> torch.Tensor:
        """Photo, painting, photo, painting...: each photo beside its translation (EMA generator)."""
        photos = self.sample_inputs.batch(slice(None), self.device)
        paintings = self.with_sampling_generator(lambda g: g(photos))
        return torch.stack([photos, paintings.float()], dim=1).flatten(0, 1)

    def extra_state(self) -> dict:
        return {"host_rng": self.host_rng.get_state()}

    def load_extra_state(self, state: dict) -> None:
        self.host_rng.set_state(state["host_rng"])
