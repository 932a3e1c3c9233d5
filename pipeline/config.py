"""Typed run configuration: TOML presets plus `--set section.key=value` overrides.

Every key is declared once, with its type and the values it may take, so a typo or an
out-of-range value fails before any work starts, with a message naming the key. The sections
shared by every run are declared here; each architecture declares its own keys (its `Options`,
the section named after it) in its module under pipeline/archs/.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PainterError
from .options import option

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (Kaggle's image at times): the same parser, packaged
    import tomli as tomllib


def _architecture_names() -> tuple[str, ...]:
    from . import archs  # here, not at the top: the architectures import torch

    return archs.names()


@dataclass
class RunConfig:
    name: str = option("", help="run folder under <workdir>/runs/; defaults to the config file's name")
    device: str = option("auto", help='"auto" (CUDA when available), "cpu", "cuda" or "cuda:N"')
    seeds: tuple[int, ...] = option((), min=0, help="train.seed values to train each as its own run, <name>-seed<K>; "
                                    "the leaderboard shows them as one row, their mean and spread (e.g. [0, 1, 2])")


@dataclass
class DataConfig:
    source: str = option("kaggle", help='"kaggle", "demo", or a folder holding monet_jpg/ (and photo_jpg/)')
    resolution: int = option(64, min=32, max=256, power_of_two=True, help="training resolution in pixels")
    demo_seed: int = option(0, min=0, help="seed of the procedural demo set")
    demo_paintings: int = option(300, min=1, max=100_000, help="paintings in the demo set")
    demo_photos: int = option(300, min=0, max=100_000, help="photos in the demo set")


@dataclass
class ModelConfig:
    arch: str = option("dcgan", choices=_architecture_names,
                       help="which GAN to train; its own keys, if any, are the section named after it")
    latent_dim: int = option(100, min=1, max=4096, help="size of the noise vector z")
    g_channels: int = option(64, min=4, max=1024, help="generator width (ngf in the DCGAN tutorial)")
    d_channels: int = option(64, min=4, max=1024, help="discriminator width (ndf)")


@dataclass
class TrainConfig:
    steps: int = option(5000, min=1, help="generator steps")
    batch_size: int = option(64, min=1, max=4096, help="images per step (per process under torchrun)")
    optimizer: str = option("adam", choices=("adam", "rmsprop"), help="rmsprop for the original WGAN")
    lr_g: float = option(2e-4, min=0.0, max=1.0)
    lr_d: float = option(2e-4, min=0.0, max=1.0)
    beta1: float = option(0.5, min=0.0, max=1.0, help="Adam's beta1")
    beta2: float = option(0.999, min=0.0, max=1.0, help="Adam's beta2")
    n_critic: int = option(1, min=1, max=100, help="discriminator steps per generator step")
    critic_warmup: bool = option(False, help="WGAN's schedule: 100 critic steps for the first 25 generator "
                                                "steps and every 500th")
    clip: float = option(0.0, min=0.0, help="clip critic weights to [-clip, clip] (WGAN: 0.01); 0 = off")
    gp_weight: float = option(0.0, min=0.0, help="gradient penalty weight lambda (WGAN-GP: 10); 0 = off")
    diffaugment: str = option("", help='DiffAugment policy for real and fake images, e.g. "color,translation,cutout"; "" = off')
    hflip: bool = option(True, help="randomly mirror real images left-right")
    ema_decay: float = option(0.999, min=0.0, max=0.99999, help="EMA of generator weights for samples and "
                                                                     "generation; 0 = off")
    amp: bool = option(True, help="mixed precision: bf16 on GPUs and CPUs that support it natively, "
                                  "fp16 with loss scaling on older GPUs; losses and penalty stay fp32")
    channels_last: bool = option(True, help="channels-last memory layout on CUDA")
    compile: bool = option(False, help="torch.compile the networks (slow start, faster steps on GPU)")
    seed: int = option(0, min=0)
    log_every: int = option(10, min=1, help="steps between rows of metrics.csv")
    sample_every: int = option(500, min=1, help="steps between sample grids")
    checkpoint_every: int = option(500, min=1, help="steps between resumable checkpoints")
    eval_every: int = option(500, min=0, help="steps between evaluations of the EMA generator (SWD; FID/KID too "
                                              "with local Inception weights); the best is kept as best.pt; 0 = off")
    eval_images: int = option(256, min=16, max=10_000, help="generated images (and paintings) per evaluation")
    max_minutes: float = option(0.0, min=0.0, help="stop training after this many minutes of training steps "
                                                   "(an equal wall-clock budget); 0 = only train.steps")
    tensorboard: bool = option(False, help="also write metrics.csv's rows and the sample grids as TensorBoard "
                                           "events in <run>/train/tensorboard/ (needs the tensorboard extra)")


@dataclass
class GenerateConfig:
    count: int = option(7000, min=0, max=100_000, help="images to write (Kaggle accepts 7,000-10,000); translation "
                        "architectures: 0 = one per photo, fewer = a seeded subset, more = mirrored photos fill up")
    seed: int = option(0, min=0)
    batch_size: int = option(250, min=1, max=10_000,
                             help="images per generator batch (a CPU: at most 16; halved if a GPU runs out of memory)")
    jpeg_quality: int = option(95, min=1, max=100)
    amp: bool = option(True, help="mixed precision as in training (bf16/fp16 on GPUs, bf16 on CPUs that have it)")
    checkpoint: str = option("best", choices=("best", "final"),
                             help="generator to use: the best evaluated one (when training evaluated), or the final")


@dataclass
class ScoreConfig:
    max_images: int = option(10_000, min=16, help="generated images scored (a random sample when fewer)")
    seed: int = option(0, min=0)
    splits: int = option(8, min=1, max=64, help="independent splits SWD is computed over: the score is their mean, "
                         "with its standard error (2 or more)")
    batch_size: int = option(200, min=1, max=4096, help="images per Inception batch (large batches keep a GPU busy)")
    inception: bool = option(True, help="compute FID/KID/MiFID when Inception weights can be had")


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    # Every architecture's own section ([cyclegan], [cut]...), keyed by its name, so one --set can serve
    # several architectures (a sweep's); only the configured one's counts (to_dict, fingerprints).
    arch_options: dict[str, Any] = field(default_factory=lambda: {name: options() for name, options
                                                                  in arch_sections().items()})

    @property
    def options(self):
        """The configured architecture's own keys (its Options dataclass), or None when it has none."""
        return self.arch_options.get(self.model.arch)

    def section(self, name: str) -> dict[str, Any]:
        target = self.arch_options[name] if name in self.arch_options else getattr(self, name)
        # lists as TOML and JSON give them back (run.seeds is a tuple, to be an immutable default)
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(target).items()}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every shared section, and the configured architecture's own one."""
        sections = {name: self.section(name) for name in SECTIONS}
        if self.options is not None:
            sections[self.model.arch] = self.section(self.model.arch)
        return sections

    def seed_runs(self) -> list["Config"]:
        """The runs this config names: itself, or with run.seeds one per seed, <name>-seed<K> with train.seed K."""
        runs = []
        for seed in self.run.seeds:
            one = copy.deepcopy(self)
            one.run.name, one.run.seeds, one.train.seed = f"{self.run.name}-seed{seed}", (), seed
            runs.append(one)
        return runs or [self]

    def to_toml(self) -> str:
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
            lines.append("")
        return "\n".join(lines)


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config) if f.name != "arch_options"}


