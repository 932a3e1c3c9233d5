"""The fake Kaggle server (tests/fake_kaggle.py) driven by the REAL installed `kaggle` client:
in-process (KaggleApi) and as the `kaggle` command line through http_proxy.

Besides proving the fake, these tests pin down how kaggle 2.2.x behaves, for painter to rely on:
* HTTP errors surface as requests.exceptions.HTTPError; e.response.status_code is the HTTP status
  (200 for the "JSON body with code >= 400" form) and str(e) is the body's "message";
* no retry of 4xx/5xx for competitions / kernels / submissions calls (429 included); the dataset
  create / version and blob-upload calls retry 429 (honouring Retry-After) but not 5xx;
* a truncated download is resumed by the client (Range request after a 2-3 s sleep, up to 5 times);
* kernels_output downloads output files without checking their HTTP status (before 2.2.5; 2.2.5 raises);
* kernels_status / kernels_output turn 401/403 into ValueError("Cannot access kernel ...").
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import requests
from requests.exceptions import HTTPError

from tests.fake_kaggle import COMPETITION, FakeKaggle, client_version, connect_in_process

REPO = Path(__file__).resolve().parents[1]
KAGGLE_CLI = Path(sys.executable).with_name("kaggle")
KERNEL_SLUG = "painter-cyclegan"
LEADERBOARD = [("Monet Lovers", "35.10"), ("painter-user", "41.27"), ("Brush Strokes", "52.00")]


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


COMP_ZIP = _zip({"monet_jpg/0001.jpg": os.urandom(3000), "photo_jpg/0001.jpg": os.urandom(5000),
                 "monet_tfrec/monet00-60.tfrec": os.urandom(1000)})


@pytest.fixture
def server():
    with FakeKaggle(competition_zip=COMP_ZIP, leaderboard=LEADERBOARD) as fake:
        yield fake
        assert not fake.errors, fake.errors[0]
        assert not fake.pending_faults(), "a queued fault was never consumed"


@pytest.fixture
def api(server, monkeypatch, tmp_path):
    return connect_in_process(server, monkeypatch, tmp_path / "home")


@pytest.fixture
def no_sleep(monkeypatch):
    """Record instead of doing the client's back-off sleeps."""
    import time
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def _kernel_folder(root: Path, owner: str, **meta) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    metadata = {"id": f"{owner}/{KERNEL_SLUG}", "title": "Painter CycleGAN", "code_file": "run.py",
                "language": "python", "kernel_type": "script", "is_private": True, "enable_gpu": True,
                "enable_internet": False, "competition_sources": [COMPETITION],
                "dataset_sources": [f"{owner}/painter-code"], "kernel_sources": [], "model_sources": [],
                "machine_shape": "NvidiaTeslaT4", **meta}
    (root / "kernel-metadata.json").write_text(json.dumps(metadata))
    (root / "run.py").write_text("print('painting')\n")
    return root


def _dataset_folder(root: Path, owner: str, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset-metadata.json").write_text(json.dumps(
        {"title": "Painter code bundle", "id": f"{owner}/painter-code", "licenses": [{"name": "CC0-1.0"}]}))
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


# ---------------------------------------------------------------------- competitions, in-process

def test_download_competition_zip_intact(server, api, tmp_path):
    api.competition_download_files(COMPETITION, path=str(tmp_path / "dl"), quiet=True)

    assert (tmp_path / "dl" / f"{COMPETITION}.zip").read_bytes() == COMP_ZIP
    post, get = server.calls()
    assert (post.method, post.path, post.service, post.endpoint) == (
        "POST", "/api/v1/competitions.CompetitionApiService/DownloadDataFiles",
        "competitions.CompetitionApiService", "DownloadDataFiles")
    assert post.body == {"competitionName": COMPETITION}
    assert (post.auth_user, post.auth_scheme, post.status) == (server.username, "basic", 302)
    assert (get.method, get.endpoint, get.status) == ("GET", f"{COMPETITION}.zip", 200)
    for call in server.calls():  # the key only ever travels in the Authorization header
        assert server.key not in call.target + json.dumps(call.body)


