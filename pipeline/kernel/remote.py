"""The kernel's life on Kaggle, from this side: push it, follow its status, pull its output, submit it.

- push: the wheels (wheels.py) and the Inception weights, when there are local ones, go up as the
  private dataset `<user>/painter-wheels` (dataset.py); the kernel folder is rendered into
  <workdir>/kernels/<run>/ (script.py) and pushed; push.json records what was pushed.
- status: the kernel's state, once or until it ends (--wait). A kernel that failed (here, in pull and
  in submit) shows Kaggle's message and the end of its log (all of it saved as kernels/<run>/failed.log).
- pull: the kernel's output, checked (a valid images.zip, a readable score.json) before it
  replaces submissions/<run>/; the files a run folder exports are registered under runs/<run>/kaggle/.
- submit: the pushed kernel version, as a code submission to the competition.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
import zlib
from pathlib import Path
from typing import Callable

from .. import kaggle_api, records
from ..artifacts import read_json, write_bytes_atomic, write_json_atomic
from ..config import Config
from ..errors import PainterError
from ..lock import holding
from ..layout import (EXPORTED_TRAIN_SUMMARY, FAILED_LOG, KERNEL_RECORD, PUSH_RECORD, REJECTED_OUTPUT, SCORE, ZIP,
                      Workdir, submission_folder)
from .dataset import now, upload_dataset
from .script import GPU_CHOICES, MACHINE_SHAPES, MAX_SESSION_HOURS, SESSION_HOURS, render_kernel
from .wheels import prepare_wheels

WAIT_INTERVAL = 30.0
DONE, FAILED = {"complete"}, {"error", "cancel_requested", "cancel_acknowledged"}
LOG_TAIL = 20  # lines of a failed kernel's log shown with its failure


def push(cfg: Config, wd: Workdir, *, gpu: str = "t4", hours: float = SESSION_HOURS,
         inception_weights: str | None = None, wheels: Path | None = None, force: bool = False,
         log: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> dict:
    from ..metrics.inception import find_weights  # here: it imports torch, which status and pull need not

    if gpu not in MACHINE_SHAPES:
        raise PainterError(f"--gpu {gpu!r}: choose one of {', '.join(GPU_CHOICES)}")
    if not 0 < hours <= MAX_SESSION_HOURS:
        raise PainterError(f"--hours {hours:g}: a Kaggle GPU session lasts at most {MAX_SESSION_HOURS:g} hours; "
                           f"give a number above 0 and up to {MAX_SESSION_HOURS:g}")
    if hours > SESSION_HOURS:
        log(f"kernel: WARNING: --hours {hours:g} is above the {SESSION_HOURS:g} hours ({SESSION_HOURS * 60:g} minutes) "
            f"within which {kaggle_api.COMPETITION}'s notebooks must finish: if it runs longer, its output cannot be "
            "submitted to the competition (it can still serve a sweep)")
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
    # The session timeout makes Kaggle stop a kernel that hangs past its deadline, not at Kaggle's own cap.
    reply = kaggle_api.call(f"pushing the kernel {metadata['id']}", api.kernels_push, str(folder),
                            timeout=round(hours * 3600), log=log)
    if getattr(reply, "error", None):
        raise PainterError(f"Kaggle refused the kernel {metadata['id']}: {reply.error}")
    url = reply.url or f"https://www.kaggle.com/code/{metadata['id']}"
    record = {"kernel": metadata["id"], "version": reply.version_number, "url": url, "gpu": gpu,
              "machine_shape": metadata["machine_shape"], "hours": hours, "dataset": dataset, "pushed": now(),
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


def _log_text(log: str) -> str:
    """A finished session's log as text: Kaggle keeps it as a JSON list of {stream_name, time, data}."""
    try:
        events = json.loads(log)
    except ValueError:
        return log
    if not isinstance(events, list):
        return log
    return "".join(str(event.get("data", "")) for event in events if isinstance(event, dict))


class KernelFailed(PainterError):
    """The kernel ended without output (an error, a cancellation): waiting cannot help."""


