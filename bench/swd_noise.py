"""How much a score's SWD moves with its random draws, on runs already generated.

`painter score` computes SWD once, with score.seed: which 150 of the 300 paintings form each half,
which generated images are compared with them, which patches and which directions. This scores the
same images again with other seeds and reports, per run, the mean, the standard deviation and the
range of the value (and of the real-vs-real floor): how far apart two runs must be before a ranking
means something. The untouched photos are scored the same way, as a run.

    python bench/swd_noise.py WORKDIR RUN [RUN ...] [--photos] [--seeds 8] [--images 1000]
                              [--out bench/results/swd_noise.json]

Each run's result is merged into the JSON under its name, so several processes can share the work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

# train_throughput sits beside this file and puts the repository first on sys.path.
from train_throughput import machine_info, write_json_atomic

from pipeline import prepare
from pipeline.decode import load_rgb
from pipeline.images import COMPETITION_SIZE, read_jpegs
from pipeline.score import swd_with_floor

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "swd_noise.json"


def summary(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 2), "sd": round(statistics.stdev(values), 2),
            "min": round(min(values), 2), "max": round(max(values), 2), "values": [round(v, 2) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--photos", action="store_true", help="also score the untouched photos")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--images", type=int, default=1000, help="generated images (or photos) per run; 0: all")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    shards = args.workdir / "shards"
    paintings = next(p for p in sorted(shards.iterdir()) if p.name.endswith(f"-{COMPETITION_SIZE}px")
                     and "-photos-" not in p.name)
    real = prepare.load_shards(paintings, torch.device("cpu"))
    limit = args.images or None
    sets = {run: sorted((args.workdir / "runs" / run / "images").glob("*.jpg"))[:limit] for run in args.runs}
    if args.photos:
        photos = sorted((args.workdir / "raw").glob("*/photo_jpg/*.jpg"))
        picked = torch.randperm(len(photos), generator=torch.Generator().manual_seed(0))[:limit]
        sets[f"untouched photos ({len(picked)})"] = [photos[i] for i in picked.sort().values]
    for name, files in sets.items():
        if name.startswith("untouched photos"):
            fake = torch.from_numpy(np.stack([load_rgb(f, COMPETITION_SIZE)[0] for f in files]))
            fake = fake.permute(0, 3, 1, 2).contiguous()
        else:
            fake = read_jpegs(files, torch.device("cpu"))
        started = time.perf_counter()
        scores = [swd_with_floor(real, fake, seed) for seed in range(args.seeds)]
        case = {"images": len(files), "seeds": args.seeds,
                "swd": summary([s["value"] for s in scores]), "floor": summary([s["floor"] for s in scores]),
                "seconds_per_seed": round((time.perf_counter() - started) / args.seeds, 1)}
        print(f"{name}: SWD {case['swd']['mean']} sd {case['swd']['sd']} ({case['swd']['min']}-{case['swd']['max']}); "
              f"floor {case['floor']['mean']} sd {case['floor']['sd']}", flush=True)
        report = json.loads(args.out.read_text()) if args.out.exists() else {}
        report.setdefault("cases", {})[name] = case
        report.update(machine=machine_info("cpu"), paintings=len(real), workdir=str(args.workdir),
                      date=dt.date.today().isoformat())
        write_json_atomic(args.out, report)


if __name__ == "__main__":
    sys.exit(main())
