"""`painter kernel push / status / pull` against the fake Kaggle server, with the REAL `kaggle` client;
and the script that runs on Kaggle (its GPU check, and once end to end on a fake /kaggle tree)."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.kernel import dataset as kernel_dataset
from pipeline.kernel import script as kernel_script
from pipeline.kernel import wheels as kernel_wheels
from pipeline.config import load_config, tomllib  # tomli on Python 3.10
from pipeline.errors import PainterError
from tests.fake_kaggle import COMPETITION, FakeKaggle, client_version, connect_in_process

from .conftest import REPO

DEMO = ["--config", str(REPO / "configs" / "demo.toml"), "--set", "train.steps=7"]
RUN = "demo"
SLUG = "painter-demo"


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            # A fixed date: the same files give the same bytes whenever they are zipped.
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def _fidelity_stand_in(version: str = "0.4.0", marker: str = "") -> bytes:
    """A small valid wheel standing in for torch-fidelity's (the tests never reach the registry)."""
    info = f"torch_fidelity-{version}.dist-info"
    return _zip({"torch_fidelity/__init__.py": f"__version__ = '{version}'{marker}\n",
                 f"{info}/METADATA": f"Metadata-Version: 2.1\nName: torch-fidelity\nVersion: {version}\n",
                 f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
                 f"{info}/RECORD": ""})


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """painter's own wheel, built for real once per session."""
    return kernel_wheels.build_project_wheel(tmp_path_factory.mktemp("built"), log=lambda _: None)


@pytest.fixture
def wheels(tmp_path, built_wheel) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / built_wheel.name).write_bytes(built_wheel.read_bytes())
    (folder / "torch_fidelity-0.4.0-py3-none-any.whl").write_bytes(_fidelity_stand_in())
    return folder


@pytest.fixture
def server():
    with FakeKaggle() as fake:
        yield fake
        assert not fake.errors, fake.errors[0]
        assert not fake.pending_faults(), "a queued fault was never consumed"


@pytest.fixture
def kaggle(server, monkeypatch, tmp_path):
    """The in-process client pointed at the fake, credentials in a private home."""
    return connect_in_process(server, monkeypatch, tmp_path / "home")


def _images_zip(replaced: dict[str, bytes] | None = None) -> bytes:
    """7,000 copies of one 256x256 RGB JPEG (what Kaggle, and validate_zip, accepts), some replaced."""
    jpeg = io.BytesIO()
    Image.fromarray(np.full((256, 256, 3), 90, np.uint8)).save(jpeg, "JPEG")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(7000):
            name = f"{i:05d}.jpg"
            archive.writestr(name, (replaced or {}).get(name, jpeg.getvalue()))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def valid_zip() -> bytes:
    return _images_zip()


def _push(painter, wheels: Path, *args: str, ok: bool = True):
    return painter("kernel", "push", *DEMO, "--wheels", str(wheels), *args, ok=ok)


