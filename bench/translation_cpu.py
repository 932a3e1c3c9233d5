"""Translation against generation from noise on a CPU, at an equal wall-clock budget per run.

Every architecture trains on the competition's data (300 paintings, 7,038 photos) for the same
number of minutes, then generates and is scored at 256 px (SWD against the paintings, beside the
untouched photos and the real-vs-real floor), and the leaderboard report draws their photo ->
painting grids. The budget is made equal in steps, not by a clock that stops a run: a short probe
times each architecture's real training step on this machine (after a warm-up), and each run gets
budget / seconds-per-step steps, so its learning-rate schedule fits the budget and a busy machine
later on slows the benchmark down without changing its results. The probe is kept in the workdir
and reused, so running the script again only redoes what changed (every run is a cached painter run).

    .venv/bin/python bench/translation_cpu.py                 # the committed measurement (about 3 hours)
    .venv/bin/python bench/translation_cpu.py --minutes 2 --archs cyclegan --workdir /tmp/tcpu  # a quick look

Results: bench/results/translation_cpu.json (machine, probe, per run: steps, train time, SWD) and the
report in bench/results/translation_cpu/ (leaderboard.md, .html, .csv, images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from train_throughput import cpu_model, write_json_atomic  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
# CPU-sized settings: 128 px crops, reduced widths (README, "CPU-sized overrides"); the noise GAN is the
# committed sweep's best (DCGAN at 64 px, widths 32).
TRANSLATION_SET = ["model.g_channels=32", "model.d_channels=64", "{arch}.blocks=6", "{arch}.crop=128",
                   "train.eval_images=128", "train.log_every=10", "train.checkpoint_every=100"]
NOISE_SET = ["data.resolution=64", "model.g_channels=32", "model.d_channels=32", "train.log_every=50",
             "train.checkpoint_every=500"]
EVALUATIONS = 6  # evaluations of the EMA generator per run (best.pt)


def overrides(arch: str, translates: bool) -> list[str]:
    return [s.format(arch=arch) for s in (TRANSLATION_SET if translates else NOISE_SET)]


def probe_seconds_per_step(arch: str, data: Path, workdir: Path, steps: int) -> float:
    """Seconds per training step of `arch` with the benchmark's settings, on the real prepared data."""
    import torch

    from pipeline import archs, prepare, train
    from pipeline.artifacts import Workdir
    from pipeline.config import load_config
    from pipeline.devices import Process

    cfg = load_config(REPO / "configs" / f"{arch}.toml", [f"data.source={data}", "run.device=cpu",
                                                          *overrides(arch, archs.get(arch).consumes == "photos")])
    wd = Workdir(workdir)
    painter("run", "--until", "prepare", *config_args(cfg, workdir))
    tensors = {domain: prepare.load_shards(folder) for domain, folder in
               train.shard_folders(cfg, wd, cfg.data.resolution).items()}
    trainer = archs.get(arch).trainer(cfg, tensors, torch.device("cpu"), Process())
    warmup = 3
    for step in range(warmup):
        trainer.train_step(step)
    started = time.perf_counter()
    for step in range(warmup, warmup + steps):
        trainer.train_step(step)["loss_g"].item()
    return (time.perf_counter() - started) / steps


def config_args(cfg, workdir: Path) -> list[str]:
    """--config (the resolved config, written into the workdir) and --workdir for a painter command."""
    path = workdir / "configs" / f"{cfg.run.name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg.to_toml())
    return ["--config", str(path), "--workdir", str(workdir)]


def painter(*args: str) -> None:
    """A painter command in its own process, so each stage runs the code as it is when it starts."""
    done = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO,
                          env=dict(os.environ, TQDM_MININTERVAL="30", PYTHONUNBUFFERED="1"))
    if done.returncode:
        raise SystemExit(f"painter {' '.join(args[:1])} failed with exit code {done.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="cyclegan,cut,fastcut,dcgan")
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per run")
    parser.add_argument("--probe-steps", type=int, default=10)
    parser.add_argument("--count", type=int, default=1000, help="images generated (and scored) per run")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/painter-translation-cpu"))
    parser.add_argument("--out", type=Path, default=RESULTS / "translation_cpu.json")
    parser.add_argument("--report", type=Path, default=RESULTS / "translation_cpu")
    args = parser.parse_args()

    from pipeline import archs
    from pipeline.config import load_config
    from pipeline.devices import cpu_has_native_bf16

    args.workdir.mkdir(parents=True, exist_ok=True)
    probe_file = args.workdir / "probe.json"
    probe = json.loads(probe_file.read_text()) if probe_file.is_file() else {}
    names = [a.strip() for a in args.archs.split(",") if a.strip()]
    for arch in names:
        if arch not in probe:
            probe[arch] = probe_seconds_per_step(arch, args.data, args.workdir, args.probe_steps)
            write_json_atomic(probe_file, probe)
        print(f"probe: {arch} {probe[arch]:.3f} s/step", flush=True)

    runs = []
    for arch in names:
        translates = archs.get(arch).consumes == "photos"
        steps = max(1, int(args.minutes * 60 / probe[arch]))
        cfg = load_config(REPO / "configs" / f"{arch}.toml", [
            f"data.source={args.data}", "run.device=cpu", f"run.name=cpu-{arch}", *overrides(arch, translates),
            f"train.steps={steps}", f"train.eval_every={max(1, steps // EVALUATIONS)}",
            f"train.sample_every={max(1, steps // EVALUATIONS)}", f"train.max_minutes={4 * args.minutes}",
            f"generate.count={args.count}", f"score.max_images={args.count}"])
        print(f"\n== {cfg.run.name}: {steps} steps ({probe[arch]:.3f} s each, {args.minutes:g} min)", flush=True)
        painter("run", "--until", "score", *config_args(cfg, args.workdir))
        run_dir = args.workdir / "runs" / cfg.run.name
        summary = json.loads((run_dir / "train" / "summary.json").read_text())
        score = json.loads((run_dir / "score" / "score.json").read_text())
        runs.append({"run": cfg.run.name, "arch": arch, "consumes": archs.get(arch).consumes,
                     "settings": overrides(arch, translates), "steps": summary["steps"],
                     "planned_steps": steps, "train_seconds": summary["seconds"], "precision": summary["precision"],
                     "swd": score["swd"]["value"], "swd_floor": score["swd"]["floor"],
                     "photos_swd": (score.get("photos_baseline") or {}).get("swd")})

    painter("leaderboard", "--workdir", str(args.workdir), "--out", str(args.report))
    result = {"benchmark": "translation_cpu", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "native_bf16": cpu_has_native_bf16(),
                          "torch": __import__("torch").__version__, "device": "cpu"},
              "budget_minutes": args.minutes, "generated_per_run": args.count, "probe_seconds_per_step": probe,
              "runs": sorted(runs, key=lambda r: r["swd"])}
    write_json_atomic(args.out, result)
    for run in result["runs"]:
        print(f"{run['run']:<14} {run['steps']:>6} steps {run['train_seconds'] / 60:6.1f} min  SWD {run['swd']:7.2f}")


if __name__ == "__main__":
    main()
