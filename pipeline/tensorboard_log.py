"""TensorBoard events for a training run (`train.tensorboard = true`): the rows of metrics.csv as
scalars and the sample grids as images, in <run>/train/tensorboard/.

TensorBoard is an optional extra (`pip install 'painter[tensorboard]'`): `require` says so before
any training starts, and a `Board` that is off (the key unset, or a torchrun rank other than 0)
does nothing, so the training loop calls it unconditionally.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PainterError

FOLDER = "tensorboard"
NOT_SCALARS = ("step", "seconds")  # the x axis, and a clock TensorBoard keeps itself


def require() -> None:
    """Fail with what to do when train.tensorboard is on and the package cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as exc:
        raise PainterError(f"train.tensorboard = true needs the tensorboard package, which cannot be imported "
                           f"({exc}). Install it with `pip install 'painter[tensorboard]'` (or "
                           "`.venv/bin/pip install tensorboard`), or set train.tensorboard=false.") from None


class Board:
    """Writes metrics rows and sample grids as TensorBoard events; a no-op when `enabled` is false.

    A resumed run appends to the same folder: events after `resumed_step` (written before the run
    stopped, past its checkpoint) are purged, so no step appears twice."""

    def __init__(self, train_folder: Path, *, enabled: bool, resumed_step: int, eval_fields: list[str]):
        self.writer = None
        self.eval_fields = set(eval_fields)
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(train_folder) / FOLDER),
                                        purge_step=resumed_step + 1 if resumed_step else None)

    def row(self, row: dict) -> None:
        """One row of metrics.csv: training columns under train/, evaluation fields under eval/."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key in NOT_SCALARS or value is None:
                continue
            group = "eval" if key in self.eval_fields else "train"
            self.writer.add_scalar(f"{group}/{key}", value, row["step"])

    def image(self, path: Path, step: int) -> None:
        """A sample grid as saved (a PNG), so TensorBoard shows exactly the file's pixels."""
        if self.writer is None:
            return
        from torchvision.io import ImageReadMode, read_image

        self.writer.add_image("samples", read_image(str(path), ImageReadMode.RGB), step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