def test_list_and_download_single_file(server, api, tmp_path):
    listed = api.competition_list_files(COMPETITION)
    assert sorted((f.name, f.total_bytes) for f in listed.files) == sorted(
        (i.filename, i.file_size) for i in zipfile.ZipFile(io.BytesIO(COMP_ZIP)).infolist())

    api.competition_download_file(COMPETITION, "photo_jpg/0001.jpg", path=str(tmp_path), quiet=True)
    # kaggle 2.2.5 keeps the requested folder (photo_jpg/0001.jpg); earlier clients dropped it.
    landed = tmp_path / "photo_jpg" / "0001.jpg" if client_version() >= (2, 2, 5) else tmp_path / "0001.jpg"
    assert landed.read_bytes() == zipfile.ZipFile(io.BytesIO(COMP_ZIP)).read("photo_jpg/0001.jpg")


def test_wrong_key_is_401(server, monkeypatch, tmp_path):
    api = connect_in_process(server, monkeypatch, tmp_path / "home", key="not-the-key")
    with pytest.raises(HTTPError) as err:
        api.competition_download_files(COMPETITION, path=str(tmp_path), quiet=True)
    assert err.value.response.status_code == 401
    assert str(err.value) == "Unauthenticated"
    assert [(c.auth_scheme, c.auth_user, c.status) for c in server.calls()] == [("basic", None, 401)]


def test_rules_not_accepted_is_403_and_unknown_competition_is_404(server, api, tmp_path):
    server.competitions[COMPETITION]["rules_accepted"] = False
    with pytest.raises(HTTPError) as err:
        api.competition_download_files(COMPETITION, path=str(tmp_path), quiet=True)
    assert err.value.response.status_code == 403
    assert "accept this competition's rules" in str(err.value)

    with pytest.raises(HTTPError) as err:
        api.competition_download_files("no-such-competition", path=str(tmp_path), quiet=True)
    assert err.value.response.status_code == 404
    assert str(err.value) == "Competition 'no-such-competition' not found"


@pytest.mark.parametrize("in_body", [False, True], ids=["http-status", "code-in-200-body"])
@pytest.mark.parametrize("status", [401, 403, 404, 429, 500])
def test_injected_fault_raises_once_then_success(server, api, tmp_path, status, in_body):
    server.fail("DownloadDataFiles", status, in_body=in_body, message=f"injected {status}")
    with pytest.raises(HTTPError) as err:  # the client does not retry, not even 429
        api.competition_download_files(COMPETITION, path=str(tmp_path), quiet=True)
    assert err.value.response.status_code == (200 if in_body else status)
    assert str(err.value) == f"injected {status}"
    assert len(server.calls("DownloadDataFiles")) == 1

    api.competition_download_files(COMPETITION, path=str(tmp_path), quiet=True)
    assert (tmp_path / f"{COMPETITION}.zip").read_bytes() == COMP_ZIP


def test_plain_text_error_gives_requests_message(server, api, tmp_path):
    server.fail("DownloadDataFiles", 429, json_body=False, retry_after=0)
    with pytest.raises(HTTPError) as err:
        api.competition_download_files(COMPETITION, path=str(tmp_path), quiet=True)
    assert str(err.value) == ("429 Client Error: Too Many Requests for url: "
                              f"{server.url}/api/v1/competitions.CompetitionApiService/DownloadDataFiles")
    assert err.value.response.headers["Retry-After"] == "0"


def test_truncated_download_is_resumed_by_the_client(server, api, tmp_path, no_sleep):
    server.truncate(f"{COMPETITION}.zip")
    api.competition_download_files(COMPETITION, path=str(tmp_path), quiet=True)

    assert (tmp_path / f"{COMPETITION}.zip").read_bytes() == COMP_ZIP
    first, retry = server.calls(f"{COMPETITION}.zip")
    assert retry.headers["Range"].startswith("bytes=") and retry.status == 206  # resumes from what is on disk
    assert len(no_sleep) == 1 and 2 <= no_sleep[0] < 3


def test_always_truncated_download_fails_after_5_retries(server, api, tmp_path, no_sleep):
    server.truncate(f"{COMPETITION}.zip", times=6, keep=100)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.competition_download_files(COMPETITION, path=str(tmp_path), quiet=True)
    assert len(server.calls(f"{COMPETITION}.zip")) == 6


