"""A fake Kaggle API server, for testing painter against the REAL installed `kaggle` client.

The fake speaks the protocol of kaggle 2.2.x / kagglesdk 0.1.x (read from their sources):

* every API call is ``POST /api/v1/<service>/<Method>`` with a camelCase JSON body (fields equal to
  their defaults are left out: a missing ``isPrivate`` means false), e.g.
  ``POST /api/v1/competitions.CompetitionApiService/DownloadDataFiles {"competitionName": "..."}``;
* answers are camelCase JSON; enums are sent by name (``"COMPLETE"``). An error is an HTTP status
  >= 400, or a JSON body whose ``code`` is >= 400 even under HTTP 200 (kagglesdk checks the body
  first). Either way the client raises ``requests.exceptions.HTTPError`` whose text is the body's
  ``message`` (for a JSON error body) or requests' standard "429 Client Error: ... for url: ...";
* credentials: KAGGLE_USERNAME/KAGGLE_KEY (or kaggle.json) travel as HTTP Basic auth
  ``username:key`` on every call; KAGGLE_API_TOKEN (or ~/.kaggle/access_token) as
  ``Authorization: Bearer <token>``, after the client checked it with ``security.OAuthService/
  IntrospectToken`` at authentication time. Wrong or missing credentials get HTTP 401
  ``{"code": 401, "message": "Unauthenticated"}``;
* downloads (DownloadDataFiles, DownloadDataFile, DownloadDataset) answer with a 302 redirect
  that requests follows (as a GET, keeping the Authorization header because the host is the same);
  the fake serves the file itself under ``/files/...`` (with ETag, Last-Modified, Range support);
* uploads (datasets, file submissions) first get a URL from ``blobs.BlobApiService/StartBlobUpload``
  (``{"token", "createUrl"}``), then PUT the bytes there (resumable-upload style: ``Content-Range``,
  308 + ``Range`` for partial uploads), then pass the token to CreateDataset / CreateDatasetVersion.

How to connect the client
=========================

In-process (``kaggle.api`` / ``KaggleApi``), from a pytest test::

    from tests.fake_kaggle import FakeKaggle, connect_in_process

    def test_x(tmp_path, monkeypatch):
        with FakeKaggle(competition_zip=zip_bytes) as server:
            api = connect_in_process(server, monkeypatch, tmp_path / "home")
            api.competition_download_files("gan-getting-started", path=str(tmp_path / "dl"))

``connect_in_process`` works whether or not ``kaggle`` was imported before, with any environment;
everything it changes is undone by ``monkeypatch`` after the test. It:

1. points HOME, XDG_CONFIG_HOME, KAGGLE_CONFIG_DIR and TMPDIR into ``home`` (so the user's real
   ~/.kaggle is never read nor written), removes every other ``KAGGLE_*`` variable and the proxy
   variables, sets KAGGLE_USERNAME/KAGGLE_KEY (or KAGGLE_API_TOKEN) and
   KAGGLE_API_ENVIRONMENT=LOCALHOST, then imports ``kaggle`` (importing it authenticates);
2. sets ``KaggleApi.args = ["--local"]``. (KaggleApi reads KAGGLE_API_ENVIRONMENT only once, when
   it is first imported, into that class attribute; "--local" makes ``build_kaggle_client`` use
   ``KaggleEnv.LOCAL``, i.e. ``http://localhost/api/v1/...``, instead of https://api.kaggle.com);
3. sets ``kagglesdk.kaggle_env._env_to_endpoint[KaggleEnv.LOCAL] = server.url``
   (``http://127.0.0.1:<port>``): every KaggleHttpClient built from then on posts to the fake;
4. re-authenticates the import-time singleton ``kaggle.api`` with the fake's credentials, and
   returns a fresh, authenticated ``KaggleApi()``. Code under test that uses ``kaggle.api``, or
   builds its own ``KaggleApi()`` and calls ``authenticate()``, reaches the fake too.

Subprocess (the ``kaggle`` command-line tool)::

    env = server.cli_env(tmp_path / "home")
    subprocess.run([".venv/bin/kaggle", "competitions", "download", "-c", "gan-getting-started",
                    "-p", str(dest)], env=env, check=True)

``cli_env`` returns a copy of os.environ with: the same HOME/config/TMPDIR isolation and
credentials, KAGGLE_API_ENVIRONMENT=LOCALHOST (so the CLI calls http://localhost/api/v1/...; there
is no variable for the port) and ``http_proxy``/``HTTP_PROXY`` = ``server.url``, no_proxy removed.
requests then sends proxy-form requests (``POST http://localhost/api/v1/... HTTP/1.1``,
``Host: localhost``) to the fake, which accepts absolute request targets. Redirects, download URLs
and upload URLs the fake hands out are built from the Host header, so they go through the proxy
too. ``requests`` anywhere in the process honours these variables, so the same ``cli_env`` also
works for a subprocess running ``python -c "import kaggle; ..."``.

What the real client does (kaggle 2.2.4, pinned by tests/test_fake_kaggle.py)
============================================================================

* Errors: ``requests.exceptions.HTTPError``; ``e.response.status_code`` is the HTTP status (200 for
  the code-in-body form!), ``str(e)`` the body's "message" ("Unauthenticated" for a wrong key).
  The CLI prints the message to stderr and exits 1; on 401 it prints its "Authentication required"
  help to stdout instead.
* No retries of HTTP errors in competitions / kernels / submission calls, 429 included.
  ``dataset_create_new`` / ``dataset_create_version`` / ``StartBlobUpload`` retry 429 and
  connection errors (Retry-After honoured, else 0.85 s, 1.4 s, ... back-off), never 5xx.
  A blob PUT answered 503 is resumed (status query PUT, then the bytes again).
* Downloads: a body cut short is retried up to 5 times with Range requests after 2-3 s, 4-5 s, ...
  sleeps, then ``requests.exceptions.ChunkedEncodingError``.
* ``kernels_output`` fetches output files with a bare ``requests.get`` and does not check the
  status: an error body lands in the file. ``kernels_status`` / ``kernels_output`` turn 401/403
  into ``ValueError("Cannot access kernel ...")``.

Using the fake
==============

State (all public, plain Python; guarded by ``server.lock`` while requests are handled):

* ``server.log``: one ``Call`` per request (method, raw ``target`` as received, ``path``,
  ``endpoint`` (RPC method name, served file name, or "upload"), ``service``, parsed JSON ``body``,
  ``auth_user``, ``auth_scheme`` ("basic"/"bearer"/None), ``headers``, answered ``status``);
  ``server.calls("SaveKernel")`` filters it by endpoint.
* competitions: ``server.competitions[name]`` (``zip``: bytes served by DownloadDataFiles,
  ``rules_accepted``: False makes downloads/submissions answer 403, ``leaderboard``);
  ``server.set_leaderboard([("team", "41.2"), ...])``.
* kernels: ``server.pushes`` (every SaveKernel, normalised: ``kernel`` "owner/slug", ``title``,
  ``text``, ``language``, ``kernel_type``, ``is_private``, ``enable_gpu``, ``enable_tpu``,
  ``enable_internet``, ``dataset_data_sources``, ``competition_data_sources``,
  ``kernel_data_sources``, ``model_data_sources``, ``machine_shape``, ``docker_image``,
  ``session_timeout_seconds``, ``version``, ``user``, ``raw``); ``server.kernels["owner/slug"]``;
  ``server.script_kernel_status("owner/slug", "queued", "running", ("error", "OOM"))`` (each
  GetKernelSessionStatus takes the next one; the last one stays; default after a push: "complete");
  ``server.set_kernel_output("owner/slug", {"images.zip": b"..."}, log="...")``.
* datasets: ``server.datasets["owner/slug"]`` (``versions``: list of {"number", "files": {name:
  bytes}, "notes", ...}, ``status``: "READY"), ``server.uploads`` (every finished blob upload:
  name, bytes, token), ``server.add_dataset("owner/slug", {"a.txt": b"..."})``.
* submissions: ``server.submissions`` (CreateCodeSubmission: ``competition``, ``kernel_owner``,
  ``kernel_slug``, ``kernel_version``, ``file_name``, ``description``, ``user``, ``status``,
  ``public_score``); ``server.score_submission(public_score="41.3")``.

Fault injection (per endpoint queue, consumed in order, before credentials are checked)::

    server.fail("DownloadDataFiles", 429)                  # next call: HTTP 429, JSON error body
    server.fail("SaveKernel", 500, times=2)                # next two calls: HTTP 500
    server.fail("GetLeaderboard", 403, in_body=True)       # HTTP 200 + {"code": 403, ...}
    server.fail("CreateDataset", 429, retry_after=0)       # adds Retry-After: 0
    server.fail("DownloadDataFiles", 500, json_body=False) # text/plain body
    server.fail("images.zip", 500)                         # a served file (GET /files/...)
    server.fail("upload", 503)                             # the PUT of a blob upload
    server.fail("*", 500)                                  # whatever request comes next
    server.truncate("gan-getting-started.zip", times=1)    # full Content-Length, half the bytes, close

Stalls, to catch a client mid-request (a kill test SIGKILLs it then)::

    stall = server.stall("images.zip")   # next GET of that file: headers and half the body, then hold
    stall.reached.wait(30)               # the partial answer is out; the connection is held open
    stall.release.set()                  # send the rest (stop() releases every stall too)

A stall applies to the answer the endpoint would give anyway (an RPC is handled, its state change
made, before the stall holds its reply); ``after_bytes`` sets how much of the body goes out first.

Endpoint names are RPC method names (case-insensitive; "Service/Method" also works), served file
names, "upload" or "*". Unknown endpoints answer 404 ``{"code": 404, "message": "fake Kaggle has no
endpoint ..."}`` naming the endpoint, so a missing piece is obvious; ``server.errors`` holds the
traceback of any exception inside the fake (answered as 500).
"""

