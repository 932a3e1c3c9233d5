"""Everything that talks to Kaggle goes through here, with the `kaggle` package's own client.

- Credentials are found the way the client finds them (kaggle.json, KAGGLE_USERNAME/KAGGLE_KEY,
  KAGGLE_API_TOKEN, ~/.kaggle/access_token) and checked before `kaggle` is imported: importing it
  authenticates, and without credentials it prints a banner and exits.
- Secrets are never printed, logged or written: messages name where credentials came from, never
  their values.
- The client does not retry: `call` retries 429, 5xx and network failures with exponential
  back-off (honouring Retry-After), and turns every failure into one PainterError that says
  what to do. A JSON body whose `code` is >= 400 is an error even under HTTP 200. A host name
  that does not resolve means no network (or no DNS): that fails at once, as retrying cannot help.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import time
import zipfile
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from .errors import PainterError

COMPETITION = "gan-getting-started"
COMPETITION_URL = f"https://www.kaggle.com/competitions/{COMPETITION}"
RULES_URL = f"{COMPETITION_URL}/rules"
TOKEN_URL = "https://www.kaggle.com/settings"
RETRIES = 5
BACKOFF_SECONDS = 2.0   # 2, 4, 8, 16, 32 s: about a minute before giving up
MAX_WAIT_SECONDS = 60.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

NO_CREDENTIALS = (
    f"no Kaggle credentials found. Create a token at {TOKEN_URL} ('Create New Token') and either put "
    "the downloaded kaggle.json in ~/.kaggle/ (chmod 600 ~/.kaggle/kaggle.json), or set KAGGLE_USERNAME "
    "and KAGGLE_KEY, or KAGGLE_API_TOKEN. Then accept the competition's rules at " + RULES_URL + ". "
    f"Without Kaggle: download {COMPETITION_URL}/data elsewhere, unzip it and use --source DIR "
    "(make all SOURCE=DIR), or run the offline demo with `make demo`.")


def config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")


def credential_sources() -> list[str]:
    """Where Kaggle credentials were found (names only: never the secrets themselves)."""
    found = []
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        found.append("KAGGLE_USERNAME/KAGGLE_KEY")
    if os.environ.get("KAGGLE_API_TOKEN"):
        found.append("KAGGLE_API_TOKEN")
    for name in ("kaggle.json", "access_token"):
        if (config_dir() / name).is_file():
            found.append(str(config_dir() / name))
    return found


def credential_warnings() -> list[str]:
    """Problems worth a warning that do not stop anything: a key file others can read."""
    warnings = []
    for name in ("kaggle.json", "access_token"):
        path = config_dir() / name
        if path.is_file() and os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(f"{path} is readable by other users of this machine; run: chmod 600 {path}")
    return warnings


def client(log: Callable[[str], None] = print):
    """An authenticated `kaggle` KaggleApi; a PainterError that says what to do when there are no credentials."""
    found = credential_sources()
    if not found:
        raise PainterError(NO_CREDENTIALS)
    for warning in credential_warnings():
        log(f"kaggle: WARNING: {warning}")
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi  # importing `kaggle` authenticates once
        api = KaggleApi()
        api.authenticate()
    except (Exception, SystemExit) as exc:  # the client exits on unusable credentials
        raise PainterError(f"the kaggle client could not use the credentials in {', '.join(found)} "
                           f"({type(exc).__name__}: {exc}); {NO_CREDENTIALS}") from None
    return api


def username(api) -> str:
    name = api.get_config_value("username")
    if not name:
        raise PainterError("the Kaggle credentials carry no user name; set KAGGLE_USERNAME or use kaggle.json")
    return name


def error_status(exc) -> tuple[int | None, str]:
    """HTTP status (or the `code` of a JSON error body under HTTP 200) and the server's message."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    message = str(exc)
    try:
        body = response.json() if response is not None else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("code")
        if isinstance(code, int) and code >= 400:
            status = code
        message = str(body.get("message") or message)
    return status, message


def _retry_after(exc) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def explain(action: str, status: int | None, message: str) -> str:
    """One message per failure kind, saying what to do about it."""
    sources = ", ".join(credential_sources()) or "none found"
    if status == 401:
        return (f"Kaggle rejected the credentials while {action} (401: {message}). They came from: {sources}. "
                f"Create a new token at {TOKEN_URL} and replace the old one.")
    if status == 403:
        return (f"Kaggle refused {action} (403: {message}). For the competition's data and submissions, "
                f"accept its rules at {RULES_URL} with the same account, then run the command again.")
    if status == 404:
        return f"Kaggle found nothing while {action} (404: {message}); check the name and that your account can see it."
    if status == 429:
        return (f"Kaggle kept refusing requests as too many while {action} (429: {message}), "
                f"{RETRIES} retries included; wait a few minutes and run the command again.")
    if status is not None and status >= 500:
        return (f"Kaggle's servers failed while {action} (HTTP {status}: {message}), {RETRIES} retries "
                f"included; try again later.")
    return f"Kaggle request failed while {action} ({'HTTP ' + str(status) + ': ' if status else ''}{message})"


