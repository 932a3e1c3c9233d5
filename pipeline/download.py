"""download: put the competition's files under <workdir>/raw/<source>/ (monet_jpg/, photo_jpg/).

Sources: "demo" paints the offline demo set, "kaggle" fetches the competition, and a folder in
the competition's layout is copied in, so later stages never read outside the workdir.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from . import demo_data, kaggle_api
from .artifacts import run_stage, sha256_file
from .config import Config
from .errors import PainterError
from .layout import Workdir
from .progress import progress_bar

VERSION = 1
FOLDERS = ("monet_jpg", "photo_jpg")


def source_id(source: str) -> str:
    """The raw/ folder name of a source: "demo", "kaggle", or "<folder name>-<hash of its path>"."""
    if source in ("demo", "kaggle"):
        return source
    path = Path(source).expanduser().resolve()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name) or "folder"
    return f"{slug}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def _folder_files(root: Path) -> list[Path]:
    return sorted(p for name in FOLDERS if (root / name).is_dir()
                  for p in (root / name).iterdir() if p.is_file())


def _check_folder(root: Path) -> None:
    if not root.is_dir():
        raise PainterError(f"data source {root} is not a folder (use \"demo\", \"kaggle\" or a folder)")
    if not (root / "monet_jpg").is_dir():
        raise PainterError(f"data source {root} has no monet_jpg/ folder; expected the competition's "
                           "layout: monet_jpg/*.jpg (and optionally photo_jpg/*.jpg)")


def _folder_digest(root: Path) -> str:
    """Content digest of the folder, so an edited source re-runs everything downstream."""
    digest = hashlib.sha256()
    for path in _folder_files(root):
        digest.update(f"{path.relative_to(root)}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def run(cfg: Config, wd: Workdir, *, force: bool = False, log=print) -> dict:
    source = cfg.data.source
    inputs: dict = {"version": VERSION, "source": source}
    if source == "demo":
        inputs.update(seed=cfg.data.demo_seed, paintings=cfg.data.demo_paintings,
                      photos=cfg.data.demo_photos, demo_version=demo_data.DEMO_VERSION)

        def build(out: Path) -> dict:
            return demo_data.write_demo_set(out, cfg.data.demo_seed, cfg.data.demo_paintings,
                                            cfg.data.demo_photos)
    elif source == "kaggle":
        inputs["competition"] = kaggle_api.COMPETITION

        def build(out: Path) -> dict:
            return kaggle_api.download_competition(out, FOLDERS, log)
    else:
        root = Path(source).expanduser().resolve()
        _check_folder(root)
        inputs.update(source="folder", path=str(root), digest=_folder_digest(root))

        def build(out: Path) -> dict:
            files = _folder_files(root)
            for name in FOLDERS:
                (out / name).mkdir()
            for path in progress_bar(files, desc="download: copy", unit="file"):
                shutil.copyfile(path, out / path.relative_to(root))
            return {name: sum(p.parent.name == name for p in files) for name in FOLDERS}

    return run_stage("download", wd.raw(source_id(source)), inputs, build, force=force, log=log)