def test_a_stalled_download_holds_half_the_file_until_released(server, api, tmp_path):
    stall = server.stall(f"{COMPETITION}.zip", after_bytes=1000)
    download = threading.Thread(target=api.competition_download_files, args=(COMPETITION,),
                                kwargs={"path": str(tmp_path), "quiet": True})
    download.start()
    assert stall.reached.wait(30)
    download.join(0.3)
    assert download.is_alive()  # held mid-download...
    assert [(r.team_name, r.score) for r in api.competition_leaderboard_view(COMPETITION)] == LEADERBOARD
    assert server.endpoints() == ["DownloadDataFiles", f"{COMPETITION}.zip", "GetLeaderboard"]  # ...others go on
    stall.release.set()
    download.join(30)
    assert (tmp_path / f"{COMPETITION}.zip").read_bytes() == COMP_ZIP  # the rest followed on the same answer
    assert len(server.calls(f"{COMPETITION}.zip")) == 1


def test_leaderboard_view(server, api):
    rows = api.competition_leaderboard_view(COMPETITION)
    assert [(r.team_name, r.score) for r in rows] == LEADERBOARD
    assert server.calls("GetLeaderboard")[0].body == {"competitionName": COMPETITION, "pageSize": 20, "pageToken": ""}


def test_unknown_endpoint_is_404_naming_it(server):
    reply = requests.post(f"{server.url}/api/v1/foo.BarApiService/DoThing", json={},
                          auth=(server.username, server.key))
    assert reply.status_code == 404
    assert reply.json() == {"code": 404, "message": "fake Kaggle has no endpoint foo.BarApiService/DoThing"}


def test_bearer_token_credentials(server, monkeypatch, tmp_path):
    api = connect_in_process(server, monkeypatch, tmp_path / "home", token=server.token)
    api.competition_download_files(COMPETITION, path=str(tmp_path), quiet=True)
    introspect, download = server.calls()[:2]
    assert introspect.endpoint == "IntrospectToken" and introspect.body == {"token": server.token}
    assert (download.auth_scheme, download.auth_user) == ("bearer", server.username)


# ---------------------------------------------------------------------- kernels, in-process

def test_kernel_push_status_and_output(server, api, tmp_path):
    from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

    ref = f"{server.username}/{KERNEL_SLUG}"
    folder = _kernel_folder(tmp_path / "kernel", server.username)
    first = api.kernels_push(str(folder))
    second = api.kernels_push(str(folder), acc="NvidiaTeslaP100")
    assert (first.version_number, second.version_number) == (1, 2)
    assert first.url.endswith(f"/code/{ref}") and not first.error

    push = server.pushes[0]
    assert push["kernel"] == ref and push["slug"] == ref and push["title"] == "Painter CycleGAN"
    assert (push["language"], push["kernel_type"], push["text"]) == ("python", "script", "print('painting')\n")
    assert (push["is_private"], push["enable_gpu"], push["enable_internet"]) == (True, True, False)
    assert push["competition_data_sources"] == [COMPETITION]
    assert push["dataset_data_sources"] == [f"{server.username}/painter-code"]
    assert push["machine_shape"] == "NvidiaTeslaT4" and server.pushes[1]["machine_shape"] == "NvidiaTeslaP100"

    server.script_kernel_status(ref, "queued", "running", "complete")
    seen = [api.kernels_status(ref).status for _ in range(4)]
    assert seen == [KernelWorkerStatus.QUEUED, KernelWorkerStatus.RUNNING] + [KernelWorkerStatus.COMPLETE] * 2

    server.script_kernel_status(ref, ("error", "CUDA out of memory"))
    failed = api.kernels_status(ref)
    assert (failed.status, failed.failure_message) == (KernelWorkerStatus.ERROR, "CUDA out of memory")

    outputs = {"images.zip": _zip({"0.jpg": b"jpg"}), "score.json": b'{"mifid": 41.3}', "sample.png": b"\x89PNG"}
    server.set_kernel_output(ref, outputs, log='[{"data": "done"}]')
    files, token = api.kernels_output(ref, str(tmp_path / "out"))
    assert sorted(Path(f).name for f in files) == sorted([*outputs, f"{KERNEL_SLUG}.log"]) and not token
    for name, data in outputs.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert (tmp_path / "out" / f"{KERNEL_SLUG}.log").read_text() == '[{"data": "done"}]'


