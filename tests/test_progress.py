"""Progress in a log: where the output is not a terminal, a few plain lines instead of redrawn bars."""

import io
import os
import re
import subprocess
import sys

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