def _unresolved_host(exc: BaseException) -> str | None:
    """The host whose name did not resolve, when that is what `exc` (requests' ConnectionError) comes
    from; None otherwise. urllib3 keeps the socket.gaierror inside its own exceptions' `reason`."""
    pending, seen = [exc], set()
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        if isinstance(link, socket.gaierror):
            request = getattr(exc, "request", None)
            return (urlsplit(request.url).hostname if request is not None else None) or "Kaggle's API host"
        reason = getattr(link, "reason", None)
        pending += [link.__cause__, link.__context__, reason if isinstance(reason, BaseException) else None,
                    *(arg for arg in link.args if isinstance(arg, BaseException))]
    return None


def call(action: str, fn: Callable, *args, log: Callable[[str], None] = print, **kwargs):
    """fn(*args, **kwargs) with retries of 429, 5xx and network failures; other failures explained.

    `action` completes "... while <action>", e.g. "downloading the competition data".
    """
    import requests

    for attempt in range(RETRIES + 1):
        try:
            return fn(*args, **kwargs)
        except requests.HTTPError as exc:
            status, message = error_status(exc)
            retry = status in RETRY_STATUSES
            failure, wait = explain(action, status, message), _retry_after(exc)
        except requests.exceptions.ChunkedEncodingError:  # the client already resumed it 5 times
            raise PainterError(f"the download kept being cut short while {action}; check the network "
                               "connection and run the command again") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            host = _unresolved_host(exc)
            if host is not None:
                raise PainterError(f"no network: the name {host} does not resolve while {action}; check the "
                                   "network connection (and DNS, or the proxy) and run the command again") from None
            status, retry, wait = None, True, None
            failure = (f"cannot reach Kaggle while {action} ({type(exc).__name__}); check the network "
                       f"connection, {RETRIES} retries included")
        except ValueError as exc:  # kernels_status/kernels_output turn 401/403 into ValueError("Cannot access ...")
            if "Cannot access" not in str(exc):
                raise
            raise PainterError(f"Kaggle refused {action} ({exc}); check that the kernel exists and belongs "
                               f"to the account in {', '.join(credential_sources())}") from None
        if not retry or attempt == RETRIES:
            raise PainterError(failure) from None
        wait = min(MAX_WAIT_SECONDS, wait if wait is not None else BACKOFF_SECONDS * 2 ** attempt)
        log(f"kaggle: {action}: {'HTTP ' + str(status) if status else 'network error'}; "
            f"retrying in {wait:.0f} s ({attempt + 1} of {RETRIES})")
        time.sleep(wait)
    raise AssertionError("unreachable")


def write_metadata(path: Path, metadata: dict) -> None:
    """kernel-metadata.json / dataset-metadata.json as the client reads them."""
    path.write_text(json.dumps(metadata, indent=2) + "\n")


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "climbs out of the folder with '..'"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    return None


def extract_safely(archive: Path, dest: Path, folders: tuple[str, ...], log: Callable[[str], None] = print) -> dict:
    """Extract the members under `folders` after checking the whole archive: a complete zip (CRCs),
    no member that would land outside `dest` (zip-slip), and room on the disk."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                problem = _unsafe_member(info)
                if problem:
                    raise PainterError(f"refusing to extract {archive.name}: member {info.filename!r} {problem}; "
                                       "the download is not the competition's archive")
            broken = zf.testzip()
            if broken is not None:
                raise PainterError(f"{archive.name} is corrupt ({broken} fails its CRC check); run the command again")
            wanted = [m for m in members if m.filename.split("/")[0] in folders and not m.is_dir()]
            needed, free = sum(m.file_size for m in wanted), shutil.disk_usage(dest).free
            if needed > free:
                raise PainterError(f"extracting {archive.name} needs {needed / 2**20:,.0f} MiB but only "
                                   f"{free / 2**20:,.0f} MiB are free in {dest}")
            for info in wanted:
                zf.extract(info, dest)
    except zipfile.BadZipFile as exc:
        raise PainterError(f"{archive.name} ({archive.stat().st_size:,} bytes) is not a complete zip ({exc}): "
                           "the download was probably cut short; run the command again") from None
    counts = {name: sum(m.filename.split("/")[0] == name for m in wanted) for name in folders}
    skipped = len([m for m in members if not m.is_dir()]) - len(wanted)
    log(f"download: extracted {', '.join(f'{n} {k}' for k, n in counts.items())}"
        + (f" (skipped {skipped} other files, e.g. the TFRecords)" if skipped else ""))
    return counts


def download_competition(dest: Path, folders: tuple[str, ...], log: Callable[[str], None] = print) -> dict:
    """The competition's zip through the client, checked and extracted into `dest`."""
    api = client(log)
    staging = dest / "_download"
    staging.mkdir(parents=True, exist_ok=True)
    call("downloading the competition data", api.competition_download_files, COMPETITION, path=str(staging),
         force=True, quiet=False, log=log)
    archives = sorted(staging.glob("*.zip"))
    if not archives:
        raise PainterError(f"the kaggle client reported success but left no zip in {staging}")
    counts = extract_safely(archives[0], dest, folders, log)
    shutil.rmtree(staging)
    if not counts.get("monet_jpg"):
        raise PainterError(f"the competition archive holds no monet_jpg/ images; see {COMPETITION_URL}/data")
    return counts