def test_kernel_client_quirks(server, api, tmp_path):
    ref = f"{server.username}/{KERNEL_SLUG}"
    api.kernels_push(str(_kernel_folder(tmp_path / "kernel", server.username)))
    server.fail("GetKernelSessionStatus", 403)
    with pytest.raises(ValueError, match="Cannot access kernel"):  # 401/403 become ValueError here
        api.kernels_status(ref)

    with pytest.raises(HTTPError) as err:
        api.kernels_status(f"{server.username}/never-pushed")
    assert err.value.response.status_code == 404

    server.set_kernel_output(ref, {"score.json": b"{}"})
    server.fail("score.json", 500)
    if client_version() >= (2, 2, 5):  # it checks the file download's status
        with pytest.raises(HTTPError) as err:
            api.kernels_output(ref, str(tmp_path / "out"))
        assert err.value.response.status_code == 500
    else:  # it does not: the error body lands in the file
        api.kernels_output(ref, str(tmp_path / "out"))
        assert json.loads((tmp_path / "out" / "score.json").read_text())["code"] == 500

    with pytest.raises(HTTPError) as err:  # pushing into someone else's account
        api.kernels_push(str(_kernel_folder(tmp_path / "other", "someone-else")))
    assert err.value.response.status_code == 403


# ---------------------------------------------------------------------- datasets, in-process

def test_dataset_create_and_new_version(server, api, tmp_path):
    ref = f"{server.username}/painter-code"
    v1 = {"pipeline.tar.gz": os.urandom(2048), "README.md": b"# painter\n"}
    folder = _dataset_folder(tmp_path / "ds", server.username, v1)
    created = api.dataset_create_new(str(folder), quiet=True)
    assert (created.status, created.ref) == ("ok", ref) and not created.error
    assert server.datasets[ref]["versions"][0]["files"] == v1
    assert server.datasets[ref]["is_private"] is True
    assert sorted(u["name"] for u in server.uploads) == sorted(v1)
    assert server.endpoints()[0] == "GetDatasetStatus" and server.calls()[0].status == 404
    assert server.endpoints()[-1] == "CreateDataset"
    assert sorted(server.endpoints()[1:-1]) == ["StartBlobUpload"] * 2 + ["upload"] * 2

    v2 = {**v1, "pipeline.tar.gz": os.urandom(1024)}
    (folder / "pipeline.tar.gz").write_bytes(v2["pipeline.tar.gz"])
    version = api.dataset_create_version(str(folder), "second", quiet=True, delete_old_versions=True)
    assert version.status == "ok"
    second = server.datasets[ref]["versions"][1]
    assert (second["files"], second["notes"], second["delete_old_versions"]) == (v2, "second", True)
    assert api.dataset_status(ref) == "ready"
    assert sorted(f.name for f in api.dataset_list_files(ref).files) == sorted(v2)

    again = api.dataset_create_new(str(folder), quiet=True)  # the client checks GetDatasetStatus first
    assert again.status == "error" and "already in use" in again.error


def test_dataset_calls_retry_429_and_resume_uploads(server, api, tmp_path, capfd):
    folder = _dataset_folder(tmp_path / "ds", server.username, {"a.txt": b"a" * 5000})
    server.fail("StartBlobUpload", 429, retry_after=0)
    server.fail("upload", 503)
    server.fail("CreateDataset", 429, retry_after=0)
    created = api.dataset_create_new(str(folder), quiet=True)

    assert created.status == "ok"
    assert [c.status for c in server.calls("CreateDataset")] == [429, 200]
    assert [c.status for c in server.calls("StartBlobUpload")] == [429, 200]
    assert [c.status for c in server.calls("upload")] == [503, 308, 200]  # PUT, status query, PUT
    assert server.uploads[0]["bytes"] == b"a" * 5000
    assert "Will retry in 0.0 seconds" in capfd.readouterr().err

    server.fail("CreateDatasetVersion", 500)  # 5xx is not retried
    with pytest.raises(HTTPError) as err:
        api.dataset_create_version(str(folder), "v2", quiet=True)
    assert err.value.response.status_code == 500


# ---------------------------------------------------------------------- submissions, in-process

