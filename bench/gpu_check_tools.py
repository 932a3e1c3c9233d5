"""The Python half of bench/gpu_check.sh: what is awkward in bash. Standard library only, so that it
runs under the machine's own Python before (and whether or not) painter's environment installs.

    python bench/gpu_check_tools.py tiny-data DIR          # a tiny competition-layout data set (dry run)
    python bench/gpu_check_tools.py data-info DIR JSON     # count the paintings and photos
    python bench/gpu_check_tools.py pick-wheels JSON DIR...  # which wheels this environment lacks (one per line)
    python bench/gpu_check_tools.py env-report VENV JSON   # versions, the GPU, painter's requirements
    python bench/gpu_check_tools.py key PHASE OUT          # one phase's headline number
    python bench/gpu_check_tools.py summary OUT PHASES_TSV BUDGET DRY_RUN SECONDS  # summary.json, the table
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

# Never installed from the wheels folder: the GPU machine's own builds are what is being checked, and
# a wheel of these (torch especially) would shadow them with one that may not match its driver.
MACHINE_OWNED = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# data


def tiny_data(folder: Path, paintings: int = 8, photos: int = 4) -> None:
    """256 px JPEGs in the competition's layout: smooth colour fields, different per image, so that
    every stage (prepare, SWD, the Inception features) sees real variety. Only PIL and numpy."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, 1.0, 256)
    for sub, count in (("monet_jpg", paintings), ("photo_jpg", photos)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a, b, c = rng.uniform(0.5, 6.0, 3)
            phase = rng.uniform(0, 6.3, 3)
            y, x = np.meshgrid(ramp, ramp, indexing="ij")
            channels = [np.sin(a * x * 6 + b * y * 3 + phase[k] + k) * 0.5 + 0.5 for k in range(3)]
            pixels = (np.stack(channels, -1) * 200 + rng.uniform(0, 55, (256, 256, 3))).astype(np.uint8)
            Image.fromarray(pixels).save(folder / sub / f"{sub[:5]}{i:04d}.jpg", quality=90)


def data_info(folder: Path, out: Path) -> None:
    counts = {sub: len([p for p in (folder / sub).glob("*.jpg")]) if (folder / sub).is_dir() else 0
              for sub in ("monet_jpg", "photo_jpg")}
    write_json(out, {"folder": str(folder), "paintings": counts["monet_jpg"], "photos": counts["photo_jpg"]})
    print(f"data: {folder}: {counts['monet_jpg']} paintings, {counts['photo_jpg']} photos")
    if not counts["monet_jpg"] or not counts["photo_jpg"]:
        raise SystemExit(f"data: {folder} needs monet_jpg/*.jpg and photo_jpg/*.jpg (the competition's layout)")


# ---------------------------------------------------------------------------------------------
# install


def wheel_name(path: Path) -> tuple[str, str]:
    """(normalised distribution name, version) from a wheel's file name (PEP 427)."""
    parts = path.name[:-len(".whl")].split("-")
    if len(parts) < 5:
        raise SystemExit(f"install: {path.name} is not a wheel file name")
    return normalize(parts[0]), parts[1]


def parse_version(text: str):
    try:
        from packaging.version import Version
    except ImportError:  # pip's copy is always there where pip is
        from pip._vendor.packaging.version import Version
    return Version(text)


def pick_wheels(out: Path, folders: list[Path]) -> None:
    """Print the wheels to install: those whose distribution this Python cannot already see. The
    machine's packages stay as they are, and torch & co. are never taken from the folders."""
    have = {normalize(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}
    wheels = sorted(path for folder in folders if folder.is_dir() for path in folder.glob("*.whl"))
    newest = {}  # two versions of one package would stop pip: the newest is installed
    for path in wheels:
        name, version = wheel_name(path)
        if name not in newest or parse_version(version) > parse_version(wheel_name(newest[name])[1]):
            newest[name] = path
    decisions = []
    for path in wheels:
        name, version = wheel_name(path)
        if newest[name] != path:
            decisions.append({"wheel": path.name, "action": "skipped", "why": f"{newest[name].name} is newer"})
        elif MACHINE_OWNED.match(name):
            decisions.append({"wheel": path.name, "action": "refused", "why": "the machine's own build is used"})
        elif name in have:
            decisions.append({"wheel": path.name, "action": "skipped", "why": f"the machine has {name} {have[name]}"})
        else:
            decisions.append({"wheel": path.name, "action": "install"})
            print(path)
    write_json(out, {"wheels_folders": [str(folder) for folder in folders], "wheels": decisions})
    for d in decisions:
        print(f"install: {d['action']:8} {d['wheel']}" + (f" ({d['why']})" if "why" in d else ""), file=sys.stderr)


def env_report(venv: Path, out: Path) -> None:
    """Versions and devices of the environment painter now runs in; fails when torch came from the
    virtualenv (it must be the machine's) or painter's own requirements are not met."""
    import platform

    import torch

    from pipeline.devices import cuda_has_native_bf16

    problems = []
    torch_file = Path(torch.__file__).resolve()
    if venv.resolve() in torch_file.parents:
        problems.append(f"torch was installed into the virtualenv ({torch_file}); it must be the machine's")
    versions = {}
    for name in ("painter", "torch", "torchvision", "torch-fidelity", "kaggle", "pytest", "numpy", "pillow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    missing = unmet_requirements("painter")
    if missing:
        problems.append("painter's requirements not met: " + "; ".join(missing))
    report = {"python": platform.python_version(), "versions": versions, "torch_file": str(torch_file),
              "cuda_build": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
              "cuda_available": torch.cuda.is_available(), "problems": problems}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        report["gpu"] = {"name": props.name, "count": torch.cuda.device_count(),
                         "memory_gib": round(props.total_memory / 2 ** 30, 1),
                         "capability": f"sm_{props.major}{props.minor}",
                         "arch_supported": f"sm_{props.major}{props.minor}" in torch.cuda.get_arch_list(),
                         "bf16_native": cuda_has_native_bf16(torch.device("cuda", 0))}
    write_json(out, report)
    print(f"python {report['python']}, torch {versions['torch']} (CUDA build {report['cuda_build']}, "
          f"cuDNN {report['cudnn']}), torchvision {versions['torchvision']}, "
          f"torch-fidelity {versions['torch-fidelity']}, painter {versions['painter']}")
    print(f"torch from {torch_file.parent}")
    gpu = report.get("gpu")
    print(f"GPU: {gpu['name']} x{gpu['count']}, {gpu['memory_gib']} GiB, {gpu['capability']}, "
          f"native bf16 {gpu['bf16_native']}" if gpu else "GPU: none (CUDA not available)")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if problems:
        raise SystemExit(1)


def unmet_requirements(dist: str) -> list[str]:
    """Requirements of `dist` (no extras) that no installed distribution satisfies, by name and, where
    `packaging` is at hand, by version."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip's copy is always there where pip is
        from pip._vendor.packaging.requirements import Requirement
    unmet = []
    for text in metadata.requires(dist) or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{req.name} missing")
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{req.name} {version} does not satisfy {req.specifier}")
    return unmet


# ---------------------------------------------------------------------------------------------
# the headline number of each phase


def key_number(phase: str, out: Path) -> str:
    try:
        return KEYS[phase](out)
    except Exception:  # noqa: BLE001 - a missing or odd file (a phase that failed): never stop the report
        return "-"


def _key_data(out: Path) -> str:
    info = json.loads((out / "data.json").read_text())
    return f"{info['paintings']} paintings, {info['photos']} photos"


def _key_install(out: Path) -> str:
    env = json.loads((out / "install.json").read_text())
    gpu = env.get("gpu")
    return f"torch {env['versions']['torch']}, CUDA {env['cuda_build']}, " + (gpu["name"] if gpu else "no GPU")


def _key_tests(out: Path) -> str:
    root = ET.parse(out / "tests.xml").getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return f"{passed} passed, {total['failures'] + total['errors']} failed, {total['skipped']} skipped"


def _cases(out: Path, name: str) -> list[dict]:
    return json.loads((out / f"{name}.json").read_text())["cases"]


def _key_train_throughput(out: Path) -> str:
    return ", ".join(f"{c['resolution']}px {c['ratio']:.2f}x ({c['painter_img_per_s']:.0f} img/s)"
                     for c in _cases(out, "train_throughput"))


def _key_cyclegan_throughput(out: Path) -> str:
    c = _cases(out, "cyclegan_throughput")[-1]
    mfu = "" if c.get("painter_mfu") is None else \
        f", MFU {100 * c['painter_mfu']:.1f}% (reference {100 * c['reference_mfu']:.1f}%)"
    return f"{c['ratio']:.2f}x ({c['painter_img_per_s']:.1f} img/s){mfu}"


def _key_score_throughput(out: Path) -> str:
    c = _cases(out, "score_throughput")[-1]
    return (f"{c['count']} images: generate {c['generate']['ratio']:.2f}x "
            f"({c['generate']['painter_img_per_s']:.0f} img/s), score {c['score']['ratio']:.2f}x warm")


def _key_cut(out: Path) -> str:
    train = json.loads((out / "cut" / "train_summary.json").read_text())
    score = json.loads((out / "cut" / "score.json").read_text())
    photos = score.get("photos_baseline", {}).get("swd")
    return (f"SWD {score['swd']['value']:.2f}" + (f" (photos {photos:.2f})" if photos is not None else "")
            + f", {train['steps']} steps in {train['seconds']:.0f} s at {train['resolution']}px")


def _key_ray_sweep(out: Path) -> str:
    with open(out / "ray_sweep" / "leaderboard.csv", newline="") as fh:
        trials = [row for row in csv.DictReader(fh) if row["where"] == "local"]
    return f"{len(trials)} trials: " + ", ".join(
        f"lambda_nce {row['cut.lambda_nce']} SWD {float(row['swd']):.1f} ± {float(row['swd_se'] or 'nan'):.1f}"
        for row in trials)


KEYS = {"data": _key_data, "install": _key_install, "tests": _key_tests,
        "train_throughput": _key_train_throughput, "cyclegan_throughput": _key_cyclegan_throughput,
        "score_throughput": _key_score_throughput, "ray_sweep": _key_ray_sweep, "cut": _key_cut}


# ---------------------------------------------------------------------------------------------
# summary


def _last_line(log: Path) -> str:
    """Why a phase could not run: the last line it printed."""
    lines = log.read_text().splitlines() if log.is_file() else []
    return lines[-1] if lines else "-"


def summary(out: Path, phases_tsv: Path, budget: int, dry_run: bool, elapsed: int) -> None:
    """summary.json (every phase with its status) and a short table on screen."""
    phases = []
    for line in phases_tsv.read_text().splitlines():
        name, status, exit_code, seconds, timeout, command = (line.split("\t") + [""] * 6)[:6]
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                       if p.is_file() and (p.name.startswith(name + ".") or p.parent.name == name))
        phases.append({"name": name, "status": status, "exit_code": int(exit_code) if exit_code else None,
                       "seconds": float(seconds), "timeout_s": int(timeout) if timeout else None,
                       "key": key_number(name, out) if status in ("ok", "failed", "timeout") else
                       _last_line(out / f"{name}.log") if status == "unavailable" else "-",
                       "command": command, "files": files})
    phases.sort(key=lambda p: list(KEYS).index(p["name"]))  # the dry run finishes them in any order
    env = read_json(out / "install.json") or {}
    result = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "dry_run": dry_run,
              "budget_s": budget, "seconds": elapsed,
              "ok": all(p["status"] in ("ok", "unavailable") for p in phases),
              "machine": {"gpu": env.get("gpu"), "torch": (env.get("versions") or {}).get("torch"),
                          "cuda_build": env.get("cuda_build"), "python": env.get("python")},
              "phases": phases}
    write_json(out / "summary.json", result)

    rows = [("phase", "status", "seconds", "key")] + [
        (p["name"], p["status"], f"{p['seconds']:.0f}", p["key"]) for p in phases]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}")
    print(f"\ngpu_check: {'all phases ok' if result['ok'] else 'SOME PHASES DID NOT PASS'} "
          f"in {result['seconds']:.0f} s (budget {budget} s); {out / 'summary.json'}")


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "tiny-data":
        tiny_data(Path(args[0]))
    elif command == "data-info":
        data_info(Path(args[0]), Path(args[1]))
    elif command == "pick-wheels":
        pick_wheels(Path(args[0]), [Path(arg) for arg in args[1:]])
    elif command == "env-report":
        env_report(Path(args[0]), Path(args[1]))
    elif command == "key":
        print(key_number(args[0], Path(args[1])))
    elif command == "summary":
        summary(Path(args[0]), Path(args[1]), int(args[2]), args[3] == "1", int(args[4]))
    else:
        raise SystemExit(f"unknown command {command!r}; see the docstring")


if __name__ == "__main__":
    main(sys.argv[1:])
