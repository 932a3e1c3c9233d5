import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import prepare
from pipeline.errors import PainterError

from . import odd_files
from .conftest import REPO


def save(img: Image.Image, path, fmt="JPEG"):
    img.save(path, format=fmt)
    return path


@pytest.fixture
def awkward_folder(tmp_path):
    """A monet_jpg/ folder with every kind of file a real download can hold."""
    folder = tmp_path / "monet_jpg"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
    save(rgb, folder / "a_ok.jpg")
    save(rgb.convert("L"), folder / "b_gray.jpg")
    save(rgb.convert("CMYK"), folder / "c_cmyk.jpg")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: must become white, not black
    save(rgba, folder / "d_rgba.png", "PNG")
    save(rgb.convert("P"), folder / "e_palette.png", "PNG")
    save(Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)), folder / "f_wide.jpg")
    save(rgb.resize((100, 100)), folder / "g_small.jpg")
    good = io.BytesIO()
    rgb.save(good, format="JPEG")
    (folder / "h_truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (folder / "i_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(rng.integers(0, 255, 2000, dtype=np.uint8)))
    (folder / "j_notes.txt").write_text("not an image")
    (folder / "k_empty.jpg").write_bytes(b"")
    return folder


def test_pack_converts_skips_and_reports(awkward_folder, tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    files = sorted(awkward_folder.iterdir())
    lines = []
    summary = prepare.pack(files, 64, out, log=lines.append)
    manifest = json.loads((out / "manifest.json").read_text())

    usable = ["a_ok.jpg", "b_gray.jpg", "c_cmyk.jpg", "d_rgba.png", "e_palette.png", "f_wide.jpg", "g_small.jpg"]
    assert manifest["sources"] == usable and summary["count"] == 7 == manifest["count"]
    skipped = {item["file"]: item["reason"] for item in manifest["skipped"]}
    assert set(skipped) == {"h_truncated.jpg", "i_corrupt.jpg", "j_notes.txt", "k_empty.jpg"}
    assert skipped["j_notes.txt"] == "not an image file"
    assert "truncated" in skipped["h_truncated.jpg"]
    assert any("h_truncated.jpg" in line for line in lines)   # reported to the user, by name
    changes = {item["file"]: " ".join(item["changes"]) for item in manifest["changed"]}
    assert "converted L to RGB" in changes["b_gray.jpg"] and "converted CMYK to RGB" in changes["c_cmyk.jpg"]
    assert "from 400x300" in changes["f_wide.jpg"] and "from 100x100" in changes["g_small.jpg"]
    assert "a_ok.jpg" not in changes   # the routine 256 -> 64 downscale is not news

    with pytest.raises(PainterError, match="no complete shards"):
        prepare.load_shards(out)         # not stamped yet: not complete
    (out / "_stamp.json").write_text("{}")
    images = prepare.load_shards(out)
    assert images.dtype == torch.uint8 and images.shape == (7, 3, 64, 64)
    assert images[3].float().mean() > 250   # transparent RGBA composited onto white
    gray = images[1]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_shards_are_split_and_checked(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        save(Image.new("RGB", (32, 32), (i * 40, 0, 0)), folder / f"{i}.jpg")
    monkeypatch.setattr(prepare, "SHARD_BYTES", 2 * 3 * 32 * 32)   # two images per shard
    out = tmp_path / "shards"
    out.mkdir()
    prepare.pack(sorted(folder.iterdir()), 32, out)
    (out / "_stamp.json").write_text("{}")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["count"] for s in manifest["shards"]] == [2, 2, 1]
    assert prepare.load_shards(out)[:, 0, 0, 0].tolist() == pytest.approx([0, 40, 80, 120, 160], abs=3)
    shard = out / manifest["shards"][1]["file"]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(PainterError, match="missing or corrupt"):
        prepare.load_shards(out)


def test_no_usable_image_is_an_error(tmp_path):
    folder = tmp_path / "monet_jpg"
    folder.mkdir()
    (folder / "a.jpg").write_text("nope")
    with pytest.raises(PainterError, match="no usable image among 1 files"):
        prepare.pack([folder / "a.jpg"], 64, tmp_path)


def test_every_odd_file_is_packed_or_skipped_with_its_reason_and_the_terminal_gets_one_line(tmp_path):
    """A real `painter prepare` subprocess over a folder of every kind of odd file: the decoders'
    warnings and libtiff's own stderr go into the manifest, not onto the terminal."""
    expected = odd_files.build(tmp_path / "source" / "monet_jpg")
    env = dict(os.environ, PYTHONPATH=str(REPO), PAINTER_WORKDIR=str(tmp_path / "work"), OMP_NUM_THREADS="1")
    args = ["--config", str(REPO / "configs" / "dcgan.toml"), "--source", str(tmp_path / "source"),
            "--set", "data.resolution=32"]
    for stage in ("download", "prepare"):
        done = subprocess.run([sys.executable, "-m", "pipeline", stage, *args], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).splitlines()
    for resolution in (32, 256):
        manifest_path = next((tmp_path / "work" / "shards").glob(f"*-{resolution}px/manifest.json"))
        manifest = json.loads(manifest_path.read_text())
        packed, skipped = manifest["sources"], {item["file"]: item["reason"] for item in manifest["skipped"]}
        assert sorted(packed + list(skipped)) == sorted(expected)   # every file accounted for, once
        changes = {item["file"]: " ".join(item["changes"]) for item in manifest["changed"]}
        messages = {item["file"]: " ".join(item["messages"]) for item in manifest["warnings"]}
        for name, (outcome, phrase) in expected.items():
            if outcome == "packed":
                assert name in packed, f"{name}: {skipped.get(name)}"
            elif outcome == "skipped":
                assert name in skipped, name
            if phrase:
                said = f"{changes.get(name, '')} {skipped.get(name, '')} {messages.get(name, '')}"
                assert phrase in said, f"{name}: {said!r}"
        assert all(":" in reason for name, reason in skipped.items() if expected[name][1] is None)
        summary = [line for line in lines if line.startswith(f"prepare {resolution}px:") and "packed" in line]
        assert summary == [f"prepare {resolution}px: {len(packed)} packed, {len(skipped)} skipped "
                           f"({', '.join(sorted(skipped)[:3])}, ...), {len(messages)} with warnings: "
                           f"see {manifest_path}"]
    assert not [line for line in lines if "ZIPDecode" in line or "Warning" in line or "Traceback" in line]
    assert len(lines) < 30, "\n".join(lines)

    images = prepare.load_shards(next((tmp_path / "work" / "shards").glob("*-32px")))
    assert images.shape == (len(json.loads(next((tmp_path / "work" / "shards").glob("*-32px/manifest.json"))
                                           .read_text())["sources"]), 3, 32, 32)


def test_large_jpegs_are_read_at_reduced_size_and_other_formats_refused_above_the_limit(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    gradient = np.linspace(0, 255, 1024, dtype=np.uint8)
    big = Image.fromarray(np.stack([np.tile(gradient, (1024, 1))] * 3, axis=-1))
    save(big, folder / "a.jpg")
    save(big, folder / "b.png", "PNG")
    out = tmp_path / "shards"
    out.mkdir()
    prepare.pack(sorted(folder.iterdir()), 64, out, max_pixels=512 * 512)   # the JPEG decodes at 1/2 scale
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"] == ["a.jpg"] and manifest["max_pixels"] == 512 * 512
    assert manifest["skipped"] == [{"file": "b.png", "reason": "too large: 1024x1024 pixels, above the limit of "
                                    "262,144 (only JPEGs are read at reduced size)"}]
    (out / "_stamp.json").write_text("{}")
    row = prepare.load_shards(out)[0, 0, 32].float()
    assert row[0] < 20 and row[-1] > 235 and (row[1:] >= row[:-1] - 2).all()   # still the gradient


def test_a_bomb_read_in_this_process_is_not_usable_rather_than_a_traceback(tmp_path):
    """score reads paintings with load_rgb in its own process, where Pillow's bomb limit still holds."""
    from pipeline.decode import NotUsable, load_rgb

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(odd_files._png_claiming(100_000, 100_000))
    with pytest.raises(NotUsable, match="too large"):
        load_rgb(bomb, 64)