from __future__ import annotations

import base64
import binascii
import copy
import csv
import email.utils
import hashlib
import io
import itertools
import json
import os
import re
import threading
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote, urlsplit

DEFAULT_USERNAME = "painter-user"
DEFAULT_KEY = "0123456789abcdef0123456789abcdef"


def client_version() -> tuple[int, ...]:
    """The installed kaggle client's version, for the behaviours that changed between releases."""
    from importlib.metadata import version

    return tuple(int(part) for part in version("kaggle").split(".")[:3])


COMPETITION = "gan-getting-started"
COMPETITION_TITLE = "I'm Something of a Painter Myself"

_API_PATH = re.compile(r"^(?:/api)?/v1/([^/]+)/([^/]+)/?$")
_REASONS = {400: "Bad request", 401: "Unauthenticated", 403: "Permission denied", 404: "Not found",
            409: "Conflict", 429: "Too many requests", 500: "Internal server error",
            502: "Bad gateway", 503: "Service unavailable"}
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
               "no_proxy", "NO_PROXY")


class ApiError(Exception):
    """Raised by an endpoint handler: answered as HTTP `status` with a Kaggle-like JSON body."""

    def __init__(self, status: int, message: str | None = None):
        super().__init__(message or _REASONS.get(status, "Error"))
        self.status = status
        self.message = message or _REASONS.get(status, "Error")


@dataclass
class Fault:
    status: int = 500
    message: str | None = None
    in_body: bool = False          # HTTP 200 with {"code": status, "message": ...}
    json_body: bool = True         # False: text/plain body
    retry_after: float | None = None
    truncate: bool = False         # files only: send Content-Length of the whole, `keep` bytes, close
    keep: int | None = None


@dataclass
class Call:
    """One request as the fake saw it."""
    method: str
    target: str                    # the request target as received (absolute URL when proxied)
    path: str
    endpoint: str                  # RPC method name, served file name, "upload", or the path
    service: str | None = None
    body: Any = None               # parsed JSON (API calls), None otherwise
    auth_user: str | None = None
    auth_scheme: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    fault: Fault | None = None


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    send_bytes: int | None = None  # send only that many body bytes, then close (truncation)
    stall: "Stall | None" = None   # send stall.after_bytes of the body, hold until released, then the rest


