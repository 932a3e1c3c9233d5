"""Typed run configuration: TOML presets plus `--set section.key=value` overrides.

Every key is declared once here, with its type and the values it may take, so a typo or an
out-of-range value fails before any work starts, with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PainterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (Kaggle's image at times): the same parser, packaged
    import tomli as tomllib


def _spec(default, *, choices=None, min=None, max=None, power_of_two=False, help=""):
    return field(default=default, metadata=dict(choices=choices, min=min, max=max,
                                                power_of_two=power_of_two, help=help))


@dataclass
class RunConfig:
    name: str = _spec("", help="run folder under <workdir>/runs/; defaults to the config file's name")
    device: str = _spec("auto", help='"auto" (CUDA when available), "cpu", "cuda" or "cuda:N"')


@dataclass
class DataConfig:
    source: str = _spec("kaggle", help='"kaggle", "demo", or a folder holding monet_jpg/ (and photo_jpg/)')
    resolution: int = _spec(64, min=32, max=256, power_of_two=True, help="training resolution in pixels")
    demo_seed: int = _spec(0, min=0, help="seed of the procedural demo set")
    demo_paintings: int = _spec(300, min=1, max=100_000, help="paintings in the demo set")
    demo_photos: int = _spec(300, min=0, max=100_000, help="photos in the demo set")


@dataclass
class ModelConfig:
    arch: str = _spec("dcgan", choices=("dcgan", "wgan", "wgan-gp", "sngan"),
                      help="loss and critic: dcgan (BCE), wgan (clipping), wgan-gp (penalty), sngan (hinge)")
    latent_dim: int = _spec(100, min=1, max=4096, help="size of the noise vector z")
    g_channels: int = _spec(64, min=4, max=1024, help="generator width (ngf in the DCGAN tutorial)")
    d_channels: int = _spec(64, min=4, max=1024, help="discriminator width (ndf)")


@dataclass
class TrainConfig:
    steps: int = _spec(5000, min=1, help="generator steps")
    batch_size: int = _spec(64, min=1, max=4096, help="images per step (per process under torchrun)")
    optimizer: str = _spec("adam", choices=("adam", "rmsprop"), help="rmsprop for the original WGAN")
    lr_g: float = _spec(2e-4, min=0.0, max=1.0)
    lr_d: float = _spec(2e-4, min=0.0, max=1.0)
    beta1: float = _spec(0.5, min=0.0, max=1.0, help="Adam's beta1")
    beta2: float = _spec(0.999, min=0.0, max=1.0, help="Adam's beta2")
    n_critic: int = _spec(1, min=1, max=100, help="discriminator steps per generator step")
    critic_warmup: bool = _spec(False, help="WGAN's schedule: 100 critic steps for the first 25 generator "
                                               "steps and every 500th")
    clip: float = _spec(0.0, min=0.0, help="clip critic weights to [-clip, clip] (WGAN: 0.01); 0 = off")
    gp_weight: float = _spec(0.0, min=0.0, help="gradient penalty weight lambda (WGAN-GP: 10); 0 = off")
    diffaugment: str = _spec("", help='DiffAugment policy for real and fake images, e.g. "color,translation,cutout"; "" = off')
    hflip: bool = _spec(True, help="randomly mirror real images left-right")
    ema_decay: float = _spec(0.999, min=0.0, max=0.99999, help="EMA of generator weights for samples and "
                                                                    "generation; 0 = off")
    amp: bool = _spec(True, help="mixed precision: bf16 on GPUs and CPUs that support it natively, "
                                 "fp16 with loss scaling on older GPUs; losses and penalty stay fp32")
    channels_last: bool = _spec(True, help="channels-last memory layout on CUDA")
    compile: bool = _spec(False, help="torch.compile the networks (slow start, faster steps on GPU)")
    seed: int = _spec(0, min=0)
    log_every: int = _spec(10, min=1, help="steps between rows of metrics.csv")
    sample_every: int = _spec(500, min=1, help="steps between sample grids")
    checkpoint_every: int = _spec(500, min=1, help="steps between resumable checkpoints")
    eval_every: int = _spec(500, min=0, help="steps between evaluations of the EMA generator (SWD; FID/KID too "
                                             "with local Inception weights); the best is kept as best.pt; 0 = off")
    eval_images: int = _spec(256, min=16, max=10_000, help="generated images (and paintings) per evaluation")
    max_minutes: float = _spec(0.0, min=0.0, help="stop training after this many minutes of training steps "
                                                  "(an equal wall-clock budget); 0 = only train.steps")


@dataclass
class GenerateConfig:
    count: int = _spec(7000, min=1, max=100_000, help="images to write (Kaggle accepts 7,000-10,000)")
    seed: int = _spec(0, min=0)
    batch_size: int = _spec(250, min=1, max=10_000)
    jpeg_quality: int = _spec(95, min=1, max=100)
    amp: bool = _spec(True, help="mixed precision as in training (bf16/fp16 on GPUs, bf16 on CPUs that have it)")
    checkpoint: str = _spec("best", choices=("best", "final"),
                            help="generator to use: the best evaluated one (when training evaluated), or the final")


@dataclass
class ScoreConfig:
    max_images: int = _spec(10_000, min=16, help="generated images scored (a random sample when fewer)")
    seed: int = _spec(0, min=0)
    batch_size: int = _spec(200, min=1, max=4096, help="images per Inception batch (large batches keep a GPU busy)")
    inception: bool = _spec(True, help="compute FID/KID/MiFID when Inception weights can be had")


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def section(self, name: str) -> dict[str, Any]:
        return dataclasses.asdict(getattr(self, name))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
            lines.append("")
        return "\n".join(lines)


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config)}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def _check_value(where: str, f: dataclasses.Field, value):
    tp = {"int": int, "float": float, "bool": bool, "str": str}[f.type]
    # bool is a subclass of int in Python: refuse `steps = true` explicitly.
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
        raise PainterError(f"config key {where}: expected {_type_name(tp)}, got {value!r}")
    meta = f.metadata
    if meta["choices"] is not None and value not in meta["choices"]:
        allowed = ", ".join(repr(c) for c in meta["choices"])
        raise PainterError(f"config key {where}: {value!r} is not allowed; choose one of {allowed}")
    lo, hi = meta["min"], meta["max"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
        raise PainterError(f"config key {where}: {value!r} is out of range; allowed {bounds}")
    if meta["power_of_two"] and value & (value - 1):
        raise PainterError(f"config key {where}: {value!r} must be a power of two (32, 64, 128 or 256)")
    return value


def _apply(config: Config, values: dict, origin: str) -> None:
    for section, keys in values.items():
        if section not in SECTIONS:
            raise PainterError(f"{origin}: unknown config section [{section}]; "
                               f"sections are {', '.join(SECTIONS)}")
        if not isinstance(keys, dict):
            raise PainterError(f"{origin}: [{section}] must be a table of keys")
        target = getattr(config, section)
        fields = {f.name: f for f in dataclasses.fields(target)}
        for key, value in keys.items():
            if key not in fields:
                raise PainterError(f"{origin}: unknown config key {section}.{key}; "
                                   f"keys of [{section}] are {', '.join(fields)}")
            setattr(target, key, _check_value(f"{section}.{key}", fields[key], value))


def parse_override(text: str) -> dict:
    """`train.steps=200` -> {"train": {"steps": 200}}. Values use TOML syntax; a bare word is a string."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise PainterError(f"--set {text!r}: expected section.key=value, e.g. --set train.steps=200")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # e.g. --set data.source=../shared/data
    return {section: {name: value}}


def load_config(path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    config = Config()
    if path is not None:
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise PainterError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise PainterError(f"config file {path} is not valid TOML: {exc}") from None
        _apply(config, values, str(path))
    for text in overrides:
        _apply(config, parse_override(text), f"--set {text}")
    if not config.run.name:
        config.run.name = Path(path).stem if path is not None else config.model.arch
    from .augment import parse_policy  # here, not at the top: it imports torch, which `painter --help` need not

    try:
        parse_policy(config.train.diffaugment)
    except ValueError as exc:
        raise PainterError(f"config key train.diffaugment: {exc}; or \"\" for none") from None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", config.run.name):
        raise PainterError(f"config key run.name: {config.run.name!r} must be a folder name "
                           "(letters, digits, '.', '_' or '-')")
    return config


def describe_keys() -> str:
    """All keys with defaults and help, for `painter --help`-style listings."""
    lines = []
    for section, factory in SECTIONS.items():
        for f in dataclasses.fields(factory()):
            lines.append(f"{section}.{f.name} = {_toml_value(f.default)}"
                         + (f"  # {f.metadata['help']}" if f.metadata["help"] else ""))
    return "\n".join(lines)
