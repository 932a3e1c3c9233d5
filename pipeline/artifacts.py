"""The artifact contract: stamps, fingerprints and atomic writes.

A stage's output folder is complete only when its stamp (`_stamp.json`, written last and
atomically) exists. The stamp holds a fingerprint of everything the output depends on: the
stage's config values, the fingerprints of upstream stamps, and digests of data read from
outside the workdir. A matching fingerprint means there is nothing to do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .errors import PainterError
from .lock import holding

STAMP_NAME = "_stamp.json"


def fingerprint(inputs: dict) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, then rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_torch_atomic(path: Path, obj: Any) -> None:
    import torch  # here, not at the top: the CLI imports this module before it needs torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def read_json(path: Path) -> Any | None:
    """The JSON in `path`, or None when it is missing or unreadable (say, cut short by a crash)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_stamp(out_dir: Path) -> dict | None:
    return read_json(Path(out_dir) / STAMP_NAME)


def require_stamp(out_dir: Path, what: str, command: str) -> dict:
    stamp = read_stamp(out_dir)
    if stamp is None:
        raise PainterError(f"no complete {what} at {out_dir}; run `{command}` first")
    return stamp


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def explain_change(old_inputs: dict, new_inputs: dict, limit: int = 4) -> str:
    """A short human reason for a re-run, e.g. 'train.steps: 100 -> 200'."""
    old, new = _flatten(old_inputs), _flatten(new_inputs)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            if key.endswith("fingerprint") or key.endswith("digest"):
                changes.append(f"{key.rsplit('.', 1)[0]} changed")
            else:
                changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    more = f" (+{len(changes) - limit} more)" if len(changes) > limit else ""
    return ", ".join(changes[:limit]) + more or "stamp format changed"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def clear_folder(folder: Path) -> None:
    for path in Path(folder).iterdir():
        _remove(path)


def run_stage(
    stage: str,
    out_dir: Path,
    inputs: dict,
    build: Callable[[Path], dict | None],
    *,
    force: bool = False,
    in_place: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Run `build(folder)` unless `out_dir` holds a stamp with the same fingerprint.

    By default `build` fills a fresh temporary folder that replaces `out_dir` only once complete.
    With `in_place=True` (training, which resumes from its own checkpoints) it works in `out_dir`
    itself; the old stamp is removed first, so a killed run never looks complete.
    Returns the stamp; `build` may return a summary dict that is stored in it. The folder's lock is
    held throughout (pipeline/lock.py): a second process on the same output stops, or waits.
    """
    with holding(Path(out_dir), stage, log=log):
        return _run_stage_holding_lock(stage, Path(out_dir), inputs, build, force=force, in_place=in_place, log=log)


def _run_stage_holding_lock(stage: str, out_dir: Path, inputs: dict, build: Callable[[Path], dict | None], *,
                            force: bool, in_place: bool, log: Callable[[str], None]) -> dict:
    new_fp = fingerprint(inputs)
    stamp = read_stamp(out_dir)
    if stamp is not None and stamp.get("fingerprint") == new_fp and not force:
        log(f"{stage}: up to date ({out_dir})")
        return stamp
    if force:
        reason = "--force"
    elif stamp is None:
        reason = "no previous output" if not out_dir.exists() else "previous output incomplete"
    else:
        reason = explain_change(stamp.get("inputs", {}), inputs)
    log(f"{stage}: running ({reason})")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
    old_dir = out_dir.with_name(out_dir.name + ".old")
    _remove(old_dir)  # left over from a swap that was killed half-way
    if in_place:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / STAMP_NAME).unlink(missing_ok=True)
        work_dir = out_dir
    else:
        _remove(tmp_dir)  # left over from a killed run
        tmp_dir.mkdir(parents=True)
        work_dir = tmp_dir

    try:
        summary = build(work_dir) or {}
    except BaseException:
        if not in_place:  # a half-built output is worthless; the previous complete one is untouched
            _remove(tmp_dir)
        raise
    new_stamp = {
        "stage": stage,
        "fingerprint": new_fp,
        "inputs": inputs,
        "summary": summary,
        "painter_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(work_dir / STAMP_NAME, new_stamp)
    if not in_place:
        if out_dir.exists():
            os.replace(out_dir, old_dir)
        os.replace(tmp_dir, out_dir)
        _remove(old_dir)
    return new_stamp