def test_code_submission_and_submissions_list(server, api, tmp_path):
    from kagglesdk.competitions.types.submission_status import SubmissionStatus

    ref = f"{server.username}/{KERNEL_SLUG}"
    api.kernels_push(str(_kernel_folder(tmp_path / "kernel", server.username)))
    server.set_kernel_output(ref, {"images.zip": b"zip"})

    reply = api.competition_submit_code("images.zip", "cyclegan v1", COMPETITION, kernel=ref, kernel_version=1)
    assert reply.message == "Successfully submitted to I'm Something of a Painter Myself"
    sub = server.submissions[0]
    assert (sub["kernel_owner"], sub["kernel_slug"], sub["kernel_version"], sub["file_name"]) == (
        server.username, KERNEL_SLUG, 1, "images.zip")
    assert (sub["description"], sub["user"], sub["ref"]) == ("cyclegan v1", server.username, reply.ref)

    listed = api.competition_submissions(COMPETITION)
    assert [(s.ref, s.status) for s in listed] == [(reply.ref, SubmissionStatus.PENDING)]
    server.score_submission(public_score="41.3")
    scored = api.competition_submissions(COMPETITION)[0]
    assert (scored.status, scored.public_score, scored.file_name) == (SubmissionStatus.COMPLETE, "41.3", "images.zip")

    for kwargs in ({"kernel_version": 7}, {"file_name": "missing.zip"}):
        with pytest.raises(HTTPError) as err:
            api.competition_submit_code(**{"file_name": "images.zip", "message": "", "competition": COMPETITION,
                                           "kernel": ref, "kernel_version": 1, **kwargs})
        assert err.value.response.status_code == 400


# ---------------------------------------------------------------------- the CLI, as a subprocess

def _cli(env, *args, ok=True, cwd=None):
    done = subprocess.run([str(KAGGLE_CLI), *args], env=env, capture_output=True, text=True, timeout=60, cwd=cwd)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_cli_download_through_http_proxy(server, tmp_path):
    env = server.cli_env(tmp_path / "home")
    _cli(env, "competitions", "download", "-c", COMPETITION, "-p", str(tmp_path / "dl"))

    assert (tmp_path / "dl" / f"{COMPETITION}.zip").read_bytes() == COMP_ZIP
    post, get = server.calls()
    assert post.target == "http://localhost/api/v1/competitions.CompetitionApiService/DownloadDataFiles"
    assert post.headers["Host"] == "localhost" and post.auth_user == server.username
    assert get.target == f"http://localhost/files/competitions/{COMPETITION}/{COMPETITION}.zip"
    assert not list((tmp_path / "home" / ".kaggle").iterdir())  # nothing written to the config dir


def test_cli_wrong_key_and_errors(server, tmp_path):
    bad = _cli(server.cli_env(tmp_path / "home", key="wrong"), "competitions", "download",
               "-c", COMPETITION, "-p", str(tmp_path), ok=False)
    assert bad.returncode == 1 and server.calls()[-1].status == 401

    server.fail("DownloadDataFiles", 500, message="backend exploded")
    failed = _cli(server.cli_env(tmp_path / "home"), "competitions", "download", "-c", COMPETITION,
                  "-p", str(tmp_path), ok=False)
    assert failed.returncode == 1 and "backend exploded" in failed.stderr


