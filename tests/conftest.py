import errno
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@contextmanager
def torch_threads(count: int):
    """torch's intra-op CPU threads set to `count` inside the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "monet_jpg").is_dir():
        pytest.skip(f"the real paintings are not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def painter(tmp_path, monkeypatch):
    """Run `painter ...` in-process with a private workdir and submissions folder; returns the result."""
    monkeypatch.setenv("PAINTER_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("PAINTER_SUBMISSIONS", str(tmp_path / "submissions"))
    monkeypatch.delenv("PAINTER_INCEPTION_WEIGHTS", raising=False)

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


@pytest.fixture
def full_disk(monkeypatch):
    """full_disk(after=N): generate's image writes fail with ENOSPC after N succeed; full_disk(None) frees it."""
    from pipeline import generate

    real_write = generate.write_file

    def fill(after: int | None) -> None:
        if after is None:
            monkeypatch.setattr(generate, "write_file", real_write)
            return
        writes = {"n": 0}

        def write(path, data):
            writes["n"] += 1
            if writes["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real_write(path, data)

        monkeypatch.setattr(generate, "write_file", write)

    return fill
