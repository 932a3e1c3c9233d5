"""What every architecture is made of: the `Architecture` description a module registers, and the
`Trainer` machinery they all share (device, mixed precision, DDP, EMA, the whole checkpoint state)."""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..augment import diff_augment, parse_policy, random_hflip
from ..devices import Process, autocast_dtype
from ..errors import PainterError

GRID_SIZE = 64  # images in a sample grid


class Architecture:
    """One GAN painter can train. Subclass it in pipeline/archs/<name>.py and decorate it with
    `@register` (see pipeline/archs/__init__.py for the whole guide). Class attributes:

    - name: the value of `model.arch`; description: one line for listings;
    - consumes: "noise" (learns the paintings alone and draws from random vectors) or "photos"
      (learns from photos and paintings and translates each photo into a painting);
    - Options: a dataclass of the architecture's own config keys, the section [<name>]; None if none.
    """

    name: str = ""
    description: str = ""
    consumes: str = "noise"
    Options: type | None = None

    def check(self, cfg) -> None:
        """Refuse settings this architecture cannot honour (raise PainterError naming the key)."""

    def trainer(self, cfg, data: dict[str, torch.Tensor], device: torch.device, process: Process) -> "Trainer":
        raise NotImplementedError

    def generator_spec(self, cfg) -> dict:
        """The keyword values build_generator needs; generator.pt stores them beside the weights."""
        raise NotImplementedError

    def build_generator(self, resolution: int, spec: dict) -> nn.Module:
        raise NotImplementedError

    def inputs(self, count: int, seed: int, spec: dict, photos: torch.Tensor | None = None):
        """What image i of a generated set is made from (noise.NoiseInputs or photos.PhotoInputs)."""
        raise NotImplementedError

    def finalize(self, generator: nn.Module, spec: dict, seed: int) -> None:
        """Ready a generator copy for eval-mode generation (the noise family re-estimates batch norm)."""

    def images_per_step(self, cfg, step: int) -> int:
        """Real paintings the painting discriminator sees in generator step `step` (sweep budgets)."""
        return cfg.train.batch_size

    def generator_file(self, cfg, resolution: int, generator: nn.Module) -> dict:
        """What generator.pt and best.pt hold: enough to rebuild the generator without the config."""
        return {"arch": self.name, "consumes": self.consumes, "resolution": resolution,
                "spec": self.generator_spec(cfg), "ema": cfg.train.ema_decay > 0,
                "state_dict": generator.state_dict()}

    def load_generator(self, saved: dict) -> nn.Module:
        generator = self.build_generator(saved["resolution"], saved["spec"])
        generator.load_state_dict(saved["state_dict"])
        return generator


def require_train_defaults(arch: str, defaults: dict[str, Any], cfg, because: str) -> None:
    """Refuse a [train] key set away from its default, for an architecture that has no use for it."""
    for key, default in defaults.items():
        value = getattr(cfg.train, key)
        if value != default:
            raise PainterError(f"config key train.{key} = {value!r} {because}; {arch} needs {default!r}")


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """No parameter gradients for `modules` inside (the generator's step through a discriminator)."""
    for module in modules:
        module.requires_grad_(False)
    try:
        yield
    finally:
        for module in modules:
            module.requires_grad_(True)


