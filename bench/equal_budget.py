"""Architectures side by side on a CPU, at an equal wall-clock training budget per run.

Each suite is a list of runs (an architecture's preset plus CPU-sized settings). Every run trains on
the competition's data (300 paintings, 7,038 photos) for the same number of minutes, then generates
and is scored at 256 px (SWD against the paintings, beside the untouched photos and the
real-vs-real floor), and the leaderboard report draws its grids.

Suites:
  translation  CycleGAN, CUT and FastCUT (128 px crops, generator width 32 with 6 residual blocks,
               discriminator width 64) against the committed sweep's best noise GAN (DCGAN at 64 px,
               widths 32, upsampled to 256 px).
  fewshot      FastGAN at 256 px against DCGAN at 256 px native and DCGAN at 64 px upsampled.
  sweep        every registered architecture, each in its CPU-sized form from the suites above (the
               DCGAN family at 64 px, translation at 128 px crops, FastGAN at 256 px with widths 16).

The budget is made equal in steps, not by a clock that stops a run: a short probe times each run's
real training step on this machine (after a warm-up), and each run gets budget / seconds-per-step
steps, so its learning-rate schedule fits the budget and a busy machine later on slows the benchmark
down without changing its results. The probe is kept in the workdir and reused, and every run is a
cached painter run, so running the script again only redoes what changed.

    .venv/bin/python bench/equal_budget.py translation           # about 3 hours with the defaults
    .venv/bin/python bench/equal_budget.py fewshot --minutes 2 --workdir /tmp/fs   # a quick look
    .venv/bin/python bench/equal_budget.py sweep --minutes 5     # about 1.5 hours

Two invocations with different --runs may share a workdir, one a core (OMP_NUM_THREADS=1 each, after a
--probe-only on the quiet machine): a stage that one of them is writing, the other waits for.

Results: bench/results/equal_budget_<suite>.json (machine, probe, one case per run: steps, training
time, SWD, its floor and the photos' SWD, each with its standard error over score.splits and per
pyramid level; merged by run name), the same as a Markdown table with ties marked
(bench/results/equal_budget_<suite>.md, what the README shows) and the report in
bench/results/equal_budget_<suite>/ (leaderboard.md, .html, .csv, images).
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

from pipeline.artifacts import write_bytes_atomic  # noqa: E402
from pipeline.layout import Workdir  # noqa: E402
from pipeline.records import compare, plus_minus  # noqa: E402
from train_throughput import machine_info, read_cases, write_json_atomic  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
EVALUATIONS = 6  # evaluations of the EMA generator per run (best.pt)


def translation_settings(arch: str) -> list[str]:
    """CPU-sized translation: 128 px crops, reduced widths (README, "CPU-sized overrides")."""
    return ["model.g_channels=32", "model.d_channels=64", f"{arch}.blocks=6", f"{arch}.crop=128",
            "train.eval_images=128", "train.log_every=10", "train.checkpoint_every=100"]


DCGAN_64 = ["data.resolution=64", "model.g_channels=32", "model.d_channels=32", "train.log_every=50",
            "train.checkpoint_every=500"]
FASTGAN_256 = ["model.g_channels=16", "model.d_channels=16", "train.eval_images=128", "train.log_every=10",
               "train.checkpoint_every=100"]
# run key -> (preset, settings); the key names the painter run (cpu-<key>) and its probe.
SUITES = {
    "translation": {
        "cyclegan": ("cyclegan", translation_settings("cyclegan")),
        "cut": ("cut", translation_settings("cut")),
        "fastcut": ("fastcut", translation_settings("fastcut")),
        "dcgan": ("dcgan", DCGAN_64),
    },
    "fewshot": {
        "fastgan-256": ("fastgan", FASTGAN_256),
        "dcgan-256": ("dcgan", ["data.resolution=256", "model.g_channels=16", "model.d_channels=16",
                                "train.eval_images=128", "train.log_every=10", "train.checkpoint_every=100"]),
        "dcgan": ("dcgan", DCGAN_64),
    },
    "sweep": {
        **{arch: (arch, DCGAN_64) for arch in ("dcgan", "sngan", "wgan-gp")},
        # WGAN's warm-up (100 critic steps for each of the first 25 generator steps) alone takes
        # 13 minutes on a 2-core CPU (probe: 30.9 s per warm-up step), more than a sweep's budget.
        "wgan": ("wgan", [*DCGAN_64, "train.critic_warmup=false"]),
        **{arch: (arch, translation_settings(arch)) for arch in ("cut", "cyclegan", "fastcut")},
        "fastgan-256": ("fastgan", FASTGAN_256),
    },
}


def check_sweep_covers_registry() -> None:
    """The sweep is every architecture: one registered after this file was written stops it."""
    from pipeline import archs

    missing = sorted(set(archs.names()) - {preset for preset, _ in SUITES["sweep"].values()})
    if missing:
        raise SystemExit(f"the sweep suite has no CPU-sized run for {', '.join(missing)}: add one to SUITES")


def resolved(key: str, preset: str, settings: list[str], data: Path, *extra: str):
    from pipeline.config import load_config

    return load_config(REPO / "configs" / f"{preset}.toml",
                       [f"data.source={data}", "run.device=cpu", f"run.name=cpu-{key}", *settings, *extra])


def probe_seconds_per_step(cfg, workdir: Path, steps: int) -> float:
    """Seconds per training step of the run `cfg` on this machine, on the real prepared data."""
    import torch

    from pipeline import archs, prepare, train
    from pipeline.devices import Process

    painter("run", "--until", "prepare", "--wait", *config_args(cfg, workdir))
    tensors = {domain: prepare.load_shards(folder) for domain, folder in
               train.shard_folders(cfg, Workdir(workdir), cfg.data.resolution).items()}
    trainer = archs.get(cfg.model.arch).trainer(cfg, tensors, torch.device("cpu"), Process())
    warmup = 3
    for step in range(warmup):
        trainer.train_step(step)
    started = time.perf_counter()
    for step in range(warmup, warmup + steps):
        trainer.train_step(step)["loss_g"].item()
    return (time.perf_counter() - started) / steps


def rounded(per_level: dict | None) -> dict:
    return {level: round(value, 2) for level, value in (per_level or {}).items()}


def markdown_table(cases: list[dict], budget: str) -> str:
    """The README's table of a suite: every run, the floor and the untouched photos, best first, SWD with its
    standard error at the mean and at the finest and coarsest levels; "≈" where a run is level with the row
    above (records.compare, as the leaderboard marks it)."""
    first = cases[0]
    rows = [{"name": case["run"], "steps": f"{case['steps']:,}", "swd": case["swd"], "se": case.get("swd_se"),
             "levels": (case["swd_per_level"], case.get("swd_per_level_se") or {}),
             "step": f"{case['probe_seconds_per_step']:.2f} s"} for case in cases]
    rows.append({"name": "real-vs-real floor", "steps": "", "swd": first["swd_floor"], "se": first.get("swd_floor_se"),
                 "levels": (first.get("swd_floor_per_level") or {}, first.get("swd_floor_per_level_se") or {}),
                 "step": ""})
    if first.get("photos_swd") is not None:
        rows.append({"name": "the untouched photos", "steps": "", "swd": first["photos_swd"],
                     "se": first.get("photos_swd_se"), "step": "",
                     "levels": (first.get("photos_per_level") or {}, first.get("photos_per_level_se") or {})})
    rows.sort(key=lambda row: row["swd"])
    levels = sorted(first["swd_per_level"], key=int)
    finest, coarsest = levels[-1], levels[0]
    lines = [f"| run | steps in {budget} | SWD | at {finest} px | at {coarsest} px | a step |",
             "|---|---:|---:|---:|---:|---:|"]
    above = None
    for row in rows:
        level = lambda key: plus_minus(row["levels"][0].get(key), row["levels"][1].get(key))  # noqa: E731
        tied = above is not None and compare(row["swd"], row["se"], above["swd"], above["se"]) == "tied"
        lines.append(f"| {row['name']} | {row['steps']} | {'≈ ' if tied else ''}{plus_minus(row['swd'], row['se'])} "
                     f"| {level(finest)} | {level(coarsest)} | {row['step']} |")
        above = row
    return "\n".join(lines) + "\n"


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
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--runs", help="comma-separated run keys of the suite (default: all of them)")
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per run")
    parser.add_argument("--probe-steps", type=int, default=10)
    parser.add_argument("--cap", type=float, default=4.0,
                        help="stop a run after this many times the budget in training time: a guard against a "
                             "wrong probe (raise it when the machine is shared)")
    parser.add_argument("--probe-only", action="store_true",
                        help="time the runs and stop: probe on a quiet machine, then train while it is shared")
    parser.add_argument("--count", type=int, default=1000, help="images generated (and scored) per run")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workdir", type=Path, help="default: /tmp/painter-<suite>-cpu")
    parser.add_argument("--out", type=Path, help="default: bench/results/equal_budget_<suite>.json")
    parser.add_argument("--report", type=Path, help="default: bench/results/equal_budget_<suite>/")
    args = parser.parse_args()
    suite = SUITES[args.suite]
    keys = [k.strip() for k in args.runs.split(",")] if args.runs else list(suite)
    unknown = sorted(set(keys) - set(suite))
    if unknown:
        raise SystemExit(f"--runs: {', '.join(unknown)} not in the {args.suite} suite ({', '.join(suite)})")
    workdir = args.workdir or Path(f"/tmp/painter-{args.suite}-cpu")
    out = args.out or RESULTS / f"equal_budget_{args.suite}.json"
    report = args.report or RESULTS / f"equal_budget_{args.suite}"
    read_cases(out)  # a file that is not ours stops the benchmark before any training
    if args.suite == "sweep":
        check_sweep_covers_registry()

    from pipeline import archs

    workdir.mkdir(parents=True, exist_ok=True)
    probe_file = workdir / "probe.json"
    probe = json.loads(probe_file.read_text()) if probe_file.is_file() else {}
    for key in keys:
        if key not in probe:
            probe[key] = probe_seconds_per_step(resolved(key, *suite[key], args.data), workdir, args.probe_steps)
            write_json_atomic(probe_file, probe)
        print(f"probe: {key} {probe[key]:.3f} s/step", flush=True)
    if args.probe_only:
        return

    machine = machine_info("cpu")
    cases = []
    for key in keys:
        preset, settings = suite[key]
        steps = max(1, int(args.minutes * 60 / probe[key]))
        every = max(1, steps // EVALUATIONS)
        cfg = resolved(key, preset, settings, args.data, f"train.steps={steps}", f"train.eval_every={every}",
                       f"train.sample_every={every}", f"train.max_minutes={args.cap * args.minutes}",
                       f"generate.count={args.count}", f"score.max_images={args.count}")
        print(f"\n== {cfg.run.name}: {steps} steps ({probe[key]:.3f} s each, {args.minutes:g} min)", flush=True)
        painter("run", "--until", "score", "--wait", *config_args(cfg, workdir))
        run_dir = workdir / "runs" / cfg.run.name
        summary = json.loads((run_dir / "train" / "summary.json").read_text())
        score = json.loads((run_dir / "score" / "score.json").read_text())
        baseline = (score.get("photos_baseline") or {}).get("name")  # the photos' own score: every number
        photos_file = Workdir(workdir).baselines_root / str(baseline) / "score.json"
        photos = json.loads(photos_file.read_text())["swd"] if baseline and photos_file.is_file() else {}
        cases.append({"run": cfg.run.name, "arch": cfg.model.arch, "consumes": archs.get(cfg.model.arch).consumes,
                      "resolution": cfg.data.resolution, "settings": settings, "budget_minutes": args.minutes,
                      "probe_seconds_per_step": round(probe[key], 4), "steps": summary["steps"],
                      "train_seconds": summary["seconds"], "precision": summary["precision"],
                      "generated": args.count, "swd": score["swd"]["value"], "swd_se": score["swd"].get("se"),
                      "swd_floor": score["swd"]["floor"], "swd_floor_se": score["swd"].get("floor_se"),
                      "swd_per_level": rounded(score["swd"]["per_level"]),
                      "swd_per_level_se": rounded(score["swd"].get("per_level_se")),
                      "swd_floor_per_level": rounded(score["swd"].get("floor_per_level")),
                      "swd_floor_per_level_se": rounded(score["swd"].get("floor_per_level_se")),
                      "photos_swd": photos.get("value"), "photos_swd_se": photos.get("se"),
                      "photos_per_level": rounded(photos.get("per_level")),
                      "photos_per_level_se": rounded(photos.get("per_level_se")),
                      "machine": machine, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    painter("leaderboard", "--workdir", str(workdir), "--out", str(report))
    names = {case["run"] for case in cases}
    # read again: another suite run on other keys may have written its cases meanwhile
    merged = sorted([c for c in read_cases(out) if c["run"] not in names] + cases, key=lambda c: c["swd"])
    write_json_atomic(out, {"benchmark": f"equal_budget_{args.suite}",
                            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "machine": machine, "cases": merged})
    table = markdown_table(merged, f"{args.minutes:g} min")
    write_bytes_atomic(out.with_suffix(".md"), table.encode())
    print(f"\n{table}\n(also in {out.with_suffix('.md')})")


if __name__ == "__main__":
    main()
