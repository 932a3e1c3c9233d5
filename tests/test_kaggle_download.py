"""`painter download --source kaggle` through the real `kaggle` client, against a fake Kaggle on 127.0.0.1."""

import io
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from pipeline import kaggle_api

from .conftest import REPO, SHARED_DATA
from .fake_kaggle import DEFAULT_KEY, FakeKaggle, connect_in_process


def competition_zip(paintings: int = 24, photos: int = 4, extra: dict | None = None) -> bytes:
    """The competition's layout with real JPEGs from ../shared/data (or small generated ones)."""
    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for folder, count in (("monet_jpg", paintings), ("photo_jpg", photos)):
            files = sorted((SHARED_DATA / folder).glob("*.jpg"))[:count]
            for i in range(count):
                if i < len(files):
                    zf.write(files[i], f"{folder}/{files[i].name}")
                else:
                    image = io.BytesIO()
                    Image.new("RGB", (256, 256), (i * 9 % 255, 80, 140)).save(image, "JPEG")
                    zf.writestr(f"{folder}/{i:04d}.jpg", image.getvalue())
        zf.writestr("monet_tfrec/monet00-60.tfrec", os.urandom(2000))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def no_sleep(monkeypatch):
    import time
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


@pytest.fixture
def kaggle(monkeypatch, tmp_path):
    """A fake Kaggle with the competition's layout, and the in-process client pointed at it."""
    with FakeKaggle(competition_zip=competition_zip()) as server:
        connect_in_process(server, monkeypatch, tmp_path / "home")
        yield server
        assert not server.errors, server.errors[0]


def raw(tmp_path) -> Path:
    return tmp_path / "work" / "raw" / "kaggle"


def no_half_written_output(tmp_path) -> bool:
    parent = tmp_path / "work" / "raw"
    return not parent.exists() or not any(p.name.startswith("kaggle") for p in parent.iterdir())


def test_download_extracts_the_images_and_is_cached(painter, kaggle, tmp_path):
    first = painter("download", "--source", "kaggle")
    assert "download: running" in first.output and "extracted 24 monet_jpg, 4 photo_jpg" in first.output
    assert len(list((raw(tmp_path) / "monet_jpg").glob("*.jpg"))) == 24
    assert not (raw(tmp_path) / "monet_tfrec").exists() and not (raw(tmp_path) / "_download").exists()
    calls = len(kaggle.calls("DownloadDataFiles"))
    assert "download: up to date" in painter("download", "--source", "kaggle").output
    assert len(kaggle.calls("DownloadDataFiles")) == calls  # cached: no second request


@pytest.mark.parametrize("status, expected", [
    (401, "rejected the credentials"),
    (403, kaggle_api.RULES_URL),
    (404, "found nothing"),
])
def test_refusals_get_a_clear_message_and_leave_nothing(painter, kaggle, tmp_path, status, expected):
    kaggle.fail("DownloadDataFiles", status)
    result = painter("download", "--source", "kaggle", ok=False)
    assert result.exit_code == 1 and expected in result.output and "Traceback" not in result.output
    assert DEFAULT_KEY not in result.output and no_half_written_output(tmp_path)


def test_rules_not_accepted_says_where_to_accept_them(painter, kaggle, tmp_path):
    kaggle.competitions["gan-getting-started"]["rules_accepted"] = False
    result = painter("download", "--source", "kaggle", ok=False)
    assert "403" in result.output and kaggle_api.RULES_URL in result.output


@pytest.mark.parametrize("status, in_body", [(429, False), (500, False), (503, True)])
def test_rate_limits_and_server_errors_are_retried(painter, kaggle, tmp_path, no_sleep, status, in_body):
    kaggle.fail("DownloadDataFiles", status, times=2, in_body=in_body)
    result = painter("download", "--source", "kaggle")
    assert result.output.count("retrying in") == 2 and no_sleep[:2] == [2.0, 4.0]
    assert len(list((raw(tmp_path) / "monet_jpg").glob("*.jpg"))) == 24


def test_retry_after_is_honoured_and_retries_end(painter, kaggle, tmp_path, no_sleep):
    kaggle.fail("DownloadDataFiles", 429, times=kaggle_api.RETRIES + 1, retry_after=7)
    result = painter("download", "--source", "kaggle", ok=False)
    assert no_sleep == [7.0] * kaggle_api.RETRIES
    assert "too many" in result.output and "wait a few minutes" in result.output
    assert no_half_written_output(tmp_path)


def test_network_down_is_clear(painter, kaggle, tmp_path, no_sleep, monkeypatch):
    from kagglesdk import kaggle_env
    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.LOCAL, "http://127.0.0.1:9")
    result = painter("download", "--source", "kaggle", ok=False)
    assert "cannot reach Kaggle" in result.output and "check the network" in result.output
    assert len(no_sleep) == kaggle_api.RETRIES and no_half_written_output(tmp_path)