@dataclass
class Stall:
    """One held answer (FakeKaggle.stall): `reached` is set once its first bytes are out,
    `release` lets the rest go."""
    after_bytes: int | None = None  # None: half the body
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    timeout: float = 60.0           # a forgotten stall ends by itself


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _enum_name(value: str) -> str:
    """'cancelAcknowledged' / 'cancel_acknowledged' / 'COMPLETE' -> 'CANCEL_ACKNOWLEDGED' style."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", value).upper()


def _split_ref(ref: str, default_owner: str) -> tuple[str, str]:
    parts = ref.strip("/").split("/")
    if len(parts) >= 2:
        return parts[0], parts[1]
    return default_owner, parts[0]


def _zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: simple, and what a truncation needs
    server_version = "FakeKaggle/1.0"
    timeout = 30

    def log_message(self, format, *args):  # noqa: A002 - quiet: the fake keeps its own log
        pass

    def _dispatch(self):
        fake: FakeKaggle = self.server.fake  # type: ignore[attr-defined]
        response = fake._handle(self)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        body = response.body if response.send_bytes is None else response.body[:response.send_bytes]
        try:
            stall = response.stall
            if stall is not None:  # outside the server's lock: other requests go on meanwhile
                first = len(body) // 2 if stall.after_bytes is None else min(stall.after_bytes, len(body))
                self.wfile.write(body[:first])
                self.wfile.flush()
                stall.reached.set()
                stall.release.wait(stall.timeout)
                body = body[first:]
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _dispatch


class FakeKaggle:
    """An in-memory Kaggle on 127.0.0.1:<free port>, served by a daemon thread. See module docstring."""

    def __init__(self, username: str = DEFAULT_USERNAME, key: str = DEFAULT_KEY, *,
                 token: str | None = None, competition: str = COMPETITION,
                 competition_zip: bytes | None = None, leaderboard: list | None = None,
                 daily_submission_limit: int = 5):
        self.username = username
        self.key = key
        self.token = token or f"fake-access-token-{username}"
        self.users = {username: key}              # username -> API key (Basic auth)
        self.tokens = {self.token: username}      # bearer token -> username
        self.daily_submission_limit = daily_submission_limit
        self.lock = threading.RLock()
        self.log: list[Call] = []
        self.errors: list[str] = []
        self._faults: dict[str, list[Fault]] = {}
        self._stalls: dict[str, list[Stall]] = {}
        self._all_stalls: list[Stall] = []
        self._files: dict[str, tuple[bytes, str, float]] = {}  # path -> (bytes, content type, mtime)
        self._ids = itertools.count(1001)

        self.competitions: dict[str, dict] = {}
        self.kernels: dict[str, dict] = {}
        self.pushes: list[dict] = []
        self.datasets: dict[str, dict] = {}
        self.blobs: dict[str, dict] = {}
        self.uploads: list[dict] = []
        self.submissions: list[dict] = []
        self.add_competition(competition, competition_zip, leaderboard=leaderboard)

        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeKaggle":
        if self._httpd is None:
            httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            httpd.daemon_threads = True
            httpd.fake = self  # type: ignore[attr-defined]
            self._httpd = httpd
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="fake-kaggle", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        for stall in self._all_stalls:
            stall.release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeKaggle":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ test-facing helpers

    def add_competition(self, name: str, zip_bytes: bytes | None = None, *, title: str | None = None,
                        leaderboard: list | None = None, rules_accepted: bool = True) -> dict:
        if zip_bytes is None:
            zip_bytes = _zip_of({"README.txt": b"fake competition data\n"})
        with self.lock:
            comp = {"name": name, "title": title or (COMPETITION_TITLE if name == COMPETITION else name),
                    "zip": zip_bytes, "rules_accepted": rules_accepted, "leaderboard": []}
            self.competitions[name] = comp
            self.set_competition_data(zip_bytes, name)
            if leaderboard:
                self.set_leaderboard(leaderboard, name)
            return comp

    def set_competition_data(self, zip_bytes: bytes, competition: str = COMPETITION) -> None:
        """The zip DownloadDataFiles serves (as <competition>.zip); its members back ListDataFiles."""
        with self.lock:
            self.competitions[competition]["zip"] = zip_bytes
            self._files[f"/files/competitions/{competition}/{competition}.zip"] = (
                zip_bytes, "application/zip", time.time())

    def set_leaderboard(self, rows: list, competition: str = COMPETITION) -> None:
        """rows: (team_name, score) pairs or dicts with teamName/score (teamId, submissionDate optional)."""
        board = []
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                entry = {"teamId": row.get("teamId", 5000 + i), "teamName": row["teamName"],
                         "submissionDate": row.get("submissionDate", _now_iso()),
                         "score": str(row["score"])}
            else:
                name, score = row
                entry = {"teamId": 5000 + i, "teamName": name, "submissionDate": _now_iso(),
                         "score": str(score)}
            board.append(entry)
        with self.lock:
            self.competitions[competition]["leaderboard"] = board

    def script_kernel_status(self, kernel: str, *statuses) -> None:
        """Statuses GetKernelSessionStatus returns in turn ("queued", "running", "complete",
        "error", "cancelAcknowledged"...; or (status, failure_message)); the last one repeats."""
        script = []
        for s in statuses:
            status, message = (s if isinstance(s, (tuple, list)) else (s, ""))
            script.append({"status": _enum_name(status), "failureMessage": message or ""})
        with self.lock:
            self._kernel(kernel, create=True)["status_script"] = script

    def set_kernel_output(self, kernel: str, files: dict[str, bytes], log: str = "") -> None:
        """Output files (served by the fake) and log that ListKernelSessionOutput lists (kernels_output
        writes the log as <slug>.log, kernels_logs returns it; Kaggle's is a JSON list of
        {stream_name, time, data})."""
        owner, slug = kernel.lower().split("/")
        with self.lock:
            k = self._kernel(kernel, create=True)
            k["output"] = dict(files)
            k["log"] = log
            for name, data in files.items():
                self._files[f"/files/kernels/{owner}/{slug}/output/{name}"] = (
                    data, "application/octet-stream", time.time())

    def add_dataset(self, ref: str, files: dict[str, bytes], *, title: str | None = None,
                    is_private: bool = True) -> dict:
        owner, slug = ref.split("/")
        with self.lock:
            ds = self._new_dataset(owner, slug, title or slug, is_private, "CC0-1.0", "", "", [])
            self._add_version(ds, files, notes="initial", body={})
            return ds

    def score_submission(self, ref: int | None = None, public_score: str | float = "",
                         status: str = "COMPLETE", error: str = "") -> dict:
        """Mark a code submission (default: the latest) scored / failed."""
        with self.lock:
            sub = self.submissions[-1] if ref is None else next(s for s in self.submissions if s["ref"] == ref)
            sub["status"] = _enum_name(status)
            sub["public_score"] = str(public_score)
            sub["error_description"] = error
            return sub

    def fail(self, endpoint: str, status: int = 500, *, times: int = 1, message: str | None = None,
             in_body: bool = False, json_body: bool = True, retry_after: float | None = None) -> None:
        """Queue `times` faults for `endpoint` (see module docstring)."""
        fault = Fault(status=status, message=message, in_body=in_body, json_body=json_body,
                      retry_after=retry_after)
        with self.lock:
            self._faults.setdefault(endpoint.lower(), []).extend(copy.copy(fault) for _ in range(times))

    def truncate(self, file_name: str, *, times: int = 1, keep: int | None = None) -> None:
        """The next `times` GETs of served file `file_name` announce its full Content-Length but
        send only `keep` bytes (default: half) and close the connection."""
        with self.lock:
            self._faults.setdefault(file_name.lower(), []).extend(
                Fault(status=200, truncate=True, keep=keep) for _ in range(times))

    def stall(self, endpoint: str, *, after_bytes: int | None = None, timeout: float = 60.0) -> Stall:
        """Hold the next answer of `endpoint` (RPC method name, served file name, "upload" or "*")
        after its headers and `after_bytes` of its body (default: half) until `.release` is set."""
        stall = Stall(after_bytes=after_bytes, timeout=timeout)
        with self.lock:
            self._stalls.setdefault(endpoint.lower(), []).append(stall)
            self._all_stalls.append(stall)
        return stall

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def pending_faults(self) -> dict[str, int]:
        with self.lock:
            return {k: len(v) for k, v in self._faults.items() if v}

    def calls(self, endpoint: str | None = None) -> list[Call]:
        with self.lock:
            if endpoint is None:
                return list(self.log)
            e = endpoint.lower()
            return [c for c in self.log
                    if c.endpoint.lower() == e or f"{c.service}/{c.endpoint}".lower() == e]

    def endpoints(self) -> list[str]:
        """The endpoints called so far, in order."""
        return [c.endpoint for c in self.calls()]

    def cli_env(self, home: str | os.PathLike, *, username: str | None = None, key: str | None = None,
                token: str | None = None, base: dict | None = None) -> dict[str, str]:
        """Environment for a `kaggle` CLI subprocess that reaches this server through http_proxy.
        Credentials: username/key (default: the server's), or only `token` (KAGGLE_API_TOKEN)."""
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not k.startswith("KAGGLE_") and k not in _PROXY_VARS}
        env.update(_isolated_dirs(Path(home)))
        env.update(_credentials(self, username, key, token))
        env["KAGGLE_API_ENVIRONMENT"] = "LOCALHOST"
        env["http_proxy"] = env["HTTP_PROXY"] = self.url
        return env

    # ------------------------------------------------------------------ request handling

    def _handle(self, h: BaseHTTPRequestHandler) -> _Response:
        target = h.path
        split = urlsplit(target)
        path = split.path or "/"
        base = f"http://{h.headers.get('Host') or f'127.0.0.1:{self.port}'}"
        call = Call(method=h.command, target=target, path=path, endpoint=path,
                    headers={k: v for k, v in h.headers.items()})
        try:
            raw = self._read_body(h)
        except Exception:  # noqa: BLE001 - a malformed body is answered, not fatal
            raw = b""
        user, scheme = self._who(h.headers.get("Authorization"))
        call.auth_user, call.auth_scheme = user, scheme
        with self.lock:
            try:
                api = _API_PATH.match(path)
                if h.command == "POST" and api:
                    call.service, call.endpoint = api.group(1), api.group(2)
                    response = self._api(call, raw, user, base)
                elif h.command in ("GET", "HEAD") and path.startswith("/files/"):
                    call.endpoint = path.rsplit("/", 1)[-1]
                    response = self._serve_file(call, h.headers)
                elif h.command == "PUT" and path.startswith("/upload/"):
                    call.endpoint = "upload"
                    response = self._receive_upload(call, path.rsplit("/", 1)[-1], raw, h.headers)
                else:
                    fault = self._take_fault(call, [])
                    response = self._fault_response(fault) if fault else self._error(
                        404, f"fake Kaggle has no endpoint {h.command} {path}")
            except ApiError as e:
                response = self._error(e.status, e.message)
            except Exception:  # noqa: BLE001 - report inside the fake as a 500, keep serving
                tb = traceback.format_exc()
                self.errors.append(tb)
                response = self._error(500, "fake Kaggle crashed: " + tb.strip().splitlines()[-1])
            call.status = response.status
            self.log.append(call)
            for name in (call.endpoint.lower(), "*"):
                if self._stalls.get(name) and h.command != "HEAD":
                    response.stall = self._stalls[name].pop(0)
                    break
        return response

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += h.rfile.read(size)
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    def _who(self, authorization: str | None) -> tuple[str | None, str | None]:
        """(username if the credentials are valid else None, auth scheme)."""
        if not authorization:
            return None, None
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                user, _, key = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None, scheme
            return (user if self.users.get(user) == key and key else None), scheme
        if scheme == "bearer":
            return self.tokens.get(value.strip()), scheme
        return None, scheme

    def _take_fault(self, call: Call, names: list[str]) -> Fault | None:
        for name in [n.lower() for n in names] + ["*"]:
            queue = self._faults.get(name)
            if queue:
                call.fault = queue.pop(0)
                return call.fault
        return None

    @staticmethod
    def _json(obj: Any, status: int = 200, headers: dict | None = None) -> _Response:
        return _Response(status, json.dumps(obj).encode(),
                         {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def _error(self, status: int, message: str | None = None, headers: dict | None = None,
               http_status: int | None = None) -> _Response:
        body = {"code": status, "message": message or _REASONS.get(status, "Error")}
        return self._json(body, status if http_status is None else http_status, headers)

    def _fault_response(self, fault: Fault) -> _Response:
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        message = fault.message or _REASONS.get(fault.status, "Error")
        if fault.in_body:
            return self._error(fault.status, message, headers, http_status=200)
        if not fault.json_body:
            return _Response(fault.status, message.encode(), {"Content-Type": "text/plain", **headers})
        return self._error(fault.status, message, headers)

    # ------------------------------------------------------------------ API dispatch

    def _api(self, call: Call, raw: bytes, user: str | None, base: str) -> _Response:
        try:
            call.body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            call.body = None
        fault = self._take_fault(call, [call.endpoint, f"{call.service}/{call.endpoint}"])
        if fault:
            return self._fault_response(fault)
        handler: Callable | None = getattr(self, "_rpc_" + call.endpoint.lower(), None)
        if handler is None:
            return self._error(404, f"fake Kaggle has no endpoint {call.service}/{call.endpoint}")
        if call.body is None or not isinstance(call.body, dict):
            return self._error(400, "request body is not a JSON object")
        if user is None and handler not in (self._rpc_introspecttoken,):
            return self._error(401, "Unauthenticated")
        return handler(call.body, user, base)

    # --- security ---

    def _rpc_introspecttoken(self, body, user, base):
        name = self.tokens.get(body.get("token", ""))
        if not name:
            return self._json({"active": False})
        return self._json({"active": True, "username": name, "userId": 1, "clientId": "fake",
                           "scope": "resources.admin:*", "exp": int(time.time()) + 3600})

    # --- competitions ---

    def _competition(self, name: str | None, *, need_rules: bool = False) -> dict:
        comp = self.competitions.get(name or "")
        if comp is None:
            raise ApiError(404, f"Competition '{name}' not found")
        if need_rules and not comp["rules_accepted"]:
            raise ApiError(403, "You must accept this competition's rules before you'll be able "
                                "to download files or make submissions")
        return comp

    def _competition_json(self, comp: dict, base: str) -> dict:
        return {"id": 21755, "ref": f"{base}/competitions/{comp['name']}", "title": comp["title"],
                "url": f"{base}/competitions/{comp['name']}", "category": "Getting Started",
                "reward": "Kudos", "deadline": "2030-12-31T23:59:00.000Z",
                "teamCount": len(comp["leaderboard"]), "userHasEntered": comp["rules_accepted"],
                "isKernelsSubmissionsOnly": True, "maxDailySubmissions": self.daily_submission_limit,
                "evaluationMetric": "MiFID"}

    def _rpc_listcompetitions(self, body, user, base):
        search = (body.get("search") or "").lower()
        comps = [self._competition_json(c, base) for c in self.competitions.values()
                 if search in c["name"].lower() or search in c["title"].lower()]
        return self._json({"competitions": comps})

    def _rpc_getcompetition(self, body, user, base):
        return self._json(self._competition_json(self._competition(body.get("competitionName")), base))

    def _rpc_listdatafiles(self, body, user, base):
        comp = self._competition(body.get("competitionName"), need_rules=True)
        with zipfile.ZipFile(io.BytesIO(comp["zip"])) as zf:
            files = [{"ref": i.filename, "name": i.filename, "totalBytes": i.file_size,
                      "creationDate": "2020-08-25T00:00:00.000Z"}
                     for i in zf.infolist() if not i.is_dir()]
        return self._json(self._page(body, files, "files"))

    def _rpc_downloaddatafiles(self, body, user, base):
        comp = self._competition(body.get("competitionName"), need_rules=True)
        name = comp["name"]
        return self._redirect(f"{base}/files/competitions/{name}/{name}.zip")

    def _rpc_downloaddatafile(self, body, user, base):
        comp = self._competition(body.get("competitionName"), need_rules=True)
        member = body.get("fileName", "")
        with zipfile.ZipFile(io.BytesIO(comp["zip"])) as zf:
            try:
                data = zf.read(member)
            except KeyError:
                raise ApiError(404, f"File '{member}' not found in competition {comp['name']}") from None
        path = f"/files/competitions/{comp['name']}/data/{member}"
        self._files[path] = (data, "application/octet-stream", time.time())
        return self._redirect(base + quote(path))

    def _rpc_getleaderboard(self, body, user, base):
        comp = self._competition(body.get("competitionName"))
        return self._json(self._page(body, comp["leaderboard"], "submissions"))

    def _rpc_downloadleaderboard(self, body, user, base):
        comp = self._competition(body.get("competitionName"))
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["Rank", "TeamId", "TeamName", "LastSubmissionDate", "Score"])
        for rank, row in enumerate(comp["leaderboard"], 1):
            writer.writerow([rank, row["teamId"], row["teamName"], row["submissionDate"], row["score"]])
        data = _zip_of({f"{comp['name']}-publicleaderboard.csv": out.getvalue().encode()})
        return _Response(200, data, {"Content-Type": "application/zip"})

    def _rpc_createcodesubmission(self, body, user, base):
        comp = self._competition(body.get("competitionName"), need_rules=True)
        owner, slug = body.get("kernelOwner", ""), body.get("kernelSlug", "")
        if not owner or not slug:
            raise ApiError(400, "kernelOwner and kernelSlug are required")
        version = body.get("kernelVersion")
        kernel = self.kernels.get(f"{owner}/{slug}".lower())
        if kernel is not None and kernel["versions"]:
            if version is not None and version > len(kernel["versions"]):
                raise ApiError(400, f"Kernel {owner}/{slug} has no version {version}")
            outputs = kernel.get("output")
            if outputs is not None and body.get("fileName") and body["fileName"] not in outputs:
                raise ApiError(400, f"Output file '{body['fileName']}' not found in {owner}/{slug}")
        ref = next(self._ids)
        self.submissions.append({
            "ref": ref, "competition": comp["name"], "kernel_owner": owner, "kernel_slug": slug,
            "kernel_version": version, "file_name": body.get("fileName", ""),
            "description": body.get("submissionDescription", ""), "user": user, "date": _now_iso(),
            "status": "PENDING", "public_score": "", "error_description": "", "raw": body})
        return self._json({"message": f"Successfully submitted to {comp['title']}", "ref": ref})

    def _submission_json(self, s: dict, base: str) -> dict:
        return {"ref": s["ref"], "date": s["date"], "description": s["description"],
                "errorDescription": s["error_description"], "fileName": s["file_name"],
                "publicScore": s["public_score"], "privateScore": "", "status": s["status"],
                "submittedBy": s["user"], "teamName": s["user"],
                "url": f"{base}/competitions/{s['competition']}/submissions?ref={s['ref']}"}

    def _rpc_listsubmissions(self, body, user, base):
        comp = self._competition(body.get("competitionName"))
        subs = [self._submission_json(s, base) for s in reversed(self.submissions)
                if s["competition"] == comp["name"] and s["user"] == user]
        return self._json(self._page(body, subs, "submissions"))

    def _rpc_getsubmission(self, body, user, base):
        for s in self.submissions:
            if s["ref"] == body.get("ref"):
                return self._json(self._submission_json(s, base))
        raise ApiError(404, f"Submission {body.get('ref')} not found")

    def _rpc_getsubmissionlimits(self, body, user, base):
        comp = self._competition(body.get("competitionName"))
        mine = [s for s in self.submissions if s["competition"] == comp["name"] and s["user"] == user]
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        n_today = sum(1 for s in mine if s["date"].startswith(today))
        return self._json({"numToday": n_today, "numTotal": len(mine),
                           "numAllowedNow": max(0, self.daily_submission_limit - n_today)})

    def _rpc_startsubmissionupload(self, body, user, base):
        self._competition(body.get("competitionName"), need_rules=True)
        return self._json(self._new_blob(body.get("fileName", "submission"),
                                         body.get("contentLength", 0), "SUBMISSION", base))

    def _rpc_createsubmission(self, body, user, base):
        self._competition(body.get("competitionName"), need_rules=True)
        raise ApiError(400, "This competition only accepts code submissions "
                            "(submit a notebook: kaggle competitions submit -k OWNER/SLUG -v N -f FILE)")

    # --- kernels ---

    def _kernel(self, ref: str, *, create: bool = False) -> dict:
        key = ref.lower()
        k = self.kernels.get(key)
        if k is None:
            if not create:
                raise ApiError(404, f"Kernel '{ref}' not found")
            owner, slug = key.split("/")
            k = {"ref": f"{owner}/{slug}", "owner": owner, "slug": slug, "id": next(self._ids),
                 "versions": [], "metadata": {}, "status_script": None, "output": None, "log": ""}
            self.kernels[key] = k
        return k

    def _rpc_savekernel(self, body, user, base):
        if body.get("slug"):
            owner, slug = _split_ref(body["slug"], user)
        elif body.get("id") is not None:
            match = [k for k in self.kernels.values() if k["id"] == body["id"]]
            if not match:
                raise ApiError(404, f"Kernel id {body['id']} not found")
            owner, slug = match[0]["owner"], match[0]["slug"]
        else:
            raise ApiError(400, "slug or id is required")
        if owner.lower() != user.lower():
            raise ApiError(403, f"Permission 'kernels.update' was denied for {owner}/{slug}")
        kernel = self._kernel(f"{owner}/{slug}", create=True)
        version = len(kernel["versions"]) + 1
        push = {
            "kernel": kernel["ref"], "slug": body.get("slug"), "id": body.get("id"),
            "title": body.get("newTitle"), "text": body.get("text", ""),
            "language": body.get("language"), "kernel_type": body.get("kernelType"),
            "is_private": body.get("isPrivate", False), "enable_gpu": body.get("enableGpu", False),
            "enable_tpu": body.get("enableTpu", False),
            "enable_internet": body.get("enableInternet", False),
            "dataset_data_sources": body.get("datasetDataSources", []),
            "competition_data_sources": body.get("competitionDataSources", []),
            "kernel_data_sources": body.get("kernelDataSources", []),
            "model_data_sources": body.get("modelDataSources", []),
            "category_ids": body.get("categoryIds", []),
            "docker_image_pinning_type": body.get("dockerImagePinningType"),
            "docker_image": body.get("dockerImage"), "machine_shape": body.get("machineShape"),
            "session_timeout_seconds": body.get("sessionTimeoutSeconds"),
            "version": version, "user": user, "raw": body,
        }
        self.pushes.append(push)
        kernel["versions"].append(push)
        kernel["metadata"] = push
        if kernel["status_script"] is None:
            kernel["status_script"] = [{"status": "COMPLETE", "failureMessage": ""}]
        invalid_comps = [c for c in push["competition_data_sources"] if c not in self.competitions]
        return self._json({"ref": f"/code/{kernel['ref']}", "url": f"{base}/code/{kernel['ref']}",
                           "versionNumber": version, "kernelId": kernel["id"], "error": "",
                           "invalidCompetitionSources": invalid_comps})

    def _rpc_getkernelsessionstatus(self, body, user, base):
        kernel = self._kernel(f"{body.get('userName', '')}/{body.get('kernelSlug', '')}")
        script = kernel["status_script"] or [{"status": "COMPLETE", "failureMessage": ""}]
        current = script.pop(0) if len(script) > 1 else script[0]
        kernel["status_script"] = script
        return self._json(dict(current))

    def _rpc_listkernelsessionoutput(self, body, user, base):
        kernel = self._kernel(f"{body.get('userName', '')}/{body.get('kernelSlug', '')}")
        files = [{"fileName": name, "url": f"{base}/files/kernels/{kernel['ref']}/output/{quote(name)}"}
                 for name in (kernel["output"] or {})]
        page = self._page(body, files, "files")
        if not body.get("pageToken"):
            page["log"] = kernel["log"]
        return self._json(page)

    def _kernel_metadata(self, kernel: dict, base: str) -> dict:
        m = kernel["metadata"]
        return {"id": kernel["id"], "ref": kernel["ref"], "title": m.get("title") or kernel["slug"],
                "author": kernel["owner"], "slug": kernel["slug"], "language": m.get("language"),
                "kernelType": m.get("kernel_type"), "isPrivate": m.get("is_private", True),
                "enableGpu": m.get("enable_gpu", False), "enableTpu": m.get("enable_tpu", False),
                "enableInternet": m.get("enable_internet", False),
                "datasetDataSources": m.get("dataset_data_sources", []),
                "competitionDataSources": m.get("competition_data_sources", []),
                "kernelDataSources": m.get("kernel_data_sources", []),
                "modelDataSources": m.get("model_data_sources", []),
                "categoryIds": m.get("category_ids", []), "machineShape": m.get("machine_shape"),
                "currentVersionNumber": len(kernel["versions"]), "lastRunTime": _now_iso()}

    def _rpc_getkernel(self, body, user, base):
        kernel = self._kernel(f"{body.get('userName', '')}/{body.get('kernelSlug', '')}")
        m = kernel["metadata"]
        return self._json({"metadata": self._kernel_metadata(kernel, base),
                           "blob": {"source": m.get("text", ""), "language": m.get("language"),
                                    "kernelType": m.get("kernel_type"), "slug": kernel["slug"]}})

    def _rpc_listkernels(self, body, user, base):
        owner = (body.get("user") or "").lower()
        search = (body.get("search") or "").lower()
        kernels = [self._kernel_metadata(k, base) for k in self.kernels.values()
                   if k["versions"] and (not owner or k["owner"] == owner) and search in k["slug"]]
        return self._json(self._page(body, kernels, "kernels"))

    # --- blobs and datasets ---

    def _new_blob(self, name: str, length: int, kind: str, base: str) -> dict:
        token = f"blob-{next(self._ids)}"
        self.blobs[token] = {"token": token, "name": name, "content_length": int(length or 0),
                             "type": kind, "data": bytearray(), "complete": False}
        return {"token": token, "createUrl": f"{base}/upload/{token}"}

    def _rpc_startblobupload(self, body, user, base):
        if not body.get("name"):
            raise ApiError(400, "name is required")
        blob = self._new_blob(body["name"], body.get("contentLength", 0), body.get("type", "DATASET"), base)
        self.blobs[blob["token"]]["content_type"] = body.get("contentType")
        return self._json(blob)

    def _receive_upload(self, call: Call, token: str, raw: bytes, headers) -> _Response:
        fault = self._take_fault(call, ["upload"])
        if fault:
            return self._fault_response(fault)
        blob = self.blobs.get(token)
        if blob is None:
            return self._error(404, f"upload {token} not found or expired")
        content_range = headers.get("Content-Range") or ""
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range)
        if content_range.startswith("bytes */") and not raw:
            pass  # a status query from a resuming client
        else:
            start = int(m.group(1)) if m else 0
            del blob["data"][start:]
            blob["data"] += raw
        if len(blob["data"]) >= blob["content_length"]:
            if not blob["complete"]:
                blob["complete"] = True
                self.uploads.append({"token": token, "name": blob["name"], "bytes": bytes(blob["data"]),
                                     "type": blob["type"]})
            return self._json({"token": token, "size": len(blob["data"])})
        got = len(blob["data"])
        return _Response(308, b"", {"Range": f"bytes=0-{got - 1}"} if got else {})

    def _files_from_tokens(self, files: list) -> dict[str, bytes]:
        out = {}
        for f in files or []:
            blob = self.blobs.get(f.get("token", ""))
            if blob is None or not blob["complete"]:
                raise ApiError(400, f"upload token {f.get('token')!r} is unknown or its upload is incomplete")
            out[blob["name"]] = bytes(blob["data"])
        return out

    def _new_dataset(self, owner, slug, title, is_private, license_name, subtitle, description,
                     keywords) -> dict:
        ds = {"ref": f"{owner}/{slug}", "owner": owner, "slug": slug, "id": next(self._ids),
              "title": title, "subtitle": subtitle or "", "description": description or "",
              "is_private": is_private, "license": license_name, "keywords": keywords,
              "status": "READY", "versions": []}
        self.datasets[ds["ref"].lower()] = ds
        return ds

    def _add_version(self, ds: dict, files: dict[str, bytes], notes: str, body: dict) -> dict:
        version = {"number": len(ds["versions"]) + 1, "files": files, "notes": notes,
                   "delete_old_versions": body.get("deleteOldVersions", False), "raw": body,
                   "date": _now_iso()}
        ds["versions"].append(version)
        self._files[f"/files/datasets/{ds['ref']}/{version['number']}/{ds['slug']}.zip"] = (
            _zip_of(files), "application/zip", time.time())
        return version

    def _dataset(self, owner: str | None, slug: str | None) -> dict:
        ds = self.datasets.get(f"{owner}/{slug}".lower())
        if ds is None:
            raise ApiError(404, f"Dataset {owner}/{slug} not found")
        return ds

    def _dataset_ok(self, ds: dict, base: str) -> _Response:
        return self._json({"ref": ds["ref"], "url": f"{base}/datasets/{ds['ref']}", "status": "ok",
                           "error": ""})

    def _rpc_createdataset(self, body, user, base):
        owner, slug = body.get("ownerSlug") or user, body.get("slug", "")
        if owner.lower() != user.lower():
            raise ApiError(403, f"Permission 'datasets.create' was denied for owner {owner}")
        if f"{owner}/{slug}".lower() in self.datasets:
            return self._json({"status": "error", "error": f"The dataset {owner}/{slug} already exists"})
        files = self._files_from_tokens(body.get("files", []))
        ds = self._new_dataset(owner, slug, body.get("title", slug), body.get("isPrivate", False),
                               body.get("licenseName"), body.get("subtitle"), body.get("description"),
                               body.get("categoryIds", []))
        self._add_version(ds, files, notes="", body=body)
        return self._dataset_ok(ds, base)

    def _create_version(self, ds: dict, body: dict, user: str, base: str) -> _Response:
        if ds["owner"].lower() != user.lower():
            raise ApiError(403, f"Permission 'datasets.update' was denied for {ds['ref']}")
        version_body = body.get("body", {})
        files = self._files_from_tokens(version_body.get("files", []))
        self._add_version(ds, files, notes=version_body.get("versionNotes", ""), body=version_body)
        return self._dataset_ok(ds, base)

    def _rpc_createdatasetversion(self, body, user, base):
        return self._create_version(self._dataset(body.get("ownerSlug"), body.get("datasetSlug")),
                                    body, user, base)

    def _rpc_createdatasetversionbyid(self, body, user, base):
        match = [d for d in self.datasets.values() if d["id"] == body.get("id")]
        if not match:
            raise ApiError(404, f"Dataset id {body.get('id')} not found")
        return self._create_version(match[0], body, user, base)

    def _rpc_getdatasetstatus(self, body, user, base):
        ds = self._dataset(body.get("ownerSlug"), body.get("datasetSlug"))
        return self._json({"status": _enum_name(ds["status"])})

    def _dataset_json(self, ds: dict, base: str) -> dict:
        latest = ds["versions"][-1]["files"] if ds["versions"] else {}
        return {"id": ds["id"], "ref": ds["ref"], "title": ds["title"], "subtitle": ds["subtitle"],
                "description": ds["description"], "ownerName": ds["owner"], "ownerRef": ds["owner"],
                "creatorName": ds["owner"], "url": f"{base}/datasets/{ds['ref']}",
                "isPrivate": ds["is_private"], "licenseName": ds["license"] or "",
                "totalBytes": sum(len(b) for b in latest.values()), "lastUpdated": _now_iso(),
                "currentVersionNumber": len(ds["versions"])}

    def _rpc_getdataset(self, body, user, base):
        return self._json(self._dataset_json(self._dataset(body.get("ownerSlug"), body.get("datasetSlug")),
                                             base))

    def _rpc_listdatasets(self, body, user, base):
        owner = (body.get("user") or "").lower()
        if (body.get("group") or "").upper().endswith("MY"):
            owner = user.lower()
        search = (body.get("search") or "").lower()
        found = [self._dataset_json(d, base) for d in self.datasets.values()
                 if (not owner or d["owner"].lower() == owner) and
                 (search in d["slug"].lower() or search in d["title"].lower())]
        return self._json(self._page(body, found, "datasets"))

    def _rpc_listdatasetfiles(self, body, user, base):
        ds = self._dataset(body.get("ownerSlug"), body.get("datasetSlug"))
        number = body.get("datasetVersionNumber") or len(ds["versions"])
        files = ds["versions"][number - 1]["files"] if ds["versions"] else {}
        listed = [{"ref": f"{ds['ref']}/{name}", "datasetRef": ds["ref"], "ownerRef": ds["owner"],
                   "name": name, "totalBytes": len(data), "creationDate": _now_iso()}
                  for name, data in files.items()]
        return self._json(self._page(body, listed, "datasetFiles"))

    def _rpc_getdatasetmetadata(self, body, user, base):
        ds = self._dataset(body.get("ownerSlug"), body.get("datasetSlug"))
        return self._json({"info": {"datasetId": ds["id"], "datasetSlug": ds["slug"],
                                    "ownerUser": ds["owner"], "title": ds["title"],
                                    "subtitle": ds["subtitle"], "description": ds["description"],
                                    "isPrivate": ds["is_private"], "keywords": ds["keywords"],
                                    "licenses": [{"name": ds["license"] or ""}]}})

    def _rpc_downloaddataset(self, body, user, base):
        ds = self._dataset(body.get("ownerSlug"), body.get("datasetSlug"))
        number = body.get("datasetVersionNumber") or len(ds["versions"])
        if not 1 <= number <= len(ds["versions"]):
            raise ApiError(404, f"Dataset {ds['ref']} has no version {number}")
        return self._redirect(f"{base}/files/datasets/{ds['ref']}/{number}/{ds['slug']}.zip")

    # --- shared bits ---

    @staticmethod
    def _redirect(location: str) -> _Response:
        return _Response(302, b"", {"Location": location})

    @staticmethod
    def _page(body: dict, items: list, key: str) -> dict:
        size = int(body.get("pageSize") or 20)
        start = int(body.get("pageToken") or 0)
        out = {key: items[start:start + size]}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out

    def _serve_file(self, call: Call, headers) -> _Response:
        fault = self._take_fault(call, [call.endpoint, "download"])
        if fault and not fault.truncate:
            return self._fault_response(fault)
        entry = self._files.get(unquote(call.path))
        if entry is None:
            return self._error(404, f"fake Kaggle has no file {call.path}")
        data, content_type, mtime = entry
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        common = {"Content-Type": content_type, "ETag": etag, "Accept-Ranges": "bytes",
                  "Last-Modified": email.utils.formatdate(mtime, usegmt=True)}
        status, body = 200, data
        m = re.match(r"bytes=(\d+)-$", headers.get("Range") or "")
        if_range = headers.get("If-Range")
        if m and (if_range is None or if_range == etag or if_range == common["Last-Modified"]):
            start = int(m.group(1))
            if start >= len(data):
                return _Response(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            status, body = 206, data[start:]
            common["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        response = _Response(status, body, common)
        if fault and fault.truncate:
            response.send_bytes = len(body) // 2 if fault.keep is None else min(fault.keep, len(body))
        return response


# ---------------------------------------------------------------------- connecting the client

def _isolated_dirs(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    dirs = {"HOME": home, "XDG_CONFIG_HOME": home / ".config", "KAGGLE_CONFIG_DIR": home / ".kaggle",
            "TMPDIR": home / "tmp"}
    for d in list(dirs.values())[1:]:
        d.mkdir(parents=True, exist_ok=True)
    return {k: str(v) for k, v in dirs.items()}


def _credentials(server, username: str | None, key: str | None, token: str | None) -> dict[str, str]:
    if token is not None:
        return {"KAGGLE_API_TOKEN": token}
    return {"KAGGLE_USERNAME": username if username is not None else server.username,
            "KAGGLE_KEY": key if key is not None else server.key}


def connect_in_process(server, monkeypatch, home: str | os.PathLike, *, username: str | None = None,
                       key: str | None = None, token: str | None = None):
    """Point the in-process `kaggle` client at `server` (anything with .url, .username, .key) for the
    rest of the test, and return a fresh, authenticated `KaggleApi`. See the module docstring.

    `username`/`key` default to the server's (pass a wrong key to test 401); with `token` the client
    authenticates with KAGGLE_API_TOKEN (Bearer) instead.
    """
    import tempfile

    for name in [n for n in os.environ if n.startswith("KAGGLE_") or n in _PROXY_VARS]:
        monkeypatch.delenv(name, raising=False)
    for name, value in _isolated_dirs(Path(home)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR (upload resume info lives there)
    for name, value in _credentials(server, username, key, token).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    import kaggle  # first import authenticates kaggle.api with the environment set above
    from kaggle.api.kaggle_api_extended import KaggleApi
    from kagglesdk import kaggle_env

    monkeypatch.setattr(KaggleApi, "args", ["--local"])
    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.LOCAL, server.url)
    config_dir = os.environ["KAGGLE_CONFIG_DIR"]
    monkeypatch.setattr(KaggleApi, "config_dir", config_dir)
    monkeypatch.setattr(KaggleApi, "config", os.path.join(config_dir, "kaggle.json"))
    # The import-time singleton: give it the fake's credentials now, its own back after the test.
    monkeypatch.setattr(kaggle.api, "config_values", dict(kaggle.api.config_values))
    monkeypatch.setattr(kaggle.api, "_authenticated", kaggle.api._authenticated)
    kaggle.api.authenticate()
    api = KaggleApi()
    api.authenticate()
    return api