def _failed(api, record: dict, state: str, message: str, folder: Path, log: Callable[[str], None]) -> KernelFailed:
    """Why the kernel ended without output: Kaggle's message and the end of its log (all of it saved in
    `folder`), and how to run it again. Waiting cannot help, so this says what can."""
    kernel = record["kernel"]
    lines = [f"the kernel {kernel} version {record.get('version')} ended with status {state}"
             + (f": {message}" if message else "")]
    try:
        text = _log_text(kaggle_api.call(f"fetching the log of {kernel}", api.kernels_logs, kernel, log=log))
    except PainterError as exc:
        text = ""
        lines.append(f"its log could not be fetched: {exc}")
    if text.strip():
        saved = folder / FAILED_LOG
        write_bytes_atomic(saved, text.encode())
        tail = text.rstrip().splitlines()[-LOG_TAIL:]
        lines += [f"the end of its log (all of it in {saved}):"] + [f"  {line}" for line in tail]
    lines.append(f"its page: {record.get('url')}. Fix the cause, then push again: `painter kernel push "
                 f"--gpu {record.get('gpu', 't4')} --hours {record.get('hours', SESSION_HOURS):g}` "
                 "with the same --config/--set")
    return KernelFailed("\n".join(lines))


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
            raise _failed(api, record, state, message, wd.kernel(cfg.run.name), log)
        if state in DONE:
            log("kernel: finished; `painter kernel pull` fetches its submission")
            return state
        if not wait:
            return state
        sleep(interval)


def _score_summary(report: dict) -> dict:
    numbers = records.score_numbers(report)
    return {"swd": numbers["swd"], "swd_se": numbers["swd_se"], "fid": numbers["fid"], "kid": numbers["kid"],
            "mifid": numbers["mifid"],
            "near_copies": numbers["copies"], "n_generated": numbers["n_generated"]}


