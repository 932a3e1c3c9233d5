"""Peak memory of `painter prepare`, against the prepare before memory was bounded (side by side).

prepare runs as a subprocess over the competition's data (300 paintings and 7,038 photos, packed
at 256 px as a translation architecture needs) and over the same data with the odd-file corpus of
the tests added to the paintings (exotic formats, broken files, a 20 MP JPEG, a 20 MP PNG and a PNG
header claiming 10^10 pixels). The peak is the largest sum, over prepare's process and its worker
processes, of the proportional set size (PSS: shared pages split between the processes that share
them), sampled every 50 ms. The reference is the same code at REFERENCE, checked out in a git worktree.

    .venv/bin/python bench/prepare_memory.py        # about 10 minutes on 2 cores

Results: bench/results/prepare_memory.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from train_throughput import machine_info, write_json_atomic  # noqa: E402

# The last commit whose prepare decoded in threads and held every image until the end.
REFERENCE = "910eccb"
DEFAULT_DATA = REPO.parent / "shared" / "data"


def tree_pss_kib(root: int) -> int:
    """PSS of `root` and every process below it, in KiB (0 for processes that are gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


def measure(command: list[str], cwd: Path, env: dict) -> dict:
    """Run `command`; its wall time, exit code, last output line and peak PSS of its process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_pss_kib(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output = process.communicate()[0]
    sampler.join()
    lines = [line for line in output.splitlines() if line.strip()]
    return {"exit_code": process.returncode, "seconds": round(time.perf_counter() - started, 1),
            "peak_mib": round(peak[0] / 1024), "last_line": lines[-1] if lines else "",
            "summary_lines": [line for line in lines if " packed" in line]}


def build_sources(data: Path, root: Path) -> dict[str, Path]:
    """{'competition': the data as it is, 'odd files': the paintings plus the test suite's odd corpus}."""
    from tests import odd_files

    odd = root / "odd-source"
    if not odd.exists():
        (odd / "monet_jpg").mkdir(parents=True)
        for painting in (data / "monet_jpg").iterdir():
            (odd / "monet_jpg" / painting.name).symlink_to(painting)
        odd_files.build(odd / "monet_jpg")
        (odd / "photo_jpg").symlink_to(data / "photo_jpg")
    return {"competition": data, "odd files": odd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/painter-prepare-memory"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "prepare_memory.json")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    reference_tree = args.workdir / "reference"
    if not reference_tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(reference_tree), args.reference], cwd=REPO, check=True)
    sides = {"painter": REPO, f"reference {args.reference}": reference_tree}
    cases = []
    for corpus, source in build_sources(args.data, args.workdir).items():
        for side, tree in sides.items():
            work = args.workdir / "runs" / f"{side.split()[0]}-{corpus.replace(' ', '-')}"
            shutil.rmtree(work, ignore_errors=True)
            env = dict(os.environ, PYTHONPATH=str(tree), PAINTER_WORKDIR=str(work), TQDM_MININTERVAL="30")
            config = ["--config", str(tree / "configs" / "cut.toml"), "--set", f"data.source={source}"]
            subprocess.run([sys.executable, "-m", "pipeline", "download", *config], cwd=tree, env=env, check=True,
                           stdout=subprocess.DEVNULL)
            result = measure([sys.executable, "-m", "pipeline", "prepare", *config], tree, env)
            cases.append({"side": side, "corpus": corpus, **result})
            print(f"{corpus:<12} {side:<20} peak {result['peak_mib']:>6} MiB  {result['seconds']:>6} s  "
                  f"exit {result['exit_code']}  {result['last_line'][:100]}", flush=True)
            shutil.rmtree(work, ignore_errors=True)
    write_json_atomic(args.out, {
        "benchmark": "prepare_memory",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info("cpu"), "precision": "none (uint8 decoding)",
        "what": "peak PSS of `painter prepare` and its worker processes; configs/cut.toml (paintings and photos "
                "at 256 px)",
        "cases": cases})


if __name__ == "__main__":
    main()
