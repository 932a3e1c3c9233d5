"""painter on Kaggle: the bootstrap of the kernel that runs the whole chain (prepare -> submit).

`painter kernel push` renders this template (the values below the "filled in" line) and pushes it
as a private script kernel, with the competition's data and the user's private `painter-wheels`
dataset (painter's wheel, torch-fidelity's wheel, the Inception weights when they were available)
attached. The kernel runs offline. This script does only what must happen before painter can be
imported:

1. checks the GPU within seconds: a GPU this PyTorch has no kernels for (the P100, sm_60, with
   Kaggle's current image) or no GPU at all stops the kernel at once with what to do;
2. finds the inputs (the wheels dataset, the competition's data) and installs the wheels with
   `pip install --no-index --no-deps` (Kaggle's torch is never touched), then checks that painter's
   other dependencies are there;
3. hands over to painter's kernel session (`python -m pipeline.kernel.session`, in
   pipeline/kernel/session.py) with a deadline inside the session's limit (HOURS, from
   `painter kernel push --hours`): it runs the chain in a temporary workdir (with --gpu t4x2,
   training under torchrun, one process per GPU) and leaves in /kaggle/working images.zip (the
   submission Kaggle scores), what the run folder hands on by its own names (score.json, the plots,
   metrics.csv, train-summary.json, the grids along training in samples/) and kernel-run.json.

Every /kaggle path derives from $PAINTER_KAGGLE_ROOT (default /kaggle), so the script also runs
locally on a fake tree; PAINTER_KERNEL_SKIP_INSTALL=1 skips the pip step when painter is already
importable, PAINTER_KERNEL_WORKDIR picks the workdir.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ---- filled in by `painter kernel push` (one line each; the template runs as is in tests) ----
RUN_NAME = "dcgan"
GPU = "t4"
DATASET = "painter-wheels"
COMPETITION = ""
CONFIG_TOML = ""
HOURS = 5.0
# ---- end of the values filled in ----

# Kaggle's image has these; painter's wheel is installed without its dependencies, so check them.
NEEDED_MODULES = ("torch", "torchvision", "numpy", "PIL", "tqdm", "click", "matplotlib", "requests")
SPARE = (0.1, 600.0)  # of the session, kept unused: this fraction of it, at most these seconds


class Stop(Exception):
    """A failure the log should state in one message; the kernel then ends in error."""


def kaggle_root() -> Path:
    return Path(os.environ.get("PAINTER_KAGGLE_ROOT", "/kaggle"))


def log(message: str) -> None:
    print(f"painter kernel: {message}", flush=True)


# ------------------------------------------------------------------ GPU check

def processes(gpu: str) -> int:
    """How many GPUs, one training process each, the --gpu choice asks for: t4x2 both of the T4 machine's."""
    return 2 if gpu == "t4x2" else 1


def arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a PyTorch built for `arch_list` (torch.cuda.get_arch_list()) runs on a GPU of
    `capability`: a cubin sm_XY runs on the same major version with an equal or higher minor,
    and PTX (compute_XY) is compiled for any newer GPU."""
    major, minor = capability
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+?)(\d)[a-z]?", arch)
        if not match:
            continue
        kind, arch_major, arch_minor = match.group(1), int(match.group(2)), int(match.group(3))
        if kind == "sm" and arch_major == major and arch_minor <= minor:
            return True
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return True
    return False


def _probe(index: int) -> None:
    import torch

    torch.ones(8, device=f"cuda:{index}").mul(2).sum().item()


def check_gpu(gpu: str, device: str = "auto", cuda=None, probe=None) -> str:
    """Stop at once (Stop) when the run cannot use the GPUs it was pushed for; else describe them.

    `cuda` (torch.cuda) and `probe` (a first real CUDA operation on device i) are parameters so
    tests can stand in for a GPU."""
    if device == "cpu":
        return "run.device = \"cpu\": running on the CPU, GPUs unused (slow)"
    if cuda is None:
        import torch
        cuda = torch.cuda
    probe = probe or _probe
    torch_version = getattr(sys.modules.get("torch"), "__version__", "?")
    if not cuda.is_available():
        raise Stop("no GPU is visible to PyTorch: was the kernel's GPU accelerator off? Push it again with "
                   "`painter kernel push --gpu t4`, or set run.device = \"cpu\" to run on the CPU anyway "
                   "(hours for the real data)")
    count = cuda.device_count()
    if count < processes(gpu):  # only t4x2 asks for more than one
        raise Stop(f"--gpu {gpu} trains on two GPUs but this session has {count}; push again with "
                   "`painter kernel push --gpu t4`")
    arch_list = list(cuda.get_arch_list())
    found = []
    for index in range(count):
        name = cuda.get_device_name(index)
        major, minor = cuda.get_device_capability(index)
        if not arch_supported((major, minor), arch_list):
            raise Stop(f"GPU {index} ({name}, sm_{major}{minor}) is not supported by this PyTorch {torch_version}, "
                       f"built for {', '.join(arch_list) or 'no GPU architecture'}: every CUDA operation would "
                       f"fail. Kaggle's current image has no kernels for the P100 (sm_60): push again with "
                       "`painter kernel push --gpu t4`")
        try:
            probe(index)
        except Exception as exc:  # noqa: BLE001 - any failure here would end the run later anyway
            raise Stop(f"a first CUDA operation on GPU {index} ({name}, sm_{major}{minor}) failed "
                       f"({type(exc).__name__}: {exc}); push again with `painter kernel push --gpu t4`") from None
        found.append(f"{name} (sm_{major}{minor})")
    return f"{count} GPU(s): {', '.join(found)}; PyTorch {torch_version} supports them"


# ------------------------------------------------------------------ inputs and installation

def find_input(pattern: str, prefer: str, what: str, hint: str) -> Path:
    """The folder under <root>/input holding `pattern`, a few levels deep (Kaggle mounts an input at
    /kaggle/input/<slug>/, some images deeper); the one whose path names `prefer` wins."""
    inputs = kaggle_root() / "input"
    hits = set()
    for depth in range(1, 4):
        hits.update(path.parent for path in inputs.glob("/".join(["*"] * depth + [pattern])))
    if not hits:
        raise Stop(f"{what} is not attached: nothing matches {pattern} under {inputs}. {hint}")
    return sorted(hits, key=lambda p: (prefer not in str(p), len(p.parts), str(p)))[0]


def install_wheels(folder: Path) -> list[str]:
    wheels = sorted(folder.glob("*.whl"))
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
               *[str(w) for w in wheels]]
    done = subprocess.run(command)
    if done.returncode:
        raise Stop(f"installing the wheels from {folder} failed (pip exit code {done.returncode}, "
                   "messages above); push again so a fresh painter-wheels version is uploaded")
    importlib.invalidate_caches()
    return [w.name for w in wheels]


def check_modules() -> None:
    needed = list(NEEDED_MODULES) + ["pipeline", "torch_fidelity"]
    if sys.version_info < (3, 11):
        needed.append("tomli")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise Stop(f"this image lacks {', '.join(missing)}, which painter needs; the kernel runs offline, so "
                   "put their wheels in the folder given to `painter kernel push --wheels DIR` and push again")


def config_value(section: str, key: str, default):
    try:
        import tomllib
    except ImportError:  # Python 3.10: check_modules() names tomli if it is missing
        try:
            import tomli as tomllib
        except ImportError:
            return default
    return tomllib.loads(CONFIG_TOML).get(section, {}).get(key, default) if CONFIG_TOML else default


def deadline(started: float) -> float:
    """When the chain must be done: the session's end less a spare for Kaggle's own start and end."""
    session = HOURS * 3600
    return started + session - min(SPARE[0] * session, SPARE[1])


def main() -> int:
    started = time.time()
    until = deadline(started)
    log(f"run {RUN_NAME}, --gpu {GPU}, Python {platform.python_version()}, root {kaggle_root()}; the session "
        f"lasts {HOURS:g} h: the chain ends by {time.strftime('%H:%M', time.localtime(until))}")
    try:
        if not CONFIG_TOML:
            raise Stop("no config embedded: this is the template; `painter kernel push` renders it")
        log(check_gpu(GPU, config_value("run", "device", "auto")))

        wheels = find_input("painter-*.whl", DATASET, f"the {DATASET} dataset",
                            "Push again with `painter kernel push`: it uploads the dataset and attaches it.")
        if os.environ.get("PAINTER_KERNEL_SKIP_INSTALL") == "1":
            log("PAINTER_KERNEL_SKIP_INSTALL=1: using the painter already importable")
        else:
            log(f"installed {', '.join(install_wheels(wheels))} from {wheels}")
        check_modules()
        data = find_input("monet_jpg", COMPETITION, "the competition's data",
                          f"The kernel lists {COMPETITION} in competition_sources; accept the competition's "
                          f"rules at https://www.kaggle.com/competitions/{COMPETITION}/rules and push again.")
    except Stop as exc:
        print(f"painter kernel: STOPPED: {exc}", file=sys.stderr, flush=True)
        return 1

    base = Path(os.environ.get("PAINTER_KERNEL_WORKDIR") or tempfile.mkdtemp(prefix="painter-"))
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.toml").write_text(CONFIG_TOML)
    # From `base`, so no stray file lands in /kaggle/working (the output).
    command = [sys.executable, "-m", "pipeline.kernel.session", str(base), "--data", str(data),
               "--inputs", str(wheels), "--output", str(kaggle_root() / "working"), "--gpu", GPU,
               "--nproc", str(processes(GPU)), "--hours", str(HOURS), "--started", str(started),
               "--until", str(until)]
    log("$ " + " ".join(command[1:]))
    return subprocess.run(command, cwd=base).returncode


if __name__ == "__main__":
    sys.exit(main())