def _embedded(text: str, name: str):
    """The value the rendered script assigns to `name`."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} = ... in the script")


# ---------------------------------------------------------------------- push

def test_push_uploads_wheels_and_pushes_the_rendered_kernel(painter, server, kaggle, wheels, tmp_path):
    from slugify import slugify  # what the kaggle client checks the title against

    user = server.username
    result = _push(painter, wheels)
    ref = f"{user}/{SLUG}"

    dataset = server.datasets[f"{user}/painter-wheels"]
    assert dataset["is_private"] is True and dataset["title"] == "painter wheels" and dataset["license"] == "CC0-1.0"
    assert [v["files"] for v in dataset["versions"]] == [{w.name: w.read_bytes() for w in wheels.iterdir()}]
    assert server.endpoints().count("CreateDataset") == 1

    push = server.pushes[-1]
    assert push["kernel"] == ref and push["slug"] == ref
    assert push["title"] == "painter demo" and slugify(push["title"]) == SLUG
    assert (push["language"], push["kernel_type"]) == ("python", "script")
    assert (push["is_private"], push["enable_gpu"], push["enable_internet"]) == (True, True, False)
    assert push["competition_data_sources"] == [COMPETITION]
    assert push["dataset_data_sources"] == [f"{user}/painter-wheels"]
    assert push["machine_shape"] == "NvidiaTeslaT4"

    folder = tmp_path / "work" / "kernels" / RUN
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    assert metadata == {"id": ref, "title": "painter demo", "code_file": "painter_kernel.py", "language": "python",
                        "kernel_type": "script", "is_private": True, "enable_gpu": True, "enable_internet": False,
                        "machine_shape": "NvidiaTeslaT4", "competition_sources": [COMPETITION],
                        "dataset_sources": [f"{user}/painter-wheels"]}
    script = push["text"]
    assert script == (folder / "painter_kernel.py").read_text()
    expected = load_config(DEMO[1], ["train.steps=7"]).to_dict()
    assert tomllib.loads(_embedded(script, "CONFIG_TOML")) == expected
    assert "steps = 7" in script
    assert (_embedded(script, "RUN_NAME"), _embedded(script, "GPU"), _embedded(script, "DATASET")) == (
        RUN, "t4", "painter-wheels")
    assert _embedded(script, "HOURS") == kernel_script.SESSION_HOURS
    # Kaggle stops the session at the same limit, should the kernel hang past its own deadline.
    assert push["session_timeout_seconds"] == kernel_script.SESSION_HOURS * 3600
    assert "WARNING" not in result.output

    record = json.loads((folder / "push.json").read_text())
    assert {k: record[k] for k in ("kernel", "version", "gpu", "dataset", "run")} == {
        "kernel": ref, "version": 1, "gpu": "t4", "dataset": f"{user}/painter-wheels", "run": RUN}
    assert record["url"].endswith(f"/code/{ref}") and record["config"] == expected and "pushed" in record
    assert record["url"] in result.output and "painter kernel status --wait" in result.output

    for gpu, shape in (("t4x2", "NvidiaTeslaT4"), ("p100", "NvidiaTeslaP100")):
        again = _push(painter, wheels, "--gpu", gpu)
        assert server.pushes[-1]["machine_shape"] == shape
        assert _embedded(server.pushes[-1]["text"], "GPU") == gpu
        assert json.loads((folder / "push.json").read_text())["version"] == len(server.pushes)
    assert "no kernels for the P100" in again.output  # warned at push time too

    _push(painter, wheels, "--hours", "2.5")
    assert _embedded(server.pushes[-1]["text"], "HOURS") == 2.5
    assert server.pushes[-1]["session_timeout_seconds"] == 9000
    assert json.loads((folder / "push.json").read_text())["hours"] == 2.5
    long = _push(painter, wheels, "--hours", "8")
    assert server.pushes[-1]["session_timeout_seconds"] == 8 * 3600
    assert "cannot be submitted to the competition (it can still serve a sweep)" in long.output
    assert "above the 5 hours (300 minutes) within which gan-getting-started's notebooks" in long.output
    pushes = len(server.pushes)
    for hours in ("0", "13"):
        refused = _push(painter, wheels, "--hours", hours, ok=False)
        assert "at most 12 hours" in refused.output and len(server.pushes) == pushes
    assert f"Default: {kernel_script.SESSION_HOURS:g}," in " ".join(painter("kernel", "push", "--help").output.split())


def test_upload_skipped_when_unchanged_new_version_when_changed(painter, server, kaggle, wheels):
    ref = f"{server.username}/painter-wheels"
    _push(painter, wheels)
    uploads = len(server.uploads)
    second = _push(painter, wheels)
    assert "upload skipped" in second.output
    assert len(server.uploads) == uploads and len(server.datasets[ref]["versions"]) == 1
    assert "CreateDatasetVersion" not in server.endpoints()

    (wheels / "torch_fidelity-0.4.0-py3-none-any.whl").write_bytes(_fidelity_stand_in(marker="  # changed"))
    _push(painter, wheels)
    versions = server.datasets[ref]["versions"]
    assert len(versions) == 2 and versions[1]["notes"].startswith("painter kernel push")
    assert versions[1]["files"]["torch_fidelity-0.4.0-py3-none-any.whl"] == _fidelity_stand_in(marker="  # changed")

    _push(painter, wheels, "--force")  # --force uploads even unchanged files
    assert len(server.datasets[ref]["versions"]) == 3


def test_local_inception_weights_go_along(painter, server, kaggle, wheels, tmp_path, monkeypatch):
    from pipeline.metrics import inception

    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"weights stand-in")  # the real file is 95 MB; find_weights is what decides
    monkeypatch.setattr(inception, "find_weights", lambda explicit=None: inception.Weights(weights, "test"))
    _push(painter, wheels)
    files = server.datasets[f"{server.username}/painter-wheels"]["versions"][0]["files"]
    assert files[weights.name] == b"weights stand-in"


def test_waits_until_kaggle_has_processed_the_upload():
    states = iter(["blobs_received", "blobs_decompressed", "ready"])
    api = types.SimpleNamespace(dataset_status=lambda ref: next(states))
    slept = []
    kernel_dataset._wait_until_ready(api, "someone/painter-wheels", lambda _: None, slept.append)
    assert slept == [kernel_dataset.READY_INTERVAL] * 2

    failed = types.SimpleNamespace(dataset_status=lambda ref: "failed")
    with pytest.raises(kernel_dataset.PainterError, match="as failed"):
        kernel_dataset._wait_until_ready(failed, "someone/painter-wheels", lambda _: None, slept.append)


def test_wheels_folder_must_hold_painter_and_fidelity(painter, server, kaggle, wheels):
    (wheels / "torch_fidelity-0.4.0-py3-none-any.whl").unlink()
    result = _push(painter, wheels, ok=False)
    assert result.exit_code != 0 and "torch_fidelity-*.whl" in result.output
    assert not server.pushes


def test_project_wheel_is_reproducible(built_wheel, tmp_path):
    again = kernel_wheels.build_project_wheel(tmp_path, log=lambda _: None)
    assert again.read_bytes() == built_wheel.read_bytes()  # so an unchanged painter is not uploaded again
    with zipfile.ZipFile(again) as archive:
        assert "pipeline/kernel/session.py" in archive.namelist()


def test_push_failures(painter, server, monkeypatch, tmp_path, wheels):
    connect_in_process(server, monkeypatch, tmp_path / "home", key="wrong")
    bad = _push(painter, wheels, ok=False)
    assert bad.exit_code == 1 and "rejected the credentials" in bad.output and not server.pushes

    connect_in_process(server, monkeypatch, tmp_path / "home")
    server.fail("SaveKernel", 403, message="Permission 'kernels.create' was denied")
    refused = _push(painter, wheels, ok=False)
    assert refused.exit_code == 1 and "kernels.create' was denied" in refused.output
    assert not (tmp_path / "work" / "kernels" / RUN / "push.json").exists()

    server.fail("SaveKernel", 500, retry_after=0)
    retried = _push(painter, wheels)
    assert [c.status for c in server.calls("SaveKernel")][-2:] == [500, 200]
    assert "retrying" in retried.output and len(server.pushes) == 1


def test_push_without_the_competition_attached(painter, server, kaggle, wheels, tmp_path):
    del server.competitions[COMPETITION]  # Kaggle answers such a push with invalidCompetitionSources
    result = _push(painter, wheels, ok=False)
    assert result.exit_code == 1 and "did not attach the competition gan-getting-started" in result.output
    assert "rules" in result.output and (tmp_path / "work" / "kernels" / RUN / "push.json").exists()


# ---------------------------------------------------------------------- status

def test_status_waits_until_complete(painter, server, kaggle, wheels):
    _push(painter, wheels)
    server.script_kernel_status(f"{server.username}/{SLUG}", "queued", "running", "running", "complete")
    result = painter("kernel", "status", *DEMO, "--wait", "--interval", "0.01")
    states = [line.split("kernel: ", 1)[1].split(" (")[0] for line in result.output.splitlines()
              if line.startswith("kernel: ") and "waiting" in line]
    assert states == ["queued", "running", "running", "complete"]
    assert "painter kernel pull" in result.output

    once = painter("kernel", "status", *DEMO)
    assert "kernel: complete" in once.output


def test_status_of_a_failed_kernel_exits_non_zero(painter, server, kaggle, wheels):
    _push(painter, wheels)
    server.script_kernel_status(f"{server.username}/{SLUG}", "running", ("error", "CUDA out of memory"))
    result = painter("kernel", "status", *DEMO, "--wait", "--interval", "0", ok=False)
    assert result.exit_code == 1
    assert "ended with status error: CUDA out of memory" in result.output


def test_status_before_any_push(painter):
    result = painter("kernel", "status", *DEMO, ok=False)
    assert result.exit_code == 1 and "never pushed" in result.output


# ---------------------------------------------------------------------- pull

SCORE = {"run": RUN, "n_generated": 7000, "swd": {"value": 41.5}, "nearest": {"n_copies": 0},
         "inception": {"computed": True, "fid": 60.25, "kid": 0.02, "mifid": 61.0}}


def test_pull_checks_then_replaces_the_submission_and_registers_the_run(painter, server, kaggle, wheels,
                                                                       valid_zip, tmp_path):
    ref = f"{server.username}/{SLUG}"
    _push(painter, wheels)
    outputs = {"images.zip": valid_zip, "score.json": json.dumps(SCORE).encode(), "samples.png": b"\x89PNG grid",
               "train-summary.json": b'{"arch": "dcgan", "steps": 7}'}
    server.set_kernel_output(ref, outputs, log="painter kernel: done")
    old = tmp_path / "submissions" / RUN
    old.mkdir(parents=True)
    (old / "stale.txt").write_text("from a local run")

    result = painter("kernel", "pull", *DEMO)
    folder = tmp_path / "submissions" / RUN
    for name, data in outputs.items():
        assert (folder / name).read_bytes() == data
    assert not (folder / "stale.txt").exists() and (folder / f"{SLUG}.log").read_text() == "painter kernel: done"
    info = json.loads((folder / "kernel.json").read_text())
    assert {k: info[k] for k in ("kernel", "version", "gpu", "run")} == {"kernel": ref, "version": 1, "gpu": "t4",
                                                                         "run": RUN}
    assert info["score"] == {"swd": 41.5, "swd_se": None, "fid": 60.25, "kid": 0.02, "mifid": 61.0, "near_copies": 0,
                             "n_generated": 7000}
    assert info["config"] == load_config(DEMO[1], ["train.steps=7"]).to_dict() and "pulled" in info
    assert info["train"] == {"arch": "dcgan", "steps": 7}
    registered = tmp_path / "work" / "runs" / RUN / "kaggle"
    assert json.loads((registered / "kernel.json").read_text()) == info
    assert (registered / "score.json").read_bytes() == outputs["score.json"]
    assert "MiFID 61.00" in result.output
    assert sorted(p.name for p in folder.parent.iterdir()) == [RUN]  # no staging left behind
    painter("leaderboard")
    board = pd.read_csv(tmp_path / "work" / "leaderboard.csv")
    row = board[board["where"] == "kaggle"].iloc[0]
    assert (row["run"], row["arch"], row["steps"], row["mifid"], row["swd"]) == (RUN, "dcgan", 7, 61.0, 41.5)

    # Credentials never land in anything painter wrote.
    for root in (tmp_path / "work", tmp_path / "submissions"):
        for path in root.rglob("*"):
            if path.is_file():
                assert server.key.encode() not in path.read_bytes(), path


def test_pull_refuses_an_error_body_in_place_of_images_zip(painter, server, kaggle, wheels, tmp_path):
    ref = f"{server.username}/{SLUG}"
    _push(painter, wheels)
    server.set_kernel_output(ref, {"images.zip": b"zip", "score.json": json.dumps(SCORE).encode()})
    # kaggle < 2.2.5 writes the error page into images.zip; 2.2.5 raises, painter retries and gets the bad zip.
    server.fail("images.zip", 500)
    result = painter("kernel", "pull", *DEMO, ok=False)
    assert result.exit_code == 1 and "not a valid submission" in result.output
    assert not (tmp_path / "submissions").exists() or not any((tmp_path / "submissions").iterdir())
    assert not (tmp_path / "work" / "runs" / RUN / "kaggle").exists()
    rejected = (tmp_path / "work" / "kernels" / RUN / "rejected-output" / "images.zip").read_bytes()
    if client_version() >= (2, 2, 5):
        assert rejected == b"zip" and "HTTP 500; retrying" in result.output
    else:
        assert json.loads(rejected)["code"] == 500


def test_pull_of_a_zip_the_kernel_wrote_badly_says_pulling_again_cannot_help(painter, server, kaggle, wheels,
                                                                            tmp_path):
    ref = f"{server.username}/{SLUG}"
    _push(painter, wheels)
    images = _images_zip({"00042.jpg": b"\xff\xd8 half a JPEG"})  # a whole zip; one member is no image
    server.set_kernel_output(ref, {"images.zip": images, "score.json": json.dumps(SCORE).encode()})
    result = painter("kernel", "pull", *DEMO, ok=False)
    rejected = tmp_path / "work" / "kernels" / RUN / "rejected-output"
    error = result.output[result.output.index("Error: "):].rstrip("\n")
    assert "\n" not in error and "pull again" not in error and "pulling again cannot help" in error
    assert "1 file(s) cannot be decoded" in error and "00042.jpg" in error
    assert "not an image file" in error and "BytesIO" not in error
    assert f"kept in {rejected}" in error and (rejected / "images.zip").read_bytes() == images
    assert not (tmp_path / "submissions" / RUN).exists()

    # The same zip cut short on the way is a failed download: pulling again is the cure.
    server.set_kernel_output(ref, {"images.zip": images[:len(images) // 2], "score.json": json.dumps(SCORE).encode()})
    cut = painter("kernel", "pull", *DEMO, ok=False)
    assert "pull again):\n  images.zip (" in cut.output and "is not a complete zip" in cut.output


def test_pull_stops_while_another_process_writes_the_submission(painter, server, kaggle, wheels, tmp_path):
    from .test_lock import HOLD

    _push(painter, wheels)
    server.set_kernel_output(f"{server.username}/{SLUG}", {"images.zip": _images_zip({}),
                                                           "score.json": json.dumps(SCORE).encode()})
    held = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "submissions" / RUN), str(held)],
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        while not held.exists():
            assert holder.poll() is None
            time.sleep(0.1)
        result = painter("kernel", "pull", *DEMO, ok=False)  # e.g. `painter submit` of the same run
        assert f"kernel pull: {tmp_path / 'submissions' / RUN} is being written by PID {holder.pid}" in result.output
    finally:
        holder.kill()
        holder.wait()


def test_pull_of_a_failed_kernel_shows_why_and_how_to_push_again(painter, server, kaggle, wheels, tmp_path):
    ref = f"{server.username}/{SLUG}"
    _push(painter, wheels, "--hours", "3")
    server.script_kernel_status(ref, ("error", "Your notebook tried to allocate more memory than is available."))
    # A finished session's log as Kaggle serves it: a JSON list of {stream_name, time, data}.
    events = [{"stream_name": "stdout", "time": i, "data": f"train: step {i}\n"} for i in range(40)]
    events.append({"stream_name": "stderr", "time": 40, "data": "Traceback (most recent call last):\n"
                                                                 "torch.OutOfMemoryError: CUDA out of memory\n"})
    server.set_kernel_output(ref, {}, log=json.dumps(events))

    result = painter("kernel", "pull", *DEMO, ok=False)
    assert result.exit_code == 1 and "status --wait" not in result.output
    assert "ended with status error: Your notebook tried to allocate more memory" in result.output
    assert "  torch.OutOfMemoryError: CUDA out of memory" in result.output and "train: step 39" in result.output
    assert "train: step 5\n" not in result.output  # the tail only
    saved = tmp_path / "work" / "kernels" / RUN / "failed.log"
    assert str(saved) in " ".join(result.output.split()) and "train: step 5\n" in saved.read_text()
    assert "push again: `painter kernel push --gpu t4 --hours 3` with the same --config/--set" in result.output
    assert not (tmp_path / "submissions").exists()

    status = painter("kernel", "status", *DEMO, ok=False)  # status says the same
    assert "CUDA out of memory" in status.output and "painter kernel push" in status.output


def test_pull_waits_for_a_complete_kernel(painter, server, kaggle, wheels, tmp_path):
    _push(painter, wheels)
    server.script_kernel_status(f"{server.username}/{SLUG}", "running")
    result = painter("kernel", "pull", *DEMO, ok=False)
    assert result.exit_code == 1 and "has status running, not complete" in result.output
    assert "ListKernelSessionOutput" not in server.endpoints()


# ---------------------------------------------------------------------- the script that runs on Kaggle

def _script_module():
    spec = importlib.util.spec_from_file_location("painter_kernel_template",
                                                  kernel_script.TEMPLATE_DIR / kernel_script.SCRIPT_NAME)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ARCHS = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]  # a cu128 build


def _cuda(capability=(7, 5), name="Tesla T4", count=1, available=True, archs=ARCHS):
    return types.SimpleNamespace(is_available=lambda: available, device_count=lambda: count,
                                 get_arch_list=lambda: archs, get_device_name=lambda i: name,
                                 get_device_capability=lambda i: capability)


def test_gpu_check_stops_at_once_on_an_unsupported_gpu():
    script = _script_module()
    probed = []
    with pytest.raises(script.Stop, match=r"sm_60.*not supported.*--gpu t4"):
        script.check_gpu("p100", cuda=_cuda((6, 0), "Tesla P100-PCIE-16GB"), probe=probed.append)
    assert probed == []  # stopped before touching the GPU

    assert "Tesla T4 (sm_75)" in script.check_gpu("t4", cuda=_cuda(), probe=probed.append)
    assert "2 GPU(s)" in script.check_gpu("t4x2", cuda=_cuda(count=2), probe=probed.append)
    assert probed == [0, 0, 1]
    with pytest.raises(script.Stop, match="has 1"):
        script.check_gpu("t4x2", cuda=_cuda(count=1), probe=probed.append)
    with pytest.raises(script.Stop, match="GPU accelerator off"):
        script.check_gpu("t4", cuda=_cuda(available=False))
    assert "CPU" in script.check_gpu("t4", "cpu", cuda=_cuda(available=False))

    def broken(index):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")
    with pytest.raises(script.Stop, match="no kernel image"):
        script.check_gpu("t4", cuda=_cuda(), probe=broken)

    assert script.arch_supported((8, 9), ["sm_80"]) and script.arch_supported((9, 0), ["sm_90a"])
    assert script.arch_supported((12, 1), ["sm_90", "compute_120"])
    assert not script.arch_supported((6, 0), ["sm_70", "compute_70"])
    assert not script.arch_supported((8, 0), ["sm_86"])


def test_template_refuses_to_run_unrendered(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTER_KAGGLE_ROOT", str(tmp_path))
    assert _script_module().main() == 1


def test_rendered_script_runs_a_capped_session_on_a_fake_kaggle_tree(tmp_path):
    """The chain on a fake /kaggle (demo-sized, on the CPU, t4x2's torchrun path), painter already importable,
    in a session so short (72 s) that the run's 100,000 steps are cut at the first check: it still leaves a
    valid images.zip. (Translation under torchrun: tests/test_translation.py; generating 7,000 translations
    at 256 px would take minutes on a CPU even with the smallest generator.)"""
    root = tmp_path / "kaggle"
    rng = np.random.default_rng(0)
    for folder in ("monet_jpg", "photo_jpg"):
        (root / "input" / COMPETITION / folder).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(
                root / "input" / COMPETITION / folder / f"{i}.jpg")
    (root / "input" / "painter-wheels").mkdir()
    (root / "input" / "painter-wheels" / "painter-0.1.0-py3-none-any.whl").write_bytes(b"unused here")
    hours = 0.02
    cfg = load_config(REPO / "configs" / "demo.toml", [
        "run.device=cpu", "model.g_channels=8", "model.d_channels=8", "model.latent_dim=16", "train.batch_size=4",
        "train.steps=100000", "train.sample_every=1", "train.checkpoint_every=1", "train.log_every=1",
        "generate.batch_size=1000", "score.max_images=16", "score.inception=false"])
    kernel_script.render_kernel(tmp_path / "k", user="someone", run=cfg.run.name, gpu="t4x2", config_toml=cfg.to_toml(),
                         dataset="someone/painter-wheels", hours=hours)
    env = dict(os.environ, PAINTER_KAGGLE_ROOT=str(root), PAINTER_KERNEL_SKIP_INSTALL="1",
               PAINTER_KERNEL_WORKDIR=str(tmp_path / "w"), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(tmp_path / "k" / "painter_kernel.py")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "torch.distributed.run" in done.stdout

    working = root / "working"
    assert {"images.zip", "score.json", "samples.png", "losses.png", "nearest.png", "kernel-run.json"} <= {
        p.name for p in working.iterdir()}
    from pipeline.submit import validate_zip
    assert validate_zip(working / "images.zip", progress=False) == []
    assert json.loads((working / "score.json").read_text())["run"] == cfg.run.name
    trained = json.loads((working / "train-summary.json").read_text())
    assert trained["world_size"] == 2 and trained["ranks_in_sync"] and trained["arch"] == cfg.model.arch
    run = json.loads((working / "kernel-run.json").read_text())
    assert run["hours"] == hours
    # Cut short: both ranks stopped at rank 0's word after one step, evaluated there, and generate used it.
    assert trained["stopped"] == run["training_stopped"] == "deadline"
    assert trained["steps"] == 1 and trained["planned_steps"] == 100_000
    assert trained["best"]["step"] == 1 and "from best.pt (step 1" in done.stdout
    assert "to finish inside 0.02 h" in done.stdout


def test_the_deadline_keeps_time_for_what_follows_training(monkeypatch):
    from pipeline.errors import PainterError
    from pipeline.stopping import DEADLINE_ENV, Deadline

    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    assert Deadline.from_env(7000) is None
    monkeypatch.setenv(DEADLINE_ENV, "tomorrow")
    with pytest.raises(PainterError, match="seconds since the epoch"):
        Deadline.from_env(7000)

    monkeypatch.setenv(DEADLINE_ENV, "1000000")
    deadline = Deadline.from_env(7000)
    assert deadline.at == 1_000_000 and deadline.reserve() == Deadline.AFTER_FIXED
    deadline.per_training_image = 0.01  # before any evaluation: the training speed stands in
    assert deadline.reserve() == pytest.approx(Deadline.AFTER_FIXED + Deadline.AFTER_PASSES * 70)
    deadline.per_image = 0.002  # an evaluation measured it: that wins
    assert deadline.reserve() == pytest.approx(Deadline.AFTER_FIXED + Deadline.AFTER_PASSES * 14)
    assert deadline.reached()  # 1970 is long past
    script = _script_module()
    assert script.deadline(0.0) == pytest.approx(script.HOURS * 3600 - min(0.1 * script.HOURS * 3600, 600))


# ---------------------------------------------------------------------- a sweep on Kaggle

SWEEP_SPEC = """
[sweep]
presets = ["demo"]
budget = "schedule"
name = "k"
[grid]
"train.ema_decay" = [0.9, 0.99, 0.999]
[set]
"train.steps" = 7
"""
TRIALS = ["k-demo-ema_decay0.9", "k-demo-ema_decay0.99", "k-demo-ema_decay0.999"]


def _sweep_outputs(server, valid_zip, statuses):
    from pipeline.kernel.script import kernel_slug

    for run, script in zip(TRIALS, statuses):
        ref = f"{server.username}/{kernel_slug(run)}"
        server.script_kernel_status(ref, *script)
        server.set_kernel_output(ref, {"images.zip": valid_zip, "score.json": json.dumps({**SCORE, "run": run}).encode(),
                                       "train-summary.json": b'{"arch": "dcgan", "steps": 7}'},
                                 log="painter kernel: Traceback ... CUDA out of memory")


def _open_kernels(server) -> int:
    """The most kernels pushed and not yet pulled at any time, from the fake's log of calls."""
    most = open_now = 0
    for call in server.calls():
        if call.endpoint == "SaveKernel":
            open_now += 1
        elif call.endpoint == "ListKernelSessionOutput":  # one per pull
            open_now -= 1
        most = max(most, open_now)
    return most


def test_a_sweep_on_kaggle_runs_two_kernels_at_a_time_and_ranks_what_it_pulls(painter, server, kaggle, wheels,
                                                                              valid_zip, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP_SPEC)
    _sweep_outputs(server, valid_zip, [("running", "running", "complete"), ("running", "complete"),
                                       ("running", ("error", "CUDA out of memory"))])
    args = ["sweep", "--backend", "kaggle", "--spec", str(spec), "--wheels", str(wheels), "--interval", "0"]
    result = painter(*args, ok=False)
    assert result.exit_code == 1
    assert len(server.calls("SaveKernel")) == 3 and _open_kernels(server) == 2  # the third waited for a slot
    assert "uses up to 15 GPU hours (--hours 5 each) of Kaggle's weekly 30" in result.output
    assert "k-demo-ema_decay0.999 FAILED: the kernel" in result.output and "CUDA out of memory" in result.output
    assert "1 of 3 trials failed on Kaggle: k-demo-ema_decay0.999" in result.output
    table = pd.read_csv(tmp_path / "work" / "leaderboard.csv")
    assert sorted(table["run"]) == TRIALS[:2] and set(table["where"]) == {"kaggle"}

    again = painter(*args, ok=False)  # finished trials are not pushed again, nor is the failed one
    assert len(server.calls("SaveKernel")) == 3
    assert "2 pulled, 1 failed" in again.output and "--retry-failed pushes it again" in again.output
    server.script_kernel_status(f"{server.username}/painter-k-demo-ema-decay0-999", "complete")
    retried = painter(*args, "--retry-failed")
    assert len(server.calls("SaveKernel")) == 4 and "k-demo-ema_decay0.999 pulled" in retried.output
    assert sorted(pd.read_csv(tmp_path / "work" / "leaderboard.csv")["run"]) == TRIALS


def test_a_stopped_kaggle_sweep_reattaches_to_its_kernels_without_pushing_them_again(server, kaggle, wheels,
                                                                                    valid_zip, tmp_path):
    from pipeline import sweep, sweep_spec
    from pipeline.kernel import sweep as on_kaggle
    from pipeline.layout import Workdir

    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP_SPEC)
    configs, wd = sweep.plan(sweep_spec.load_spec(spec)), Workdir(tmp_path / "work")
    _sweep_outputs(server, valid_zip, [("running",) * 3 + ("complete",)] * 3)

    def ctrl_c(_seconds):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # stopped after its first look: two kernels pushed, running
        on_kaggle.run(configs, wd, tmp_path / "submissions", wheels=wheels, log=lambda _: None, sleep=ctrl_c)
    assert len(server.calls("SaveKernel")) == 2
    assert [t.state for t in on_kaggle.states(configs, wd)] == ["pushed", "pushed", "queued"]
    trials = on_kaggle.run(configs, wd, tmp_path / "submissions", wheels=wheels, log=lambda _: None,
                           sleep=lambda _: None)
    assert [t.state for t in trials] == ["pulled"] * 3 and len(server.calls("SaveKernel")) == 3
    with pytest.raises(PainterError, match="more than Kaggle's weekly 30"):  # 3 new kernels x 12 h
        on_kaggle.run(configs, Workdir(tmp_path / "other"), tmp_path / "submissions", hours=12, wheels=wheels,
                      log=lambda _: None)