def arch_sections() -> dict[str, type]:
    """{architecture name: its Options dataclass} for every architecture that has keys of its own."""
    from . import archs

    return {arch.name: arch.Options for arch in archs.all_architectures() if arch.Options is not None}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return repr(value)


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def _check_value(where: str, f: dataclasses.Field, value):
    if f.type == "tuple[int, ...]":  # a list of integers, each checked as an integer key
        if not isinstance(value, (list, tuple)):
            raise PainterError(f"config key {where}: expected a list of integers, e.g. [0, 1, 2], got {value!r}")
        if len(set(value)) != len(value):
            raise PainterError(f"config key {where}: {list(value)!r} repeats a value")
        item = dataclasses.field(metadata=f.metadata)  # the same bounds, for one integer
        item.type = "int"
        return tuple(_check_value(f"{where}[{i}]", item, v) for i, v in enumerate(value))
    tp = {"int": int, "float": float, "bool": bool, "str": str}[f.type]
    # bool is a subclass of int in Python: refuse `steps = true` explicitly.
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
        raise PainterError(f"config key {where}: expected {_type_name(tp)}, got {value!r}")
    meta = f.metadata
    choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
    if choices is not None and value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise PainterError(f"config key {where}: {value!r} is not allowed; choose one of {allowed}")
    lo, hi = meta["min"], meta["max"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
        raise PainterError(f"config key {where}: {value!r} is out of range; allowed {bounds}")
    if meta["power_of_two"] and value & (value - 1):
        raise PainterError(f"config key {where}: {value!r} must be a power of two (32, 64, 128 or 256)")
    return value


def _did_you_mean(name: str, choices, section: str | None = None) -> str:
    """ " (did you mean train.steps?)" for a near miss among `choices`, else ""."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {section + '.' if section else ''}{close[0]}?)" if close else ""


def _section(config: Config, section: str, origin: str):
    """The object holding a section's keys, or an error naming the sections."""
    if section not in SECTIONS and section not in config.arch_options:
        sections = [*SECTIONS, *config.arch_options]
        raise PainterError(f"{origin}: unknown config section [{section}]{_did_you_mean(section, sections)}; "
                           f"sections are {', '.join(sections)}")
    return config.arch_options[section] if section in config.arch_options else getattr(config, section)


def _field(target, section: str, key: str, origin: str) -> dataclasses.Field:
    fields = {f.name: f for f in dataclasses.fields(target)}
    if key not in fields:
        raise PainterError(f"{origin}: unknown config key {section}.{key}{_did_you_mean(key, fields, section)}; "
                           f"keys of [{section}] are {', '.join(fields)}")
    return fields[key]


def check_key(key: str, origin: str) -> None:
    """That `key` ("section.key") is a config key, else an error naming the nearest one."""
    section, _, name = key.partition(".")
    _field(_section(Config(), section, origin), section, name, origin)


def _apply(config: Config, values: dict, origin: str) -> None:
    for section, keys in values.items():
        target = _section(config, section, origin)
        if not isinstance(keys, dict):
            raise PainterError(f"{origin}: [{section}] must be a table of keys")
        for key, value in keys.items():
            setattr(target, key, _check_value(f"{section}.{key}", _field(target, section, key, origin), value))


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


def ignored_overrides(config: Config, overrides: tuple[str, ...] | list[str]) -> list[str]:
    """The --set keys of another architecture's section than the configured one: this run ignores them
    (a sweep over several architectures sets them on purpose)."""
    keys = [text.partition("=")[0].strip() for text in overrides]
    return [key for key in keys if key.partition(".")[0] in config.arch_options and
            key.partition(".")[0] != config.model.arch]


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
    from . import archs
    from .augment import parse_policy  # here, not at the top: it imports torch, which `painter --help` need not

    try:
        parse_policy(config.train.diffaugment)
    except ValueError as exc:
        raise PainterError(f"config key train.diffaugment: {exc}; or \"\" for none") from None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", config.run.name):
        raise PainterError(f"config key run.name: {config.run.name!r} must be a folder name "
                           "(letters, digits, '.', '_' or '-')")
    archs.get(config.model.arch).check(config)
    return config


def describe_keys(config: Config | None = None) -> str:
    """All keys with their values in `config` (without one, the defaults) and help, for `painter
    --help`-style listings; a value that is not the default says the default. Then the architectures."""
    from . import archs

    lines = []
    for section, factory in [*SECTIONS.items(), *arch_sections().items()]:
        if section not in SECTIONS:
            lines.append(f"# [{section}]: used when model.arch = {section!r}")
        current = None if config is None else \
            getattr(config, section) if section in SECTIONS else config.arch_options.get(section)
        for f in dataclasses.fields(factory()):
            value = f.default if current is None else getattr(current, f.name)
            notes = [f.metadata["help"]] if f.metadata["help"] else []
            if value != f.default:
                notes.append(f"default {toml_value(f.default)}")
            lines.append(f"{section}.{f.name} = {toml_value(value)}" + (f"  # {'; '.join(notes)}" if notes else ""))
    lines.append("\n# model.arch: what each architecture is and consumes")
    for arch in archs.all_architectures():
        lines.append(f"#   {arch.name:<9} ({'from noise' if arch.consumes == 'noise' else 'translates photos'}) "
                     f"{arch.description}")
    return "\n".join(lines)