class Trainer:
    """Networks, optimisers, loss scalers and random streams of one run; state_dict() is the whole checkpoint.

    An architecture's trainer subclasses this, builds its networks in `build()` (registering them with
    `network`, `optimizer`), and implements `step(step)`: one generator step with its discriminator
    steps, returning device tensors (no host sync) with at least `loss_d`, `loss_g` and `images`.
    `self.g` is the generator that makes paintings: the EMA follows it and samples come from it.
    """

    columns = ["loss_d", "loss_g", "d_real", "d_fake"]  # what log_row puts in metrics.csv, in this order
    divergence_hint = "Lower train.lr_g/lr_d"  # what to try when a loss becomes NaN

    def __init__(self, arch: Architecture, cfg, data: dict[str, torch.Tensor], device: torch.device,
                 process: Process):
        tc = cfg.train
        self.arch, self.cfg, self.tc, self.data, self.device, self.process = arch, cfg, tc, data, device, process
        self.resolution = data["paintings"].shape[-1]
        self.memory_format = torch.channels_last if device.type == "cuda" and tc.channels_last \
            else torch.contiguous_format
        torch.manual_seed(tc.seed + process.rank)  # augmentation RNG; each rank its own
        self.sampler = torch.Generator(device=device).manual_seed(tc.seed + 7919 * process.rank)
        self.policy = parse_policy(tc.diffaugment)
        # bf16 needs no loss scaling; fp16 (e.g. Kaggle's T4) does. CPUs without native bf16 stay in fp32.
        self.amp_dtype = autocast_dtype(device) if tc.amp else None
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.g: nn.Module
        self.ema: nn.Module | None = None
        self.build()

    # ---- for build()

    def network(self, name: str, module: nn.Module) -> nn.Module:
        """Move `module` to the device, keep it in the checkpoint as `name`; returns it."""
        module.to(self.device, memory_format=self.memory_format)
        self.networks[name] = module
        return module

    def keep_ema(self) -> None:
        """An exponential moving average of self.g for samples and generation (train.ema_decay > 0)."""
        self.ema = copy.deepcopy(self.g).eval().requires_grad_(False) if self.tc.ema_decay > 0 else None

    def optimizer(self, name: str, parameters, lr: float) -> torch.optim.Optimizer:
        """train.optimizer over `parameters`, with its own loss scaler; both kept in the checkpoint."""
        if self.tc.optimizer == "rmsprop":
            opt = torch.optim.RMSprop(parameters, lr=lr)
        else:
            opt = torch.optim.Adam(parameters, lr=lr, betas=(self.tc.beta1, self.tc.beta2))
        self.optimizers[name] = opt
        self.scalers[name] = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        return opt

    def distributed(self, module: nn.Module, compile: bool = True) -> nn.Module:
        """What the training step calls: DDP across torchrun's processes, then torch.compile when asked."""
        run = module
        if self.process.world > 1:
            # No buffer broadcast before every forward: DDP would copy rank 0's buffers in place, and on
            # torch 2.10 (Kaggle's) that invalidates what an earlier forward saved for a backward spanning
            # both (the discriminator on real, then on fake: batch norm's running stats, the blur
            # filters). Without it DDP does not copy them at the start either, so that is done here:
            # spectral norm's vectors, drawn from each rank's seed, then stay equal (computed from equal
            # weights). Batch norm's running statistics become each rank's own; rank 0's are saved.
            run = DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda"
                                          else None, broadcast_buffers=False)
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)
        return torch.compile(run) if self.tc.compile and compile else run

    # ---- for step()

    def build(self) -> None:
        raise NotImplementedError

    def step(self, step: int) -> dict[str, Any]:
        raise NotImplementedError

    def samples(self) -> torch.Tensor:
        """A sample grid's images in [-1, 1] (EMA generator, fixed inputs)."""
        raise NotImplementedError

    def log_row(self, stats: dict) -> dict[str, float]:
        """The values of `columns` that `stats` (what step() returned) holds, for metrics.csv."""
        return {k: round(stats[k].item(), 5) for k in self.columns if k in stats}

    def autocast(self):
        # No weight cache: on torch <= 2.10 (Kaggle's) a module first run under no_grad inside the region
        # (CUT's NCE keys) cached casts without autograd history, and its later calls got no gradient.
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None,
                              cache_enabled=False)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        return diff_augment(images, self.policy)

    def real_batch(self, domain: str = "paintings", crop: int = 0) -> torch.Tensor:
        """A batch of one domain's images in [-1, 1], drawn on the device, optionally randomly
        cropped to `crop` pixels and mirrored (train.hflip)."""
        data = self.data[domain]
        idx = torch.randint(data.shape[0], (self.tc.batch_size,), generator=self.sampler, device=self.device)
        images = data[idx]
        if crop and crop < images.shape[-1]:
            images = random_crop(images, crop, self.sampler)
        real = images.float().div_(127.5).sub_(1.0)
        real = real.contiguous(memory_format=self.memory_format)
        return random_hflip(real) if self.tc.hflip else real

    def update(self, name: str, loss: torch.Tensor) -> None:
        """One optimiser step of `name` on `loss` (scaled when training in fp16)."""
        opt, scaler = self.optimizers[name], self.scalers[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def train_step(self, step: int) -> dict[str, Any]:
        stats = self.step(step)
        self.update_ema(step)
        return stats

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        if self.ema is None:
            return
        decay = min(self.tc.ema_decay, (1 + step) / (10 + step))  # short runs: don't stay near init
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.g.parameters()), 1 - decay)
        for ema_buffer, buffer in zip(self.ema.buffers(), self.g.buffers()):
            ema_buffer.copy_(buffer)  # batch-norm statistics follow the live generator

    @property
    def sampling_generator(self) -> nn.Module:
        return self.ema if self.ema is not None else self.g

    def with_sampling_generator(self, make: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """make(generator) in eval mode and without gradients, leaving the generator's mode as it was."""
        g = self.sampling_generator
        was_training = g.training
        g.eval()
        with torch.no_grad():
            images = make(g)
        g.train(was_training)
        return images

    # ---- the checkpoint

    def extra_state(self) -> dict:
        """Architecture state beyond networks and optimisers (e.g. CycleGAN's image pools)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def streams(self) -> dict:
        """What this process has of its own: its random streams and the architecture's extra state.
        Under torchrun each rank's differ (its own batches, noise, augmentations)."""
        state: dict[str, Any] = {"sampler": self.sampler.get_state(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        extra = self.extra_state()
        if extra:
            state["extra"] = extra
        return state

    def load_streams(self, state: dict) -> None:
        self.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.load_extra_state(state.get("extra", {}))

    def state_dict(self) -> dict:
        state: dict[str, Any] = {name: net.state_dict() for name, net in self.networks.items()}
        for name in self.optimizers:
            state[f"opt_{name}"] = self.optimizers[name].state_dict()
            state[f"scaler_{name}"] = self.scalers[name].state_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return {**state, **self.streams()}

    def load_state_dict(self, state: dict, streams: bool = True, scalers: bool = True) -> None:
        """streams=False keeps this process's own random streams and extra state (a rank under torchrun
        whose own were not saved); scalers=False its fresh loss scalers (a checkpoint of another precision)."""
        for name, net in self.networks.items():
            net.load_state_dict(state[name])
        for name in self.optimizers:
            self.optimizers[name].load_state_dict(state[f"opt_{name}"])
            if scalers:
                self.scalers[name].load_state_dict(state[f"scaler_{name}"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if streams:
            self.load_streams(state)


def random_crop(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random size x size window per image (uint8 or float), offsets drawn from `generator`."""
    n, _, h, w = images.shape
    top = torch.randint(h - size + 1, (n,), generator=generator, device=generator.device).to(images.device)
    left = torch.randint(w - size + 1, (n,), generator=generator, device=generator.device).to(images.device)
    rows = (top.view(n, 1) + torch.arange(size, device=images.device)).view(n, 1, size, 1)
    cols = (left.view(n, 1) + torch.arange(size, device=images.device)).view(n, 1, 1, size)
    c = images.shape[1]
    picked = images.gather(2, rows.expand(n, c, size, w))
    return picked.gather(3, cols.expand(n, c, size, size))
