import json
import re
import subprocess
import sys
import types
import zipfile

import pandas as pd
import pytest
import torch
from PIL import Image

from pipeline import submit
from pipeline.cli import STAGES

from .conftest import REPO

TINY = ["--config", str(REPO / "configs" / "demo.toml"),
        "--set", "data.demo_paintings=24", "--set", "data.demo_photos=2",
        "--set", "model.g_channels=8", "--set", "model.d_channels=8", "--set", "model.latent_dim=16",
        "--set", "train.steps=4", "--set", "train.batch_size=8", "--set", "train.sample_every=2",
        "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
        "--set", "generate.batch_size=500", "--set", "score.max_images=64"]


def stage_lines(output: str) -> dict[str, str]:
    """{'train': 'running (...)' or 'up to date (...)'} from a run's output."""
    # Not anchored to line starts: a progress bar's last frame may precede a line in captured output.
    pattern = r"(download|prepare \d+px|train|generate|score|submit): (running|up to date)"
    return {m.group(1): m.group(2) for m in re.finditer(pattern, output)}


def test_whole_chain_then_cached_then_only_what_changed(painter, tmp_path):
    work, submissions = tmp_path / "work", tmp_path / "submissions"
    first = painter("run", *TINY)
    assert set(stage_lines(first.output).values()) == {"running"}
    assert str(submissions / "demo" / "images.zip") in first.output

    archive = submissions / "demo" / "images.zip"
    assert submit.validate_zip(archive, progress=False) == []
    with zipfile.ZipFile(archive) as z:
        assert len(z.namelist()) == 7000
    report = json.loads((submissions / "demo" / "score.json").read_text())
    assert report["swd"]["value"] > 0 and report["n_scored"] == 64 and report["n_generated"] == 7000
    assert report["inception"]["computed"] is False and "Inception" in report["inception"]["reason"]
    run_dir = work / "runs" / "demo"
    for name in ("train/samples.png", "train/losses.png", "train/generator.pt", "train/samples/step_000002.png"):
        assert (run_dir / name).is_file(), name
    metrics = pd.read_csv(run_dir / "train" / "metrics.csv")
    assert metrics["step"].tolist() == [1, 2, 3, 4] and metrics[["loss_d", "loss_g"]].notna().all().all()

    second = painter("run", *TINY)
    lines = stage_lines(second.output)
    assert set(lines) == {"download", "prepare 32px", "prepare 256px", "train", "generate", "score", "submit"}
    assert set(lines.values()) == {"up to date"}

    third = painter("run", *TINY, "--set", "train.steps=5")
    lines = stage_lines(third.output)
    assert {k for k, v in lines.items() if v == "running"} == {"train", "generate", "score", "submit"}
    assert "train: running (train.steps: 4 -> 5)" in third.output

    board = painter("leaderboard")
    table = pd.read_csv(work / "leaderboard.csv")
    runs = table[table["where"] == "local"].reset_index(drop=True)
    assert runs["run"].tolist() == ["demo"] and runs.loc[0, "steps"] == 5
    assert runs.loc[0, "swd"] == json.loads((run_dir / "score" / "score.json").read_text())["swd"]["value"]
    assert table[table["where"] == "baseline"]["arch"].tolist() == ["untouched photos"]  # the demo's 2 photos
    assert "demo" in board.output and "demo" in (work / "leaderboard.md").read_text()
    assert (work / "leaderboard.html").is_file()


