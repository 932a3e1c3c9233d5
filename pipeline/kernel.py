"""kernel: run the chain on Kaggle's GPUs as a private script kernel; follow it; pull its submission.

- push: wheels of painter and torch-fidelity (Kaggle's image lacks both; the kernel runs offline)
  and the Inception weights, when there are local ones, go up as a private dataset of the user's,
  `<user>/painter-wheels` (a new version only when the files changed since the last push). The
  template in kernels/train/ is rendered into <workdir>/kernels/<run>/ with the resolved config
  embedded, and pushed; push.json records what was pushed.
- status: the kernel's state, once or until it ends (--wait).
- pull: the kernel's output, checked (a valid images.zip, a readable score.json) before it
  replaces submissions/<run>/; the run is registered under <workdir>/runs/<run>/kaggle/.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from . import kaggle_api, records
from .artifacts import read_json, sha256_file, write_bytes_atomic, write_json_atomic
from .config import Config
from .errors import PainterError
from .layout import KERNEL_RECORD, KERNEL_TRAIN_SUMMARY, PULLED, PUSH_RECORD, SCORE, ZIP, Workdir, submission_folder

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = REPO / "kernels" / "train"
SCRIPT_NAME = "painter_kernel.py"
METADATA_NAME = "kernel-metadata.json"
DATASET_SLUG = "painter-wheels"
DATASET_TITLE = "painter wheels"
# machine_shape values the client passes through (kagglesdk documents NvidiaTeslaT4, NvidiaTeslaP100,
# Tpu1VmV38). Kaggle's "NvidiaTeslaT4" machine is its "GPU T4 x2" (a single T4 is not offered), so
# t4 and t4x2 ask for the same machine: t4 trains in one process, t4x2 in two under torchrun.
MACHINE_SHAPES = {"t4": "NvidiaTeslaT4", "t4x2": "NvidiaTeslaT4", "p100": "NvidiaTeslaP100"}
GPU_CHOICES = tuple(MACHINE_SHAPES)
# A kernel session's limit for this competition as painter knows it (reported as 5 hours; Kaggle's
# GPU sessions end at 12 hours in any case): the kernel keeps training short enough to finish in it.
SESSION_HOURS = 5.0
MAX_SESSION_HOURS = 12.0
WAIT_INTERVAL = 30.0
DONE, FAILED = {"complete"}, {"error", "cancel_requested", "cancel_acknowledged"}
READY_TIMEOUT = 600.0   # seconds to wait for Kaggle to process a new dataset version
READY_INTERVAL = 5.0
FIXED_BUILD_TIME = "315532800"  # 1980-01-01: the same sources give the same wheel bytes (SOURCE_DATE_EPOCH)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def kernel_slug(run: str) -> str:
    """Kaggle-slug-safe: lowercase letters, digits and single dashes (what Kaggle makes of the title)."""
    return re.sub(r"[^a-z0-9]+", "-", f"painter-{run}".lower()).strip("-")


def kernel_title(run: str) -> str:
    """Kaggle derives the kernel's slug from its title: this one slugifies to kernel_slug(run)."""
    return f"painter {run}"


# ------------------------------------------------------------------ wheels

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
    dest = wd.root / "kernels" / "wheels"
    if dest.exists():
        shutil.rmtree(dest)  # a fresh set: an old painter wheel must not ride along
    build_project_wheel(dest, log)
    download_fidelity_wheel(dest, log)
    return collect_wheels(dest)


# ------------------------------------------------------------------ the wheels dataset

def dataset_state(api, ref: str, log) -> str | None:
    """The dataset's status ("ready", "pending"...), or None when it does not exist (404)."""
    import requests

    def state_or_none():
        try:
            return api.dataset_status(ref)
        except requests.HTTPError as exc:
            if kaggle_api.error_status(exc)[0] == 404:
                return None
            raise

    return kaggle_api.call(f"looking up your dataset {ref}", state_or_none, log=log)


def _wait_until_ready(api, ref: str, log, sleep) -> None:
    """Kaggle processes a new version before kernels can attach it."""
    waited = 0.0
    while (state := dataset_state(api, ref, log)) != "ready":
        if state in (None, "failed", "deleted"):
            raise PainterError(f"Kaggle reports the dataset {ref} as {state or 'missing'} after the upload; "
                               f"see https://www.kaggle.com/datasets/{ref} and push again")
        if waited >= READY_TIMEOUT:
            raise PainterError(f"the dataset {ref} is still {state} after {READY_TIMEOUT / 60:.0f} min; "
                               "push again later (the upload is remembered and not repeated)")
        log(f"kernel: waiting for Kaggle to process {ref} ({state})")
        sleep(READY_INTERVAL)
        waited += READY_INTERVAL


