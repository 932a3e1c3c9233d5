"""session: the kernel's work on Kaggle, once its bootstrap (kernels/train/painter_kernel.py) has
checked the GPU, found the inputs and installed painter.

    python -m pipeline.kernel.session BASE --data DIR --inputs DIR --output DIR --gpu G --nproc N \\
        --hours H --started T --until T

runs `painter run` on BASE/config.toml with the competition's data, in the workdir BASE/artifacts
(training in N processes under torchrun when N > 1) and held to the deadline T (PAINTER_DEADLINE);
then exports into the output folder the zip and what the run folder hands on, by the run folder's
own names, and kernel-run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..artifacts import read_json
from ..config import load_config
from ..errors import PainterError
from ..layout import ZIP, RunFolder, Workdir
from ..stopping import DEADLINE_ENV

RUN_RECORD = "kernel-run.json"


def log(message: str) -> None:
    print(f"painter kernel: {message}", flush=True)


def uploaded_weights(inputs: Path) -> Path | None:
    """The Inception weights `painter kernel push` put beside the wheels, if it had them."""
    from ..metrics.inception import WEIGHTS_NAMES

    found = [inputs / name for name in WEIGHTS_NAMES if (inputs / name).is_file()]
    return found[0] if found else None


def painter(*args: str, cwd: Path, until: float) -> None:
    """`python -m pipeline ARGS`, from `cwd` so no stray file lands in the output folder; training in
    it stops in time for the rest of the chain to end by `until`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{DEADLINE_ENV: f"{until:.0f}"})
    env.setdefault("TQDM_MININTERVAL", "30")  # progress bars: a line every 30 s, not a flood in the log
    command = [sys.executable, "-m", "pipeline", *args]
    log("$ " + " ".join(command[1:]))
    done = subprocess.run(command, env=env, cwd=cwd)
    if done.returncode:
        raise PainterError(f"`painter {args[0]}` failed with exit code {done.returncode}; its messages are above")


def export(run: RunFolder, submission: Path, output: Path) -> list[str]:
    """Copy the submission's zip, what the run folder hands on and its grids along training into
    `output`; returns what was written."""
    wanted = {ZIP: submission / ZIP, **run.exported()}
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, source in wanted.items():
        if source.is_file():
            shutil.copyfile(source, output / name)
            written.append(name)
    grids = sorted(run.sample_grids.glob("*.png"))
    if grids:
        (output / run.sample_grids.name).mkdir(exist_ok=True)
        for grid in grids:
            shutil.copyfile(grid, output / run.sample_grids.name / grid.name)
        written.append(f"{run.sample_grids.name}/ ({len(grids)} grids)")
    if ZIP not in written:
        raise PainterError(f"the chain ended without {submission / ZIP}")
    return written


def run_session(base: Path, *, data: Path, inputs: Path, output: Path, gpu: str, nproc: int, hours: float,
                started: float, until: float) -> list[str]:
    """The chain on base/config.toml inside the deadline, its export and kernel-run.json; returns what
    was exported."""
    weights = uploaded_weights(inputs)
    log(f"data {data}; Inception weights: {weights or 'none (SWD and the copy check only)'}")
    config = base / "config.toml"
    name = load_config(config).run.name
    workdir, submissions = base / "artifacts", base / "submissions"
    scoring = ("--inception-weights", str(weights)) if weights else ()
    painter("run", "--config", str(config), "--set", f"data.source={data}", "--workdir", str(workdir),
            "--submissions", str(submissions), *scoring, "--nproc", str(nproc), cwd=base, until=until)

    run = Workdir(workdir).run_folder(name)
    written = export(run, submissions / name, output)
    seconds = round(time.time() - started)
    trained = read_json(run.train_summary) or {}
    if trained.get("stopped") == "deadline":
        log(f"training stopped at step {trained['steps']} of {trained['planned_steps']} to finish inside "
            f"{hours:g} h; the images come from its best checkpoint")
    (output / RUN_RECORD).write_text(json.dumps(
        {"run": name, "gpu": gpu, "seconds": seconds, "hours": hours,
         "training_stopped": trained.get("stopped"), "python": platform.python_version(),
         "torch": getattr(sys.modules.get("torch"), "__version__", None), "outputs": written}, indent=2) + "\n")
    log(f"done in {seconds // 60} min: {', '.join(written)} in {output}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.kernel.session", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="a folder of the session's own, holding config.toml")
    parser.add_argument("--data", type=Path, required=True, help="the competition's data (monet_jpg/, photo_jpg/)")
    parser.add_argument("--inputs", type=Path, required=True, help="the painter-wheels dataset's folder")
    parser.add_argument("--output", type=Path, required=True, help="where the kernel's output goes")
    parser.add_argument("--gpu", required=True)
    parser.add_argument("--nproc", type=int, default=1)
    parser.add_argument("--hours", type=float, required=True)
    parser.add_argument("--started", type=float, required=True, help="the session's start, seconds since the epoch")
    parser.add_argument("--until", type=float, required=True, help="the chain's deadline, seconds since the epoch")
    args = parser.parse_args(argv)
    try:
        run_session(args.base, data=args.data, inputs=args.inputs, output=args.output, gpu=args.gpu,
                    nproc=args.nproc, hours=args.hours, started=args.started, until=args.until)
    except PainterError as exc:
        print(f"painter kernel: STOPPED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
