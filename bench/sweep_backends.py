"""What Ray adds to a sweep: the same four-trial spec run by `painter sweep --backend local` (one trial after
another) and by `--backend ray` (a local Ray, two trials at once, one CPU and one torch thread each), each in
a fresh workdir, side by side on this machine.

    python bench/sweep_backends.py [--steps 300] [--out bench/results/sweep_backends.json]

Reports each backend's wall time, the trials' own training seconds (from their summaries), and Ray's overhead
per trial: (Ray's wall time - the local wall time / 2) / trials, what Ray costs beyond a perfect split of the
local sweep over two workers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# train_throughput sits beside this file and puts the repository first on sys.path.
from train_throughput import machine_info, write_json_atomic

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "sweep_backends.json"
SETTINGS = {"data.source": "demo", "data.demo_paintings": 64, "data.demo_photos": 0, "data.resolution": 32,
            "model.g_channels": 16, "model.d_channels": 16, "train.batch_size": 16, "train.eval_every": 100,
            "train.eval_images": 64, "generate.count": 256, "score.max_images": 256, "score.inception": False}


def spec_text(steps: int) -> str:
    lines = ['[sweep]', 'presets = ["demo"]', 'budget = "schedule"', 'name = "bench"',
             '[grid]', '"train.ema_decay" = [0.9, 0.99, 0.995, 0.999]', '[set]', f'"train.steps" = {steps}']
    lines += [f'"{key}" = {json.dumps(value)}' for key, value in SETTINGS.items()]
    return "\n".join(lines) + "\n"


def sweep(spec: Path, workdir: Path, *backend: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "sweep", "--spec", str(spec), "--workdir", str(workdir),
                    *backend], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def train_seconds(workdir: Path) -> list[float]:
    return [json.loads((run / "train" / "_stamp.json").read_text())["summary"]["seconds"]
            for run in sorted((workdir / "runs").iterdir()) if (run / "train" / "_stamp.json").exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="painter-bench-sweep-") as tmp:
        spec = Path(tmp) / "spec.toml"
        spec.write_text(spec_text(args.steps))
        local = sweep(spec, Path(tmp) / "local")
        ray = sweep(spec, Path(tmp) / "ray", "--backend", "ray", "--cpus-per-trial", "1")
        trials = {"local": train_seconds(Path(tmp) / "local"), "ray": train_seconds(Path(tmp) / "ray")}
    result = {"benchmark": "sweep_backends", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_info("cpu"), "trials": 4, "steps": args.steps, "settings": SETTINGS,
              "local_seconds": round(local, 1), "ray_seconds": round(ray, 1), "speedup": round(local / ray, 2),
              "train_seconds_per_trial": {k: [round(s, 1) for s in v] for k, v in trials.items()},
              "ray_overhead_seconds_per_trial": round((ray - local / 2) / 4, 1)}
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
