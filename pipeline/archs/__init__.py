"""The architecture registry: every GAN painter can train is one module of this package.

Config (`model.arch`, the architecture's own section), the CLI, the sweep, training, generation,
evaluation and the Kaggle kernel all ask this registry; none of them lists architectures.

Adding an architecture
----------------------
1. **The module**, `pipeline/archs/<name>.py`: a subclass of `base.Architecture` decorated with
   `@register`. It says what it consumes ("noise", or "photos" and paintings), declares its own
   config keys as a dataclass of `pipeline.options.option` fields (`Options`, the section `[<name>]`,
   listed by `painter config --keys` and validated like every other key), builds its `Trainer` (networks, optimisers, schedules, the
   training step and its losses; `base.Trainer` brings device placement, mixed precision, DDP, the
   EMA and the checkpoint), and says what its generator file holds (`generator_spec`,
   `build_generator`) and what each generated image is made from (`inputs`). Copy the closest
   existing module: `dcgan.py`/`wgan.py` for a noise GAN, `cut.py` for a translation one.
2. **Its preset**, `configs/<name>.toml`, with the paper's settings.
3. **Its tests**, `tests/test_arch_<name>.py`: losses on known values, a few training steps with
   finite losses, exact resume. `tests/test_train.py` (noise) and `tests/test_translation.py`
   (photos) already run every registered architecture of their family through training and the chain.

Nothing else: the module registers itself when the package is imported. The loop around the
trainer (`train.py`, with `checkpoint.py`, `stopping.py` and `train_log.py`) and where its files go
(`layout.py`) are the same for every architecture.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import PainterError
from .base import Architecture

_REGISTRY: dict[str, Architecture] = {}
_loaded = False


def register(cls: type[Architecture]) -> type[Architecture]:
    """Class decorator: make `cls` available as `model.arch = cls.name`."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"architecture name {cls.name!r} is empty or registered twice")
    if cls.consumes not in ("noise", "photos"):
        raise ValueError(f"{cls.name}: consumes must be 'noise' or 'photos', not {cls.consumes!r}")
    _REGISTRY[cls.name] = cls()
    return cls


def _load() -> dict[str, Architecture]:
    """Import every module of the package once; architecture modules register themselves, shared
    building blocks (base, nets, translation) register nothing."""
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return _REGISTRY


def names() -> tuple[str, ...]:
    """Every architecture: the from-noise family first, then translation; alphabetical within each."""
    return tuple(sorted(_load(), key=lambda name: (_REGISTRY[name].consumes != "noise", name)))


def get(name: str) -> Architecture:
    try:
        return _load()[name]
    except KeyError:
        raise PainterError(f"unknown architecture {name!r}; choose one of {', '.join(names())}") from None


def all_architectures() -> list[Architecture]:
    return [get(name) for name in names()]