def _stage_upload(folder: Path, files: list[Path], ref: str) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    kaggle_api.write_metadata(folder / "dataset-metadata.json",
                              {"title": DATASET_TITLE, "id": ref, "licenses": [{"name": "CC0-1.0"}]})
    for path in files:
        try:
            os.link(path, folder / path.name)  # no copy of the 95 MB weights when the disk allows
        except OSError:
            shutil.copyfile(path, folder / path.name)


def upload_dataset(api, user: str, files: list[Path], wd: Workdir, *, force: bool, log, sleep) -> dict:
    """Make `files` the latest version of <user>/painter-wheels, unless the last push uploaded the
    same files (by sha256) and the dataset is still there. Returns the upload record."""
    ref = f"{user}/{DATASET_SLUG}"
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        raise PainterError(f"two files to upload share a name: {', '.join(sorted(names))}")
    digests = {p.name: sha256_file(p) for p in files}
    record_path = wd.root / "kernels" / f"{DATASET_SLUG}.json"
    last = read_json(record_path) or {}
    state = dataset_state(api, ref, log)
    if state is not None and not force and last.get("dataset") == ref and last.get("files") == digests:
        log(f"kernel: {ref} already holds these {len(files)} files; upload skipped")
        if state != "ready":  # still processing the last push's upload
            _wait_until_ready(api, ref, log, sleep)
        return last

    folder = wd.root / "kernels" / "upload"
    _stage_upload(folder, files, ref)
    size_mib = sum(p.stat().st_size for p in files) / 2**20
    try:
        if state is None:
            log(f"kernel: creating the private dataset {ref} ({len(files)} files, {size_mib:.1f} MiB)")
            reply = kaggle_api.call(f"creating the dataset {ref}", api.dataset_create_new, str(folder),
                                    public=False, quiet=True, log=log)
        else:
            log(f"kernel: uploading a new version of {ref} ({len(files)} files, {size_mib:.1f} MiB)")
            reply = kaggle_api.call(f"uploading a new version of {ref}", api.dataset_create_version,
                                    str(folder), f"painter kernel push {_now()}", quiet=True, log=log)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if getattr(reply, "error", None) or (getattr(reply, "status", "ok") or "ok").lower() != "ok":
        raise PainterError(f"Kaggle did not take the upload to {ref}: {reply.error or reply.status}")
    record = {"dataset": ref, "files": digests, "uploaded": _now()}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(record_path, record)  # before waiting: a later push need not upload again
    _wait_until_ready(api, ref, log, sleep)
    return record


# ------------------------------------------------------------------ rendering

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
              "machine_shape": MACHINE_SHAPES[gpu], "dataset": dataset}
    metadata = _fill(json.loads((TEMPLATE_DIR / METADATA_NAME).read_text()), fields)
    script = render_script((TEMPLATE_DIR / SCRIPT_NAME).read_text(),
                           {"RUN_NAME": run, "GPU": gpu, "DATASET": dataset.split("/")[-1],
                            "CONFIG_TOML": config_toml, "HOURS": float(hours)})
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / metadata["code_file"], script.encode())
    kaggle_api.write_metadata(folder / METADATA_NAME, metadata)
    return metadata


# ------------------------------------------------------------------ push / status / pull

