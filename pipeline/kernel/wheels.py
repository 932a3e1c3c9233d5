"""The wheels a kernel installs: Kaggle's image has neither painter nor torch-fidelity, and the kernel
runs offline, so both go up with the weights dataset (dataset.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from ..layout import Workdir
from ..errors import PainterError

REPO = Path(__file__).resolve().parents[2]
FIXED_BUILD_TIME = "315532800"  # 1980-01-01: the same sources give the same wheel bytes (SOURCE_DATE_EPOCH)


def build_project_wheel(dest: Path, log: Callable[[str], None] = print) -> Path:
    """painter's own wheel, built locally (no network) from a clean copy of the sources, so nothing
    stale in a build/ folder gets in and the repository is left untouched."""
    if not (REPO / "pyproject.toml").is_file():
        raise PainterError(f"painter's sources are not at {REPO} (an installed copy?); build the wheels "
                           "elsewhere and pass them with --wheels DIR")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="painter-wheel-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.py", "setup.cfg"):
            if (REPO / name).is_file():
                shutil.copyfile(REPO / name, source / name)
        shutil.copytree(REPO / "pipeline", source / "pipeline",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        out = Path(tmp) / "out"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
             "-w", str(out), str(source)],
            capture_output=True, text=True, env=dict(os.environ, SOURCE_DATE_EPOCH=FIXED_BUILD_TIME))
        wheels = sorted(out.glob("painter-*.whl"))
        if done.returncode or not wheels:
            output = (done.stderr or done.stdout).strip()
            # The build uses this Python's setuptools (no network); before 70.1 it needs the wheel package.
            hint = ("\nThis Python's setuptools cannot build wheels by itself: "
                    f"{sys.executable} -m pip install 'setuptools>=70.1'" if "invalid command 'bdist_wheel'" in output else "")
            raise PainterError(f"building painter's wheel failed (pip exit code {done.returncode}):\n"
                               f"{output[-2000:]}{hint}")
        shutil.copyfile(wheels[0], dest / wheels[0].name)
    log(f"kernel: built {wheels[0].name}")
    return dest / wheels[0].name


def download_fidelity_wheel(dest: Path, log: Callable[[str], None] = print) -> Path:
    """torch-fidelity's wheel (pure Python), at the version installed here, from the package registry."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        wanted = version("torch-fidelity")
    except PackageNotFoundError:
        raise PainterError("torch-fidelity is not installed here; install painter's dependencies "
                           "(make setup) or pass the wheels with --wheels DIR") from None
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", f"torch-fidelity=={wanted}", "--no-deps",
         "--only-binary=:all:", "--quiet", "-d", str(dest)], capture_output=True, text=True)
    wheels = sorted(dest.glob("torch_fidelity-*.whl"))
    if done.returncode or not wheels:
        raise PainterError(
            f"could not download torch-fidelity {wanted}'s wheel from the package registry (pip exit code "
            f"{done.returncode}: {(done.stderr or done.stdout).strip()[-500:]}). Without network access, put "
            "painter's wheel (python -m pip wheel --no-deps -w DIR .) and torch-fidelity's in a folder and "
            "push with --wheels DIR")
    log(f"kernel: downloaded {wheels[0].name}")
    return wheels[0]


def collect_wheels(folder: Path) -> list[Path]:
    """The wheels in `folder`: exactly one of painter and one of torch-fidelity, plus any others."""
    wheels = sorted(Path(folder).glob("*.whl"))
    for prefix, what in (("painter-", "painter"), ("torch_fidelity-", "torch-fidelity")):
        found = [w for w in wheels if w.name.startswith(prefix)]
        if len(found) != 1:
            raise PainterError(f"{folder} holds {len(found)} {prefix}*.whl files; the kernel needs exactly one "
                               f"wheel of {what} there")
    return wheels


def prepare_wheels(wd: Workdir, wheels_dir: Path | None, log: Callable[[str], None]) -> list[Path]:
    if wheels_dir is not None:
        return collect_wheels(wheels_dir)
    dest = wd.kernels_root / "wheels"
    if dest.exists():
        shutil.rmtree(dest)  # a fresh set: an old painter wheel must not ride along
    build_project_wheel(dest, log)
    download_fidelity_wheel(dest, log)
    return collect_wheels(dest)

