"""Progress bars that read well in a terminal and in a log file.

In a terminal, a tqdm bar redraws in place. Where stderr is not a terminal (a file, a pipe, a
Kaggle kernel's log) a redrawn bar becomes one ever-growing line of carriage returns, or thousands
of lines: there each bar prints a plain line (ASCII, no carriage return) at most every
LOG_INTERVAL seconds (or $TQDM_MININTERVAL), and once at the end, with the same numbers.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

LOG_INTERVAL = 30.0


class _Lines:
    """A file for tqdm that turns each redraw into one line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """tqdm(iterable, **kwargs), as lines every LOG_INTERVAL s when stderr is not a terminal."""
    stream = kwargs.pop("file", None) or sys.stderr
    if not stream.isatty():
        interval = float(os.environ.get("TQDM_MININTERVAL", LOG_INTERVAL))
        kwargs.setdefault("mininterval", interval)
        # The time is checked at every item: with tqdm's adaptive miniters a loop that slows down (fast
        # batches, then slow ones) is not looked at for many items, and its monitor thread then redraws
        # the last count again, a second line per interval with a stale number.
        kwargs.setdefault("miniters", 1)
        kwargs.update(file=_Lines(stream), ascii=True, ncols=120, dynamic_ncols=False)
    else:
        kwargs["file"] = stream
    return tqdm(iterable, **kwargs)