def test_a_name_that_does_not_resolve_fails_at_once(painter, kaggle, tmp_path, monkeypatch):
    import time

    from kagglesdk import kaggle_env
    # .invalid never resolves (RFC 2606): what every name does with no network. Real sleeps: no retries.
    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.LOCAL, "http://nonexistent.invalid")
    started = time.monotonic()
    result = painter("download", "--source", "kaggle", ok=False)
    assert time.monotonic() - started < 10
    assert "no network: the name nonexistent.invalid does not resolve" in result.output
    assert "retrying" not in result.output and no_half_written_output(tmp_path)


def test_a_truncated_download_is_resumed_or_refused(painter, kaggle, tmp_path, no_sleep):
    name = "gan-getting-started.zip"
    kaggle.truncate(name, times=1)  # the client resumes once with a Range request
    painter("download", "--source", "kaggle")
    assert len(list((raw(tmp_path) / "monet_jpg").glob("*.jpg"))) == 24

    kaggle.truncate(name, times=6)  # every attempt cut short
    result = painter("download", "--source", "kaggle", "--force", ok=False)
    assert "kept being cut short" in result.output
    assert len(list((raw(tmp_path) / "monet_jpg").glob("*.jpg"))) == 24  # the previous download is kept


def test_a_zip_slip_member_is_refused(painter, kaggle, tmp_path):
    kaggle.set_competition_data(competition_zip(extra={"../../evil.txt": b"x"}))
    result = painter("download", "--source", "kaggle", ok=False)
    assert "refusing to extract" in result.output and "'..'" in result.output
    assert not (tmp_path / "work" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert no_half_written_output(tmp_path)


def test_extract_checks_every_member(tmp_path):
    def archive(files):
        path = tmp_path / f"a{len(list(tmp_path.glob('*.zip')))}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return path

    for bad, why in (("/etc/passwd", "absolute path"), ("monet_jpg/../../x", "'..'")):
        with pytest.raises(kaggle_api.PainterError, match=why):
            kaggle_api.extract_safely(archive({"monet_jpg/a.jpg": b"a", bad: b"b"}), tmp_path, ("monet_jpg",))
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive({"monet_jpg/a.jpg": b"a" * 1000}).read_bytes()[:500])
    with pytest.raises(kaggle_api.PainterError, match="not a complete zip"):
        kaggle_api.extract_safely(cut, tmp_path, ("monet_jpg",))


def test_no_credentials_stop_before_any_request(painter, tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("KAGGLE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "empty"))
    result = painter("download", "--source", "kaggle", ok=False)
    assert "no Kaggle credentials found" in result.output and "chmod 600" in result.output


def test_a_key_file_others_can_read_is_warned_about(painter, kaggle, tmp_path, monkeypatch):
    key_file = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"  # where the client looks
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text('{"username": "%s", "key": "%s"}' % (kaggle.username, kaggle.key))
    key_file.chmod(0o644)
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name)
    result = painter("download", "--source", "kaggle")
    assert f"chmod 600 {key_file}" in result.output and kaggle.key not in result.output
    assert len(list((raw(tmp_path) / "monet_jpg").glob("*.jpg"))) == 24


def test_make_all_runs_the_chain_on_the_competition_data(tmp_path):
    """`make all` with credentials, in a subprocess reaching the fake through http_proxy."""
    with FakeKaggle(competition_zip=competition_zip(paintings=24, photos=2)) as server:
        env = server.cli_env(tmp_path / "home")
        env.update(PAINTER_WORKDIR=str(tmp_path / "work"), PAINTER_SUBMISSIONS=str(tmp_path / "submissions"))
        env.pop("PAINTER_INCEPTION_WEIGHTS", None)
        args = ("--set model.g_channels=8 --set model.d_channels=8 --set model.latent_dim=16 "
                "--set train.steps=4 --set train.batch_size=8 --set train.sample_every=2 "
                "--set train.checkpoint_every=2 --set score.max_images=64")
        # The default preset is a translation at 256 px (minutes for 7,000 images on a CPU): the plumbing is
        # the same with DCGAN's, at 64 px.
        result = subprocess.run(["make", "-s", "all", "CONFIG=configs/dcgan.toml", f"ARGS={args}"], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert server.calls("DownloadDataFiles") and not server.errors
    assert "done: dcgan (dcgan, 64px)" in result.stdout
    assert len(list((tmp_path / "work" / "raw" / "kaggle" / "monet_jpg").glob("*.jpg"))) == 24
    assert (tmp_path / "submissions" / "dcgan" / "images.zip").is_file()
    for path in (tmp_path / "work").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".toml", ".csv", ".txt"):
            assert server.key not in path.read_text(errors="ignore"), path
    # Without CONFIG, `make all` runs the measured best (README, "Which architecture should I submit?").
    planned = subprocess.run(["make", "-n", "all"], cwd=REPO, capture_output=True, text=True).stdout
    assert "run --config configs/cut.toml" in planned
