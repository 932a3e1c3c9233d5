"""The user's private dataset `<user>/painter-wheels`: the wheels (wheels.py) and, when there are local
ones, the Inception weights, uploaded as a new version only when the files changed since the last push."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from .. import kaggle_api
from ..artifacts import read_json, sha256_file, write_json_atomic
from ..layout import Workdir
from ..errors import PainterError

DATASET_SLUG = "painter-wheels"
DATASET_TITLE = "painter wheels"
READY_TIMEOUT = 600.0   # seconds to wait for Kaggle to process a new dataset version
READY_INTERVAL = 5.0


def now() -> str:
    """The time a record notes: UTC, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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
    record_path = wd.kernels_root / f"{DATASET_SLUG}.json"
    last = read_json(record_path) or {}
    state = dataset_state(api, ref, log)
    if state is not None and not force and last.get("dataset") == ref and last.get("files") == digests:
        log(f"kernel: {ref} already holds these {len(files)} files; upload skipped")
        if state != "ready":  # still processing the last push's upload
            _wait_until_ready(api, ref, log, sleep)
        return last

    folder = wd.kernels_root / "upload"
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
                                    str(folder), f"painter kernel push {now()}", quiet=True, log=log)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if getattr(reply, "error", None) or (getattr(reply, "status", "ok") or "ok").lower() != "ok":
        raise PainterError(f"Kaggle did not take the upload to {ref}: {reply.error or reply.status}")
    record = {"dataset": ref, "files": digests, "uploaded": now()}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(record_path, record)  # before waiting: a later push need not upload again
    _wait_until_ready(api, ref, log, sleep)
    return record

