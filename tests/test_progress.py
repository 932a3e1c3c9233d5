"""Progress in a log: where the output is not a terminal, a few plain lines instead of redrawn bars."""

import io
import os
import re
import subprocess
import sys
import time

from pipeline.progress import progress_bar

from .conftest import REPO
from .test_cli import TINY


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_in_a_log_prints_plain_lines_at_its_interval_and_at_the_end():
    log = io.StringIO()
    for _ in progress_bar(range(5000), desc="work", file=log, mininterval=3600):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2  # the start and the end, nothing between
    assert lines[-1].startswith("work: 100%") and "5000/5000" in lines[-1]

    log = io.StringIO()
    for _ in progress_bar(range(3), desc="work", file=log, mininterval=0):
        pass
    assert len(log.getvalue().splitlines()) == 5  # 0/3 .. 3/3 and the closing line: every redraw a line

    terminal = Terminal()
    for _ in progress_bar(range(3), desc="work", file=terminal, mininterval=0):
        pass
    assert "\r" in terminal.getvalue()  # a terminal still gets a bar redrawn in place


def test_a_loop_that_slows_down_logs_fresh_counts_never_a_repeated_line():
    """Fast items, then slow ones (a generator's first batches, then the encoder's backlog): with tqdm's
    adaptive miniters the slow part went unseen and its monitor thread logged the old count again."""
    log = io.StringIO()
    for i in progress_bar(range(130), desc="work", file=log, mininterval=0.5):
        time.sleep(0.001 if i < 100 else 0.05)
    counts = [re.search(r"(\d+)/130", line).group(1) for line in log.getvalue().splitlines()]
    assert counts[-1] == "130" and len(counts[:-1]) == len(set(counts[:-1])), counts  # the end line repeats
    assert len(counts) >= 4  # the slow part shows its progress (1.5 s at most every 0.5 s)


def test_a_whole_run_logged_to_a_file_stays_a_few_dozen_lines(tmp_path):
    """300 training steps, logged every step, and 7,000 images, with stdout and stderr in a file."""
    log_path = tmp_path / "run.log"
    args = [*TINY, "--set", "train.steps=300", "--workdir", str(tmp_path / "work"),
            "--submissions", str(tmp_path / "submissions")]
    with open(log_path, "w") as log:
        done = subprocess.run([sys.executable, "-m", "pipeline", "run", *args], cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT, env=dict(os.environ, TQDM_MININTERVAL="30"), timeout=600)
    text = log_path.read_text()
    assert done.returncode == 0, text[-3000:]
    lines = text.splitlines()
    assert "\r" not in text and len(lines) < 60, f"{len(lines)} lines:\n" + text[-3000:]
    assert any(re.match(r"train: 100%.*300/300", line) for line in lines)
    assert any(re.match(r"generate: 100%.*7000/7000", line) for line in lines)
