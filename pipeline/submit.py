"""submit: pack a run's images into submissions/<run>/images.zip, validated member by member.

Kaggle accepts one images.zip of 7,000-10,000 256x256 RGB JPEGs. The zip is checked by
reading it back, exactly as it will be uploaded, before it is put in place.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from collections import defaultdict
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .artifacts import STAMP_NAME, require_stamp, run_stage, sha256_file
from .config import Config
from .errors import PainterError
from .images import COMPETITION_SIZE
from .layout import SCORE, ZIP, Workdir, submission_folder
from .progress import progress_bar

VERSION = 1
MIN_IMAGES, MAX_IMAGES = 7_000, 10_000


def member_problem(name: str, data: bytes) -> str | None:
    """What is wrong with one zip member, or None when Kaggle will accept it."""
    if "/" in name.strip("/"):
        return "is inside a folder (images must be at the top level of the zip)"
    if not name.lower().endswith((".jpg", ".jpeg")):
        return "is not a .jpg file"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.format != "JPEG":
                return f"is a {img.format} image, not a JPEG"
            if img.size != (COMPETITION_SIZE, COMPETITION_SIZE):
                return f"is {img.size[0]}x{img.size[1]}, not 256x256"
            if img.mode != "RGB":
                return f"is {img.mode}, not RGB"
    except UnidentifiedImageError:  # its message names a BytesIO object, not the file
        return "cannot be decoded (not an image file)"
    except Exception as exc:  # noqa: BLE001 - any decoder failure makes the member unusable
        return f"cannot be decoded ({type(exc).__name__}: {exc})"
    return None


def validate_zip(path: Path, progress: bool = True) -> list[str]:
    """All problems that would make Kaggle reject the zip, grouped with a few examples each."""
    problems: dict[str, list[str]] = defaultdict(list)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            for member in progress_bar(members, desc="submit: validate", unit="img", disable=not progress):
                problem = member_problem(member.filename, archive.read(member))
                if problem:
                    problems[problem].append(member.filename)
    except zipfile.BadZipFile as exc:
        return [f"{path} is not a valid zip file ({exc})"]
    report = []
    if not MIN_IMAGES <= len(members) <= MAX_IMAGES:
        report.append(f"holds {len(members)} files; Kaggle needs {MIN_IMAGES:,}-{MAX_IMAGES:,} images "
                      f"(--set generate.count=N; a translation architecture's 0 translates every photo, "
                      f"7,038 on the competition's data)")
    for problem, names in problems.items():
        examples = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        report.append(f"{len(names)} file(s) {problem}: {examples}")
    return report


def write_zip(files: list[Path], path: Path) -> None:
    # JPEGs do not compress further: store them, which is fast and what Kaggle reads fine.
    # ZipFile.write copies each file in chunks, so memory stays flat whatever the number of images.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in progress_bar(files, desc="submit: zip", unit="img"):
            archive.write(file, arcname=file.name)


def run(cfg: Config, wd: Workdir, submissions: Path, *, force: bool = False, log=print) -> dict:
    folder = wd.run_folder(cfg.run.name)
    generated = folder.images
    generated_stamp = require_stamp(generated, "generated images", "painter generate")
    scored = folder.score
    score_stamp = require_stamp(scored, "score", "painter score")
    inputs = {"version": VERSION, "generate": {"fingerprint": generated_stamp["fingerprint"]},
              "score": {"fingerprint": score_stamp["fingerprint"]}}

    def build(out: Path) -> dict:
        files = sorted(p for p in generated.iterdir() if p.is_file() and p.name != STAMP_NAME)
        write_zip(files, out / ZIP)
        problems = validate_zip(out / ZIP)
        if problems and not force:
            raise PainterError("refusing to write an invalid submission:\n  " + "\n  ".join(problems)
                               + "\n(--force writes it anyway)")
        for problem in problems:
            log(f"submit: WARNING (--force): invalid submission: {problem}")
        shutil.copyfile(folder.score_json, out / SCORE)
        return {"count": len(files), "valid": not problems, "problems": problems,
                "zip_bytes": (out / ZIP).stat().st_size, "zip_sha256": sha256_file(out / ZIP),
                "score": score_stamp["summary"]}

    return run_stage("submit", submission_folder(submissions, cfg.run.name), inputs, build, force=force, log=log)
