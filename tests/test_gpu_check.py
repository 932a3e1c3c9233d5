"""bench/gpu_check.sh, the GPU machine's one command, run here as its CPU dry run (tiny sizes, every
phase) so that it cannot rot between GPU runs: each phase must pass and leave its files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from .conftest import REPO

SCRIPT = REPO / "bench" / "gpu_check.sh"
PHASES = ["data", "install", "tests", "train_throughput", "cyclegan_throughput", "score_throughput", "ray_sweep", "cut"]


def make_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel holding one module, `name`."""
    dist_info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": f"VERSION = {version!r}\n",
             f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def run_script(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def test_the_dry_run_runs_every_phase_and_packs_its_results(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "gpu_check_probe", "1.0")  # this environment lacks it: installed
    make_wheel(wheels, "six", "0.0.1")            # this environment has six: left as it is
    make_wheel(wheels, "torch", "0.0.1")          # never, whatever the machine has
    out = tmp_path / "out"

    result = run_script("--dry-run", "--pack", "--out", str(out), "--wheels", str(wheels))
    printed = result.stdout + result.stderr
    assert result.returncode == 0, printed[-6000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "gpu_check.tar.gz", "summary.json"]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True and summary["ok"] is True
    assert [p["name"] for p in summary["phases"]] == PHASES
    for phase in summary["phases"]:
        assert phase["status"] == "ok" and phase["seconds"] > 0 and phase["timeout_s"] > 0, phase
        assert phase["files"] and phase["command"] and not phase["key"].startswith("-"), phase
    keys = {p["name"]: p["key"] for p in summary["phases"]}
    assert keys["data"] == "8 paintings, 4 photos"
    assert re.fullmatch(r"0 passed, 0 failed, \d+ skipped", keys["tests"])  # no CUDA here: all skipped
    assert keys["cut"].startswith("SWD ")
    assert re.fullmatch(r"2 trials: lambda_nce 1\.0 SWD [\d.]+ ± [\d.]+, lambda_nce 2\.0 SWD .*", keys["ray_sweep"]) or \
        re.fullmatch(r"2 trials: lambda_nce 2\.0 SWD .*, lambda_nce 1\.0 SWD .*", keys["ray_sweep"]), keys["ray_sweep"]

    with tarfile.open(out / "gpu_check.tar.gz") as archive:
        names = set(archive.getnames())
        read = lambda name: archive.extractfile(name).read().decode()  # noqa: E731
        for phase in PHASES:
            assert f"{phase}.log" in names, phase
        for name in ("data.json", "install.json", "install.wheels.json", "tests.xml", "train_throughput.json",
                     "cyclegan_throughput.json", "score_throughput.json", "cut/score.json",
                     "cut/train_summary.json", "cut/samples.png", "cut/metrics.csv", "ray_sweep/leaderboard.csv",
                     "ray_sweep/leaderboard.html"):
            assert name in names, name
        wheel_actions = {w["wheel"].split("-")[0]: w["action"] for w in json.loads(read("install.wheels.json"))["wheels"]}
        assert wheel_actions == {"gpu_check_probe": "install", "six": "skipped", "torch": "refused"}
        assert re.search(r"Successfully installed gpu[-_]check[-_]probe", read("install.log"), re.I)
        env = json.loads(read("install.json"))
        assert env["versions"]["torch"] != "0.0.1" and env["versions"]["painter"] and not env["problems"]
        assert json.loads(read("train_throughput.json"))["cases"][0]["resolution"] == 64
        assert json.loads(read("cyclegan_throughput.json"))["cases"][0]["crop"] == 32
        assert json.loads(read("score_throughput.json"))["cases"][0]["count"] == 4
        trained = json.loads(read("cut/train_summary.json"))
        assert trained["arch"] == "cut" and trained["stopped"] == "max_minutes" and trained["photos"] == 4

    log = (out / "gpu_check.log").read_text()
    assert "DRY RUN" in log and "all phases ok" in log
    for phase in PHASES:
        assert re.search(rf"^{phase}\s+ok\s+\d+", log, re.M), phase  # the table


def test_it_refuses_a_used_output_folder_and_needs_one(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    used = run_script("--dry-run", "--out", str(tmp_path), timeout=30)
    assert used.returncode == 2 and "not empty" in used.stderr
    nowhere = run_script("--dry-run", env={"OUT": "", "GPU_CHECK_OUT": ""}, timeout=30)
    assert nowhere.returncode == 2 and "--out DIR" in nowhere.stderr
    assert run_script("--help", timeout=30).stdout.startswith("GPU check:")


def test_a_machine_without_ray_records_the_ray_phase_as_unavailable_not_failed(tmp_path):
    out, state = tmp_path / "out", tmp_path / "state"
    out.mkdir()
    state.mkdir()
    # This machine's own python3 has no Ray: the phase says what to carry and exits UNAVAILABLE (3).
    env = {"VPY": "python3", "STATE": str(state), "OUT_DIR": str(out), "DRY": "1", "DEVICE": "cpu", "SCRATCH": str(tmp_path)}
    phase = run_script("--phase", "ray_sweep", env=env, timeout=60)
    assert phase.returncode == 3 and "carry bench/wheels-ray/" in phase.stdout
    (out / "ray_sweep.log").write_text(phase.stdout)
    (state / "phases.tsv").write_text("data\tok\t0\t1.0\t30\t\nray_sweep\tunavailable\t3\t0.5\t240\t\n")
    subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check_tools.py"), "summary", str(out),
                    str(state / "phases.tsv"), "420", "1", "2"], check=True, capture_output=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is True  # a tool that is not there is said, not counted as a failure
    assert summary["phases"][1]["key"].startswith("ray_sweep: Ray Tune is not installed")