def test_cli_dataset_kernel_submit_leaderboard_round_trip(server, tmp_path):
    env = server.cli_env(tmp_path / "home")
    user = server.username
    ref = f"{user}/{KERNEL_SLUG}"

    ds = _dataset_folder(tmp_path / "ds", user, {"code.tar.gz": b"code-v1"})
    assert "is being created" in _cli(env, "datasets", "create", "-p", str(ds)).stdout
    (ds / "code.tar.gz").write_bytes(b"code-v2")
    assert "is being created" in _cli(env, "datasets", "version", "-p", str(ds), "-m", "v2").stdout
    assert [v["files"] for v in server.datasets[f"{user}/painter-code"]["versions"]] == [
        {"code.tar.gz": b"code-v1"}, {"code.tar.gz": b"code-v2"}]

    pushed = _cli(env, "kernels", "push", "-p", str(_kernel_folder(tmp_path / "kernel", user))).stdout
    assert "Kernel version 1 successfully pushed" in pushed
    server.script_kernel_status(ref, "running", ("error", "boom"))
    assert 'has status "KernelWorkerStatus.RUNNING"' in _cli(env, "kernels", "status", ref).stdout
    assert 'Failure message: "boom"' in _cli(env, "kernels", "status", ref).stdout

    server.set_kernel_output(ref, {"images.zip": b"zipbytes", "score.json": b"{}"}, log="log")
    _cli(env, "kernels", "output", ref, "-p", str(tmp_path / "out"))
    assert (tmp_path / "out" / "images.zip").read_bytes() == b"zipbytes"

    submitted = _cli(env, "competitions", "submit", "-c", COMPETITION, "-k", ref, "-v", "1",
                     "-f", "images.zip", "-m", "from the CLI").stdout
    assert "Successfully submitted" in submitted and "4 submissions remaining today" in submitted
    assert server.submissions[0]["description"] == "from the CLI"

    board = _cli(env, "competitions", "leaderboard", COMPETITION, "-s", "-v").stdout
    assert any(line.startswith("5000,Monet Lovers,") and line.endswith(",35.10") for line in board.splitlines())
    assert {c.auth_user for c in server.calls() if c.service} == {user}


def test_connect_in_process_after_kaggle_was_imported_elsewhere(server, tmp_path):
    """connect_in_process works even when `kaggle` was imported first without any of its settings."""
    script = (
        "import sys, types, pytest\n"
        "import kaggle\n"  # imported with no credentials and the PROD environment
        "from tests.fake_kaggle import connect_in_process\n"
        "fake = types.SimpleNamespace(url=sys.argv[1], username=sys.argv[2], key=sys.argv[3])\n"
        "with pytest.MonkeyPatch.context() as mp:\n"
        "    api = connect_in_process(fake, mp, sys.argv[4])\n"
        "    api.competition_download_files('gan-getting-started', path=sys.argv[5], quiet=True)\n"
        "    kaggle.api.competition_leaderboard_view('gan-getting-started')\n"
        "print('OK')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env["HOME"] = str(tmp_path / "first-home")
    done = subprocess.run([sys.executable, "-c", script, server.url, server.username, server.key,
                           str(tmp_path / "home"), str(tmp_path / "dl")],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.endswith("OK\n"), done.stdout + done.stderr
    assert (tmp_path / "dl" / f"{COMPETITION}.zip").read_bytes() == COMP_ZIP
    assert server.endpoints() == ["DownloadDataFiles", f"{COMPETITION}.zip", "GetLeaderboard"]


def test_other_read_calls(server, api, tmp_path):
    """The list / view / pull calls painter may make around the main ones."""
    user = server.username
    server.add_dataset(f"{user}/painter-weights", {"generator.pt": b"W" * 100})
    assert [c.ref for c in api.competitions_list().competitions] == [f"{server.url}/competitions/{COMPETITION}"]
    assert [d.ref for d in api.dataset_list(user=user)] == [f"{user}/painter-weights"]
    assert json.loads(api.dataset_status(f"{user}/painter-weights", format="json")) == {
        "status": "ready", "current_version_number": 1}
    api.dataset_download_files(f"{user}/painter-weights", path=str(tmp_path / "dd"), unzip=True, quiet=True)
    assert (tmp_path / "dd" / "generator.pt").read_bytes() == b"W" * 100
    api.competition_leaderboard_download(COMPETITION, str(tmp_path / "lb"))
    with zipfile.ZipFile(tmp_path / "lb" / f"{COMPETITION}.zip") as zf:
        assert zf.read(f"{COMPETITION}-publicleaderboard.csv").decode().count("\n") == 1 + len(LEADERBOARD)
    assert api.competition_get_submission_limits(COMPETITION).num_allowed_now == 5

    api.kernels_push(str(_kernel_folder(tmp_path / "kernel", user)))
    assert [k.ref for k in api.kernels_list(user=user)] == [f"{user}/{KERNEL_SLUG}"]
    api.kernels_pull(f"{user}/{KERNEL_SLUG}", str(tmp_path / "pull"), metadata=True)
    assert (tmp_path / "pull" / f"{KERNEL_SLUG}.py").read_text() == "print('painting')\n"
    assert json.loads((tmp_path / "pull" / "kernel-metadata.json").read_text())["enable_gpu"] is True
