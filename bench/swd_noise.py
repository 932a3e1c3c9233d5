"""How much a score's SWD moves with its random draws, and whether its standard error says so.

`painter score` computes SWD over score.splits splits (8) and reports their mean ± its standard error. The
random draws are which 150 of the 300 paintings form each half, which generated images are compared with
them, which patches and which directions; score.seed picks them. This scores the same images again with
other seeds and reports, per run, the spread of the value across seeds (the standard deviation: what the
standard error should match), the mean of the standard errors each seed reported, their ratio, and the
time one score takes with one split and with the default splits. The untouched photos are scored the same
way, as a run.

    python bench/swd_noise.py WORKDIR RUN [RUN ...] [--photos] [--seeds 8] [--splits 8] [--images 1000]
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
from pipeline.metrics.swd import swd_with_floor

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
    parser.add_argument("--splits", type=int, default=8, help="splits per score (score.splits)")
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
        scores = [swd_with_floor(real, fake, seed, splits=args.splits) for seed in range(args.seeds)]
        per_score = (time.perf_counter() - started) / args.seeds
        started = time.perf_counter()  # after the scores above: warm, as they were
        swd_with_floor(real, fake, 0, splits=1)
        one_split = time.perf_counter() - started
        swd, reported_se = summary([s["value"] for s in scores]), statistics.mean(s["se"] for s in scores)
        case = {"images": len(files), "seeds": args.seeds, "splits": args.splits,
                "swd": swd, "floor": summary([s["floor"] for s in scores]),
                "reported_se": round(reported_se, 2), "floor_reported_se": round(
                    statistics.mean(s["floor_se"] for s in scores), 2),
                # the standard error says how far the mean of one score lies from the mean of many: it should
                # match the spread across seeds (1 when it does, below 1 when it promises too much)
                "se_over_seed_sd": round(reported_se / statistics.stdev([s["value"] for s in scores]), 2),
                "seconds_one_split": round(one_split, 1), "seconds_per_score": round(per_score, 1),
                "time_ratio": round(per_score / one_split, 2)}
        print(f"{name}: SWD {swd['mean']} sd {swd['sd']} across seeds, reported se {case['reported_se']} "
              f"(ratio {case['se_over_seed_sd']}); {args.splits} splits {case['seconds_per_score']} s, one split "
              f"{case['seconds_one_split']} s ({case['time_ratio']}x)", flush=True)
        report = json.loads(args.out.read_text()) if args.out.exists() else {}
        report.setdefault("cases", {})[name] = case
        report.update(machine=machine_info("cpu"), paintings=len(real), workdir=str(args.workdir),
                      date=dt.date.today().isoformat())
        write_json_atomic(args.out, report)


if __name__ == "__main__":
    sys.exit(main())