def push(cfg: Config, wd: Workdir, *, gpu: str = "t4", hours: float = SESSION_HOURS,
         inception_weights: str | None = None, wheels: Path | None = None, force: bool = False,
         log: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> dict:
    from .metrics.inception import find_weights

    if gpu not in MACHINE_SHAPES:
        raise PainterError(f"--gpu {gpu!r}: choose one of {', '.join(GPU_CHOICES)}")
    if not 0 < hours <= MAX_SESSION_HOURS:
        raise PainterError(f"--hours {hours:g}: a Kaggle GPU session lasts at most {MAX_SESSION_HOURS:g} hours; "
                           f"give a number above 0 and up to {MAX_SESSION_HOURS:g}")
    run = cfg.run.name
    api = kaggle_api.client(log)  # first: no credentials stops before minutes of building and uploading
    user = kaggle_api.username(api)
    weights = find_weights(inception_weights)  # checks an explicit file before anything is uploaded
    files = prepare_wheels(wd, wheels, log)
    if weights.path is not None:
        files.append(weights.path)
        log(f"kernel: Inception weights from {weights.origin} go along (FID, KID and MiFID on Kaggle)")
    else:
        log("kernel: no local Inception weights (--inception-weights or PAINTER_INCEPTION_WEIGHTS): the kernel "
            "runs offline, so it will score SWD and the copy check only")
    if gpu == "p100":
        log("kernel: WARNING: Kaggle's current PyTorch has no kernels for the P100 (sm_60); the kernel checks "
            "this first and stops within seconds if so (then push with --gpu t4)")

    dataset = upload_dataset(api, user, files, wd, force=force, log=log, sleep=sleep)["dataset"]

    folder = wd.kernel(run)
    metadata = render_kernel(folder, user=user, run=run, gpu=gpu, config_toml=cfg.to_toml(), dataset=dataset,
                             hours=hours)
    log(f"kernel: pushing {metadata['id']} ({gpu}, machine {metadata['machine_shape']})")
    reply = kaggle_api.call(f"pushing the kernel {metadata['id']}", api.kernels_push, str(folder), log=log)
    if getattr(reply, "error", None):
        raise PainterError(f"Kaggle refused the kernel {metadata['id']}: {reply.error}")
    url = reply.url or f"https://www.kaggle.com/code/{metadata['id']}"
    record = {"kernel": metadata["id"], "version": reply.version_number, "url": url, "gpu": gpu,
              "machine_shape": metadata["machine_shape"], "hours": hours, "dataset": dataset, "pushed": _now(),
              "config": cfg.to_dict(), "run": run}
    write_json_atomic(folder / PUSH_RECORD, record)  # the version exists and runs, whatever follows
    # Kaggle pushes the kernel even when it cannot attach an input; it would then stop at once.
    if getattr(reply, "invalid_competition_sources", None):
        raise PainterError(f"Kaggle pushed {metadata['id']} but did not attach the competition "
                           f"{', '.join(reply.invalid_competition_sources)}; accept its rules at "
                           f"{kaggle_api.RULES_URL} and push again")
    if getattr(reply, "invalid_dataset_sources", None):
        raise PainterError(f"Kaggle pushed {metadata['id']} but did not attach the dataset "
                           f"{', '.join(reply.invalid_dataset_sources)}; check it at "
                           "https://www.kaggle.com/datasets and push again")
    log(f"kernel: pushed {record['kernel']} version {record['version']}; watch it at {url}")
    log("next: `painter kernel status --wait` then `painter kernel pull` (with the same --config/--set)")
    return record


def read_push(cfg: Config, wd: Workdir) -> dict:
    path = wd.kernel(cfg.run.name) / PUSH_RECORD
    record = read_json(path)
    if record is None:
        raise PainterError(f"run {cfg.run.name} was never pushed from this workdir (no {path}); "
                           "run `painter kernel push` with the same --config/--set first")
    return record


def kernel_state(reply) -> tuple[str, str]:
    status = getattr(reply.status, "name", str(reply.status)).lower()
    return status, getattr(reply, "failure_message", None) or ""


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def status(cfg: Config, wd: Workdir, *, wait: bool = False, interval: float = WAIT_INTERVAL,
           log: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic) -> str:
    """The kernel's status ("complete", "running"...); with `wait`, polls until it ends.
    An error or a cancellation raises a PainterError with Kaggle's failure message."""
    record = read_push(cfg, wd)
    kernel = record["kernel"]
    api = kaggle_api.client(log)
    started = clock()
    log(f"kernel: {kernel} version {record.get('version')} ({record.get('gpu')}), pushed {record.get('pushed')}")
    while True:
        reply = kaggle_api.call(f"getting the status of {kernel}", api.kernels_status, kernel, log=log)
        state, message = kernel_state(reply)
        log(f"kernel: {state}" + (f" (waiting {_elapsed(clock() - started)})" if wait else ""))
        if state in FAILED:
            raise PainterError(f"the kernel {kernel} ended with status {state}"
                               + (f": {message}" if message else "")
                               + f". Its log: {record.get('url')} (or `kaggle kernels output {kernel} -p DIR`)")
        if state in DONE:
            log("kernel: finished; `painter kernel pull` fetches its submission")
            return state
        if not wait:
            return state
        sleep(interval)


def _score_summary(report: dict) -> dict:
    numbers = records.score_numbers(report)
    return {"swd": numbers["swd"], "fid": numbers["fid"], "kid": numbers["kid"], "mifid": numbers["mifid"],
            "near_copies": numbers["copies"], "n_generated": numbers["n_generated"]}


def _check_output(folder: Path) -> dict:
    """What is wrong with the pulled output, as a PainterError; else score.json's content."""
    from .submit import validate_zip  # here: it imports torch, which the other kernel commands need not

    files = sorted(p.name for p in folder.iterdir())
    if not (folder / ZIP).is_file():
        raise PainterError(f"the kernel's output has no images.zip (it has: {', '.join(files) or 'nothing'})")
    problems = validate_zip(folder / ZIP)
    if problems:
        raise PainterError("the pulled images.zip is not a valid submission (a download that failed leaves "
                           "an error page in its place; pull again):\n  " + "\n  ".join(problems))
    try:
        report = json.loads((folder / SCORE).read_text())
    except FileNotFoundError:
        raise PainterError("the kernel's output has no score.json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PainterError(f"the pulled score.json is not JSON ({exc}); pull again") from None
    if not isinstance(report, dict) or ("swd" not in report and "message" in report):  # an error body
        raise PainterError(f"the pulled score.json is not painter's score but {str(report)[:200]}; pull again")
    return report


def _replace_dir(new: Path, target: Path) -> None:
    """Put `new` at `target` by renames: readers see the old folder or the new one, never a mix."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def pull(cfg: Config, wd: Workdir, submissions: Path, *, force: bool = False,
         log: Callable[[str], None] = print) -> dict:
    """The kernel's output into submissions/<run>/ (checked first), registered under runs/<run>/kaggle/."""
    record = read_push(cfg, wd)
    kernel, run = record["kernel"], cfg.run.name
    api = kaggle_api.client(log)
    reply = kaggle_api.call(f"getting the status of {kernel}", api.kernels_status, kernel, log=log)
    state, message = kernel_state(reply)
    if state not in DONE and not force:
        raise PainterError(f"the kernel {kernel} has status {state}" + (f" ({message})" if message else "")
                           + ", not complete; `painter kernel status --wait` waits for it (--force pulls anyway)")

    target = submission_folder(submissions, run)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{run}.pull-tmp")
    if staging.exists():
        shutil.rmtree(staging)  # left over from a killed pull
    staging.mkdir()
    try:
        kaggle_api.call(f"downloading the output of {kernel}", api.kernels_output, kernel, str(staging),
                        force=True, quiet=True, log=log)
        report = _check_output(staging)
    except BaseException:
        rejected = wd.kernel(run) / "rejected-output"
        if staging.exists() and any(staging.iterdir()):
            shutil.rmtree(rejected, ignore_errors=True)
            rejected.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(staging, rejected)  # the workdir may be on another disk than submissions/
            log(f"kernel: what was pulled is kept for a look in {rejected}; {target} is unchanged")
        shutil.rmtree(staging, ignore_errors=True)
        raise

    info = {"kernel": kernel, "version": record.get("version"), "url": record.get("url"), "gpu": record.get("gpu"),
            "run": run, "pushed": record.get("pushed"), "pulled": _now(), "config": record.get("config"),
            "score": _score_summary(report), "train": read_json(staging / KERNEL_TRAIN_SUMMARY)}
    write_json_atomic(staging / KERNEL_RECORD, info)
    _replace_dir(staging, target)

    folder = wd.run_folder(run)
    registered = folder.kaggle
    registered.mkdir(parents=True, exist_ok=True)
    for name in PULLED:
        if (target / name).is_file():
            write_bytes_atomic(registered / name, (target / name).read_bytes())
    write_json_atomic(folder.kernel_record, info)  # last: its presence means the pair is complete
    score = info["score"]
    headline = f"SWD {score['swd']:.3f}" if isinstance(score["swd"], (int, float)) else "no SWD"
    if isinstance(score["mifid"], (int, float)):
        headline += f", FID {score['fid']:.2f}, MiFID {score['mifid']:.2f}"
    log(f"kernel: pulled {kernel} version {record.get('version')}: {headline}")
    log(f"  submission  {target / ZIP}")
    log(f"  registered  {registered} (for `painter leaderboard`)")
    return info


def submit(cfg: Config, wd: Workdir, message: str | None = None, log=print) -> dict:
    """Submit the run's pushed kernel version (its images.zip output) to the competition."""
    record = read_push(cfg, wd)
    kernel, version = record["kernel"], record["version"]
    api = kaggle_api.client(log)
    state, _ = kernel_state(kaggle_api.call(f"checking kernel {kernel}", api.kernels_status, kernel, log=log))
    if state not in DONE:
        raise PainterError(f"kernel {kernel} is {state}, not complete: only a finished version's images.zip "
                           "can be submitted (`painter kernel status --wait`)")
    message = message or f"painter {cfg.run.name}: {kernel} v{version}"
    response = kaggle_api.call(
        f"submitting {kernel} version {version} to {kaggle_api.COMPETITION}", api.competition_submit_code,
        file_name=ZIP, message=message, competition=kaggle_api.COMPETITION, kernel=kernel,
        kernel_version=version, quiet=True, log=log)
    submission = {"kernel": kernel, "version": version, "message": message, "ref": getattr(response, "ref", None),
                  "reply": getattr(response, "message", None), "submitted": _now()}
    folder = wd.run_folder(cfg.run.name)
    folder.kaggle.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder.submission_record, submission)
    log(f"submit: {kernel} version {version} submitted to {kaggle_api.COMPETITION_URL} "
        f"({submission['reply'] or 'accepted'}); `painter leaderboard --kaggle` shows where it stands once scored")
    return submission
