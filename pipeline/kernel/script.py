"""The kernel folder `painter kernel push` sends: kernels/train/'s script (the bootstrap that runs on
Kaggle) and kernel-metadata.json, rendered with the run's values; and the GPU choices behind --gpu."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from .. import kaggle_api
from ..artifacts import write_bytes_atomic
from ..errors import PainterError
from .wheels import REPO

TEMPLATE_DIR = REPO / "kernels" / "train"
SCRIPT_NAME = "painter_kernel.py"
METADATA_NAME = "kernel-metadata.json"
# machine_shape values the client passes through (kagglesdk documents NvidiaTeslaT4, NvidiaTeslaP100,
# Tpu1VmV38). Kaggle's "NvidiaTeslaT4" machine is its "GPU T4 x2" (a single T4 is not offered), so
# t4 and t4x2 ask for the same machine: t4 trains in one process, t4x2 in two under torchrun.
MACHINE_SHAPES = {"t4": "NvidiaTeslaT4", "t4x2": "NvidiaTeslaT4", "p100": "NvidiaTeslaP100"}
GPU_CHOICES = tuple(MACHINE_SHAPES)
# gan-getting-started submits the output of notebooks that finish within 5 hours (300 minutes); Kaggle
# ends any GPU session at 12. The kernel keeps training short enough to finish in its session.
SESSION_HOURS = 5.0
MAX_SESSION_HOURS = 12.0
WEEKLY_GPU_HOURS = 30.0  # about what Kaggle grants an account a week; 2 GPU sessions may run at once


def kernel_slug(run: str) -> str:
    """Kaggle-slug-safe: lowercase letters, digits and single dashes (what Kaggle makes of the title)."""
    return re.sub(r"[^a-z0-9]+", "-", f"painter-{run}".lower()).strip("-")


def kernel_title(run: str) -> str:
    """Kaggle derives the kernel's slug from its title: this one slugifies to kernel_slug(run)."""
    return f"painter {run}"


def _python_string(text: str) -> str:
    """A Python literal for `text`; several lines triple-quoted (readable on Kaggle) where that is exact."""
    literal = f"'''{text}'''"
    if "\n" in text and "\\" not in text and "'''" not in text and not text.endswith("'"):
        try:
            if ast.literal_eval(literal) == text:
                return literal
        except (SyntaxError, ValueError):
            pass
    return repr(text)


def render_script(template: str, values: dict[str, str | float]) -> str:
    """Replace the template's `NAME = ...` line of each value with the value as a Python literal."""
    for name, value in values.items():
        pattern = re.compile(rf"^{name} = .*$", re.MULTILINE)
        if len(pattern.findall(template)) != 1:
            raise PainterError(f"the kernel template {TEMPLATE_DIR / SCRIPT_NAME} must hold exactly one "
                               f"line `{name} = ...`")
        literal = _python_string(value) if isinstance(value, str) else repr(value)
        template = pattern.sub(lambda _: f"{name} = {literal}", template)
    return template


def _fill(value, fields: dict[str, str]):
    if isinstance(value, str):
        for name, text in fields.items():
            value = value.replace("{" + name + "}", text)
        if re.search(r"\{[a-z_]+\}", value):
            raise PainterError(f"the kernel template {TEMPLATE_DIR / METADATA_NAME} has an unknown field in {value!r}")
        return value
    if isinstance(value, list):
        return [_fill(v, fields) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, fields) for k, v in value.items()}
    return value


def render_kernel(folder: Path, *, user: str, run: str, gpu: str, config_toml: str, dataset: str,
                  hours: float = SESSION_HOURS) -> dict:
    """Write kernel-metadata.json and the script into `folder` from kernels/train/; returns the metadata."""
    if not (TEMPLATE_DIR / METADATA_NAME).is_file() or not (TEMPLATE_DIR / SCRIPT_NAME).is_file():
        raise PainterError(f"the kernel template is missing: expected {METADATA_NAME} and {SCRIPT_NAME} "
                           f"in {TEMPLATE_DIR}")
    fields = {"owner": user, "slug": kernel_slug(run), "title": kernel_title(run),
              "machine_shape": MACHINE_SHAPES[gpu], "dataset": dataset, "competition": kaggle_api.COMPETITION}
    metadata = _fill(json.loads((TEMPLATE_DIR / METADATA_NAME).read_text()), fields)
    script = render_script((TEMPLATE_DIR / SCRIPT_NAME).read_text(),
                           {"RUN_NAME": run, "GPU": gpu, "DATASET": dataset.split("/")[-1],
                            "COMPETITION": kaggle_api.COMPETITION, "CONFIG_TOML": config_toml,
                            "HOURS": float(hours)})
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / metadata["code_file"], script.encode())
    kaggle_api.write_metadata(folder / METADATA_NAME, metadata)
    return metadata