def test_download_from_a_folder_is_cached_by_content(painter, tmp_path, monkeypatch):
    source = tmp_path / "competition"
    (source / "monet_jpg").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (256, 256), (i * 50, 10, 10)).save(source / "monet_jpg" / f"{i}.jpg")
    assert "download: running" in painter("download", "--source", str(source)).output
    monkeypatch.chdir(tmp_path)   # the same folder spelled differently is the same source
    assert "download: up to date" in painter("download", "--source", "competition").output
    Image.new("RGB", (256, 256), (0, 200, 0)).save(source / "monet_jpg" / "1.jpg")
    assert "download: running (digest changed)" in painter("download", "--source", str(source)).output
    copied = next((tmp_path / "work" / "raw").iterdir()) / "monet_jpg" / "1.jpg"
    assert copied.read_bytes() == (source / "monet_jpg" / "1.jpg").read_bytes()

    (tmp_path / "flat").mkdir()
    result = painter("download", "--source", str(tmp_path / "flat"), ok=False)
    assert result.exit_code == 1 and "has no monet_jpg/ folder" in result.output
    (tmp_path / "empty" / "monet_jpg").mkdir(parents=True)
    painter("download", "--source", str(tmp_path / "empty"))
    result = painter("prepare", "--source", str(tmp_path / "empty"), ok=False)
    assert result.exit_code == 1 and "has no paintings (monet_jpg/ is empty in" in result.output


def test_every_stage_names_the_data_with_source(painter, tmp_path):
    source = tmp_path / "competition"
    (source / "monet_jpg").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (256, 256), (i * 50, 10, 10)).save(source / "monet_jpg" / f"{i}.jpg")
    painter("download", "--source", str(source))
    prepared = painter("prepare", "--source", str(source), "--set", "data.resolution=32").output
    assert "prepare 32px: running" in prepared
    assert "prepare 32px: up to date" in painter("prepare", "--set", f"data.source={source}",
                                                 "--set", "data.resolution=32").output  # the same run either way
    shown = painter("config", "--source", str(source)).output
    assert f'source = "{source}"' in shown
    both = painter("prepare", "--source", str(source), "--set", f"data.source={source}", ok=False)
    assert both.exit_code == 2 and "--source or --set data.source, not both" in both.output
    for command in (["run"], ["train"], ["generate"], ["score"], ["submit"], ["sweep"], ["kernel", "push"]):
        assert "--source SOURCE" in painter(*command, "--help").output, command


def test_stage_without_its_input_says_what_to_run(painter):
    result = painter("train", "--config", str(REPO / "configs" / "demo.toml"), ok=False)
    assert result.exit_code == 1
    assert "no complete shards" in result.output and "run `painter prepare` first" in result.output