def _damage(archive: Path) -> str | None:
    """How the download of `archive` shows it failed (not a zip: an error page; cut short; a failing CRC),
    or None: the zip arrived as the kernel wrote it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            broken = zf.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        return f"{archive.name} ({archive.stat().st_size:,} bytes) is not a complete zip ({exc})"
    return f"{broken} in {archive.name} fails its CRC check" if broken else None


def _check_output(folder: Path, kept: Path) -> dict:
    """What is wrong with the pulled output, as a PainterError (`kept`: where a rejected output will be);
    else score.json's content."""
    from ..submit import validate_zip  # here: it imports torch, which the other kernel commands need not

    files = sorted(p.name for p in folder.iterdir())
    if not (folder / ZIP).is_file():
        raise PainterError(f"the kernel's output has no {ZIP} (it has: {', '.join(files) or 'nothing'})")
    damage = _damage(folder / ZIP)
    if damage:
        raise PainterError(f"the pulled {ZIP} is not a valid submission (a download that failed leaves "
                           f"an error page in its place; pull again):\n  {damage}")
    problems = validate_zip(folder / ZIP)
    if problems:  # the zip arrived whole: the kernel wrote these, and pulling again fetches them again
        raise PainterError(f"the kernel wrote an {ZIP} that Kaggle would reject, so pulling again cannot help: "
                           f"{'; '.join(problems)}. The kernel's output is kept in {kept}; fix the cause and "
                           "push again")
    try:
        report = json.loads((folder / SCORE).read_text())
    except FileNotFoundError:
        raise PainterError(f"the kernel's output has no {SCORE}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PainterError(f"the pulled {SCORE} is not JSON ({exc}); pull again") from None
    if not isinstance(report, dict) or ("swd" not in report and "message" in report):  # an error body
        raise PainterError(f"the pulled {SCORE} is not painter's score but {str(report)[:200]}; pull again")
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
    if state in FAILED and not force:
        raise _failed(api, record, state, message, wd.kernel(run), log)
    if state not in DONE and not force:
        raise PainterError(f"the kernel {kernel} has status {state}" + (f" ({message})" if message else "")
                           + ", not complete; `painter kernel status --wait` waits for it (--force pulls anyway)")
    target = submission_folder(submissions, run)
    with holding(target, "kernel pull", log=log):  # the folder `painter submit` writes too
        return _pull_into(target, api, record, wd, run, log)


def _pull_into(target: Path, api, record: dict, wd: Workdir, run: str, log: Callable[[str], None]) -> dict:
    """The kernel's output, checked, into `target`; registered under the run folder's kaggle/."""
    kernel = record["kernel"]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{run}.pull-tmp")
    rejected = wd.kernel(run) / REJECTED_OUTPUT  # where a pulled output that fails its check is kept
    if staging.exists():
        shutil.rmtree(staging)  # left over from a killed pull
    staging.mkdir()
    try:
        kaggle_api.call(f"downloading the output of {kernel}", api.kernels_output, kernel, str(staging),
                        force=True, quiet=True, log=log)
        report = _check_output(staging, kept=rejected)
    except BaseException:
        if staging.exists() and any(staging.iterdir()):
            shutil.rmtree(rejected, ignore_errors=True)
            rejected.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(staging, rejected)  # the workdir may be on another disk than submissions/
            log(f"kernel: what was pulled is kept for a look in {rejected}; {target} is unchanged")
        shutil.rmtree(staging, ignore_errors=True)
        raise

    info = {"kernel": kernel, "version": record.get("version"), "url": record.get("url"), "gpu": record.get("gpu"),
            "run": run, "pushed": record.get("pushed"), "pulled": now(), "config": record.get("config"),
            "score": _score_summary(report), "train": read_json(staging / EXPORTED_TRAIN_SUMMARY)}
    write_json_atomic(staging / KERNEL_RECORD, info)
    _replace_dir(staging, target)

    folder = wd.run_folder(run)
    registered = folder.kaggle
    registered.mkdir(parents=True, exist_ok=True)
    for name in folder.exported():  # what the kernel exported of its run folder, by the same names
        if (target / name).is_file():
            write_bytes_atomic(registered / name, (target / name).read_bytes())
    write_json_atomic(folder.kernel_record, info)  # last: its presence means the pair is complete
    log(f"kernel: pulled {kernel} version {record.get('version')}: {records.summary_line(info['score'])}")
    log(f"  submission  {target / ZIP}")
    log(f"  registered  {registered} (for `painter leaderboard`)")
    return info


def submit(cfg: Config, wd: Workdir, message: str | None = None, log=print) -> dict:
    """Submit the run's pushed kernel version (its images.zip output) to the competition."""
    record = read_push(cfg, wd)
    kernel, version = record["kernel"], record["version"]
    api = kaggle_api.client(log)
    state, failure = kernel_state(kaggle_api.call(f"checking kernel {kernel}", api.kernels_status, kernel, log=log))
    if state in FAILED:
        raise _failed(api, record, state, failure, wd.kernel(cfg.run.name), log)
    if state not in DONE:
        raise PainterError(f"kernel {kernel} is {state}, not complete: only a finished version's images.zip "
                           "can be submitted (`painter kernel status --wait`)")
    message = message or f"painter {cfg.run.name}: {kernel} v{version}"
    response = kaggle_api.call(
        f"submitting {kernel} version {version} to {kaggle_api.COMPETITION}", api.competition_submit_code,
        file_name=ZIP, message=message, competition=kaggle_api.COMPETITION, kernel=kernel,
        kernel_version=version, quiet=True, log=log)
    submission = {"kernel": kernel, "version": version, "message": message, "ref": getattr(response, "ref", None),
                  "reply": getattr(response, "message", None), "submitted": now()}
    folder = wd.run_folder(cfg.run.name)
    folder.kaggle.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder.submission_record, submission)
    log(f"submit: {kernel} version {version} submitted to {kaggle_api.COMPETITION_URL} "
        f"({submission['reply'] or 'accepted'}); `painter leaderboard --kaggle` shows where it stands once scored")
    return submission
