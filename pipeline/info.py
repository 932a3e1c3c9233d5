"""`painter info`: what this machine offers painter: versions, devices, Inception weights, Kaggle credentials."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def report() -> list[tuple[str, str]]:
    """(topic, finding) rows; never raises for a missing piece, it says so instead."""
    import torch

    from .errors import PainterError
    from .kaggle_api import NO_CREDENTIALS, credential_sources
    from .metrics.inception import ENV_VAR, WEIGHTS_NAMES, find_weights
    from .devices import cpu_has_native_bf16, cuda_has_native_bf16

    rows = [("painter", _version("painter")), ("python", platform.python_version())]
    rows += [(name, _version(name)) for name in ("torch", "torchvision", "torch-fidelity", "kaggle")]

    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            arch = f"sm_{props.major}{props.minor}"
            try:  # a real kernel launch: the arch list alone misjudges (sm_86 code runs on an sm_89)
                (torch.ones(1, device=f"cuda:{i}") * 2).item()
                problem = ""
            except RuntimeError as exc:
                problem = (f" (NOT usable by this torch build, made for {torch.cuda.get_arch_list()}: "
                           f"{str(exc).strip().splitlines()[0]})")
            precision = "native bf16" if cuda_has_native_bf16(torch.device("cuda", i)) else \
                "no native bf16 (fp16 with loss scaling)"
            memory = f"{props.total_memory / 2**30:.0f} GiB"
            rows.append((f"cuda:{i}", f"{props.name}, {memory}, {arch}, {precision}{problem}"))
    else:
        rows.append(("cuda", "not available (training and scoring run on the CPU)"))
    rows.append(("cpu", f"{os.cpu_count()} cores, "
                        + ("native bf16 (mixed precision on)" if cpu_has_native_bf16() else "no native bf16 (fp32)")))

    try:
        weights = find_weights()
        rows.append(("inception weights",
                     f"{weights.path} (from {weights.origin}; size and sha256 checked)" if weights.path else
                     f"none local: torch-fidelity downloads {WEIGHTS_NAMES[0]} on first score (needs internet); "
                     f"offline, use --inception-weights PATH or {ENV_VAR}. SWD and the copy check need none."))
    except PainterError as exc:
        rows.append(("inception weights", f"PROBLEM: {exc}"))

    found = credential_sources()
    rows.append(("kaggle credentials", ", ".join(found) if found else NO_CREDENTIALS))
    return rows