def test_kaggle_download_fails_early_and_says_what_it_needs(painter, tmp_path, monkeypatch):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    result = painter("run", "--config", str(REPO / "configs" / "dcgan.toml"), ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    for needed in ("kaggle.json", "KAGGLE_USERNAME", "rules", "--source DIR", "make demo"):
        assert needed in result.output
    assert not (tmp_path / "work" / "raw").exists() or not any((tmp_path / "work" / "raw").iterdir())


def test_bad_config_is_one_clear_line(painter):
    result = painter("prepare", "--set", "train.stepz=3", ok=False)
    assert result.exit_code == 1
    assert "unknown config key train.stepz" in result.output and "Traceback" not in result.output


def test_module_entry_point_lists_every_stage():
    result = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True,
                            check=True, cwd=REPO)
    for command in (*STAGES, "leaderboard", "run"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command


def test_help_shows_each_commands_first_sentence_whole(painter):
    from pipeline.cli import main

    for group, prefix in ((main, ()), (main.commands["kernel"], ("kernel",))):
        listed = " ".join(painter(*prefix, "--help").output.partition("Commands:")[2].split())  # lines joined
        for name, command in group.commands.items():
            sentence = command.help.split(".")[0].split("\n\n")[0]
            assert " ".join(sentence.split()) in listed, name
        assert "..." not in listed


def test_info_says_what_is_available_and_never_prints_secrets(painter, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123456789abcdef-secret")
    broken = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    broken.write_bytes(b"not weights")
    monkeypatch.setenv("PAINTER_INCEPTION_WEIGHTS", str(broken))
    result = painter("info")
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.output.splitlines())
    assert rows["kaggle credentials"] == "KAGGLE_USERNAME/KAGGLE_KEY" and "secret" not in result.output
    assert rows["inception weights"].startswith("PROBLEM") and "11 bytes" in rows["inception weights"]
    assert "cuda" in " ".join(rows) and rows["torch"][0].isdigit()


def test_info_on_a_gpu_says_its_precision_and_whether_this_torch_can_use_it(painter, monkeypatch):
    """Faked T4 properties; the kernel launch is real, so on a machine without a GPU it fails and says so."""
    real_gpu = torch.cuda.is_available()
    props = types.SimpleNamespace(name="Tesla T4", major=7, minor=5, total_memory=15 * 2 ** 30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in painter("info").output.splitlines())
    assert rows["cuda:0"].startswith("Tesla T4, 15 GiB, sm_75, no native bf16 (fp16 with loss scaling)")
    if not real_gpu:
        assert "NOT usable by this torch build" in rows["cuda:0"]


def test_a_wrong_weights_path_stops_the_chain_before_any_stage_and_names_where_it_came_from(painter, tmp_path,
                                                                                         monkeypatch):
    demo = ["--config", str(REPO / "configs" / "demo.toml")]
    result = painter("run", *demo, "--inception-weights", str(tmp_path / "missing.pth"), ok=False)
    assert result.exit_code == 1 and "(from --inception-weights) does not exist" in result.output
    monkeypatch.setenv("PAINTER_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    result = painter("run", *demo, ok=False)
    assert result.exit_code == 1 and "(from PAINTER_INCEPTION_WEIGHTS) does not exist" in result.output
    assert not (tmp_path / "work").exists()  # not a stage ran: no download, no training


def test_run_with_nproc_trains_under_torchrun_and_the_chain_goes_on_from_its_stamp(painter, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the torchrun processes import this painter
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = painter("run", *TINY, "--nproc", "2", "--until", "train")
    assert "torch.distributed.run --standalone --nproc_per_node=2 -m pipeline train" in result.output
    summary = json.loads((tmp_path / "work" / "runs" / "demo" / "train" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] and summary["steps"] == 4
    again = painter("run", *TINY, "--until", "train")  # one process: the same config, trained already
    assert stage_lines(again.output)["train"] == "up to date"


def test_a_setting_with_three_seeds_is_three_runs_and_one_leaderboard_row(painter, tmp_path):
    seeds = ["--set", "run.seeds=[0, 1, 2]", "--set", "score.inception=false",
             "--set", "generate.count=64"]  # the 64 images scored: a submission's 7,000 are not the point here
    result = painter("run", *TINY, *seeds, "--until", "score")
    assert "demo: run.seeds [0, 1, 2]: the runs demo-seed0, demo-seed1, demo-seed2" in result.output
    runs = tmp_path / "work" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["demo-seed0", "demo-seed1", "demo-seed2"]
    weights = [torch.load(runs / f"demo-seed{k}" / "train" / "generator.pt", weights_only=False)["state_dict"]
               for k in range(3)]
    assert not torch.equal(next(iter(weights[0].values())), next(iter(weights[1].values())))  # seeded apart
    from pipeline.config import tomllib
    trained = tomllib.loads((runs / "demo-seed1" / "train" / "config.toml").read_text())
    assert trained["train"]["seed"] == 1 and trained["run"]["seeds"] == []
    assert stage_lines(painter("run", *TINY, *seeds, "--until", "score").output)["train"] == "up to date"

    board = painter("leaderboard", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "board"))
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    setting = table[table["where"] == "seeds"]
    assert list(setting["run"]) == ["demo"] and list(setting["seeds"]) == ["0, 1, 2"]
    members = table[table["setting"] == "demo"]
    assert sorted(members["run"]) == ["demo-seed0", "demo-seed1", "demo-seed2"]
    assert list(table.index[table["setting"] == "demo"]) == [1, 2, 3]  # listed under their setting's row
    assert setting["swd"].iloc[0] == pytest.approx(members["swd"].mean())
    assert setting["seed_sd"].iloc[0] == pytest.approx(members["swd"].std())
    assert setting["swd_se"].iloc[0] == pytest.approx(members["swd"].std() / 3 ** 0.5)
    assert "  demo-seed0" in board.output
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "| 1 | **demo** | seeds |" in md and "|  | ↳ demo-seed1 | local |" in md and "### 1. demo-seed2" in md
    assert "### 1. demo (seeds)" not in md  # the setting's row has no card: its seeds have theirs
