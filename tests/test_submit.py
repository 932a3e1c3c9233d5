import io
import zipfile

import pytest
from PIL import Image

from pipeline import submit


def jpeg(size=(256, 256), mode="RGB", fmt="JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (90, 120, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


def make_zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def small_limits(monkeypatch):
    # Kaggle's 7,000-10,000 made small, so each case is quick; the end-to-end test uses the real limits.
    monkeypatch.setattr(submit, "MIN_IMAGES", 4)
    monkeypatch.setattr(submit, "MAX_IMAGES", 6)


def test_a_valid_set_passes(tmp_path, small_limits):
    path = make_zip(tmp_path / "images.zip", {f"{i}.jpg": jpeg() for i in range(5)})
    assert submit.validate_zip(path) == []


@pytest.mark.parametrize("count, message", [(3, "holds 3 files; Kaggle needs 4-6 images"),
                                            (7, "holds 7 files; Kaggle needs 4-6 images")])
def test_too_few_or_too_many(tmp_path, small_limits, count, message):
    path = make_zip(tmp_path / "images.zip", {f"{i}.jpg": jpeg() for i in range(count)})
    [problem] = submit.validate_zip(path)
    assert problem.startswith(message) and "--set generate.count=N" in problem


@pytest.mark.parametrize("name, data, problem", [
    ("big.jpg", jpeg(size=(512, 512)), "is 512x512, not 256x256"),
    ("sneaky.jpg", jpeg(fmt="PNG"), "is a PNG image, not a JPEG"),
    ("plain.png", jpeg(fmt="PNG"), "is not a .jpg file"),
    ("gray.jpg", jpeg(mode="L"), "is L, not RGB"),
    ("broken.jpg", jpeg()[:200], "cannot be decoded"),
    ("sub/nested.jpg", jpeg(), "is inside a folder"),
])
def test_each_bad_member_is_named_with_its_problem(tmp_path, small_limits, name, data, problem):
    members = {f"{i}.jpg": jpeg() for i in range(4)} | {name: data}
    report = submit.validate_zip(make_zip(tmp_path / "images.zip", members))
    assert len(report) == 1 and problem in report[0] and name in report[0]


def test_many_bad_members_are_summarised(tmp_path, small_limits):
    members = {f"{i}.jpg": jpeg(size=(64, 64)) for i in range(5)}
    report = submit.validate_zip(make_zip(tmp_path / "images.zip", members))
    assert report == ["5 file(s) is 64x64, not 256x256: 0.jpg, 1.jpg, 2.jpg and 2 more"]


def test_not_a_zip(tmp_path):
    path = tmp_path / "images.zip"
    path.write_bytes(b"hello")
    assert "is not a valid zip file" in submit.validate_zip(path)[0]
