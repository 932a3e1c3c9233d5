"""Where everything lives: the workdir's folders, a run's folders and the files in them, each named here
once. Every stage, the leaderboard, the report, the kernel and the benchmarks ask these objects for a
path; none spells a folder or file name of its own. Free of torch: the CLI imports it first.

    <workdir>/raw/<source>/                       download
    <workdir>/shards/<source>[-photos]-<res>px/   prepare
    <workdir>/runs/<run>/train/                   train: checkpoint, generator, metrics, grids
    <workdir>/runs/<run>/images/                  generate: the JPEGs
    <workdir>/runs/<run>/score/                   score: score.json, nearest.png
    <workdir>/runs/<run>/features/                score: the generated images' Inception features
    <workdir>/runs/<run>/kaggle/                  kernel pull: what a Kaggle kernel's run left
    <workdir>/baselines/<source>-photos/          score: the untouched photos scored as a run
    <workdir>/features/                           score: the paintings' Inception features
    <workdir>/kernels/<run>/                      kernel push: the pushed kernel and its records
    <submissions>/<run>/                          submit: images.zip and its score.json
    <workdir>/leaderboard.{csv,md,html}           leaderboard (or the folder given with --out)
"""

from __future__ import annotations

from pathlib import Path

# The presets shipped beside the package (a checkout's configs/), and the one sized for a CPU.
PRESETS = Path(__file__).resolve().parents[1] / "configs"
CPU_PRESET = "cut-cpu.toml"

# The files a run's stages write; a kernel exports them under the same names.
SCORE = "score.json"
METRICS = "metrics.csv"
SAMPLES = "samples.png"        # the final grid of a run (or of the untouched photos)
LOSSES = "losses.png"
NEAREST = "nearest.png"
ZIP = "images.zip"
TRAIN_SUMMARY = "summary.json"
EXPORTED_TRAIN_SUMMARY = "train-" + TRAIN_SUMMARY  # beside the others, it needs its folder in its name
# train/'s own files (pipeline/train.py works in that folder)
CHECKPOINT = "checkpoint.pt"
GENERATOR = "generator.pt"
BEST_GENERATOR = "best.pt"
BEST_RECORD = "best.json"
TRAIN_CONFIG = "config.toml"
SAMPLE_GRIDS = "samples"       # train/samples/step_NNNNNN.png
KERNEL_RECORD = "kernel.json"  # in runs/<run>/kaggle/: which kernel version this is, written last by pull
STOPPED = "stopped.json"       # in runs/<run>/: a sweep's scheduler stopped the run early (its evaluations trailed)
SUBMISSION_RECORD = "submission.json"
PUSH_RECORD = "push.json"
REJECTED_OUTPUT = "rejected-output"  # in kernels/<run>/: a pulled output that failed its check, kept for a look
FAILED_LOG = "failed.log"            # in kernels/<run>/: the log of a kernel that ended without output
FAILED_RECORD = "failed.json"        # in kernels/<run>/: a sweep's record of the pushed version that failed
KAGGLE_STANDINGS = "leaderboard_kaggle.json"
LEADERBOARD_CSV, LEADERBOARD_MD, LEADERBOARD_HTML = "leaderboard.csv", "leaderboard.md", "leaderboard.html"
SHARDS_MANIFEST = "manifest.json"  # in a shards folder: its shards, the images' file names, what was skipped


class RunFolder:
    """One run's folder, `<workdir>/runs/<name>/`, and the paths of what its stages write."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.name = self.root.name

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    # the stages' folders
    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def score(self) -> Path:
        return self.root / "score"

    @property
    def features(self) -> Path:
        """The generated images' Inception features (one set kept)."""
        return self.root / "features"

    @property
    def kaggle(self) -> Path:
        """What `painter kernel pull` registered of a Kaggle kernel's run of this config."""
        return self.root / "kaggle"

    @property
    def stopped(self) -> Path:
        return self.root / STOPPED

    # train/
    @property
    def checkpoint(self) -> Path:
        return self.train / CHECKPOINT

    @property
    def generator(self) -> Path:
        return self.train / GENERATOR

    @property
    def best_generator(self) -> Path:
        return self.train / BEST_GENERATOR

    @property
    def best_record(self) -> Path:
        return self.train / BEST_RECORD

    @property
    def metrics(self) -> Path:
        return self.train / METRICS

    @property
    def train_config(self) -> Path:
        return self.train / TRAIN_CONFIG

    @property
    def train_summary(self) -> Path:
        return self.train / TRAIN_SUMMARY

    @property
    def sample_grids(self) -> Path:
        """The grids saved during training, one per `train.sample_every` steps."""
        return self.train / SAMPLE_GRIDS

    @property
    def samples(self) -> Path:
        return self.train / SAMPLES

    @property
    def losses(self) -> Path:
        return self.train / LOSSES

    # score/
    @property
    def score_json(self) -> Path:
        return self.score / SCORE

    @property
    def nearest(self) -> Path:
        return self.score / NEAREST

    # kaggle/
    @property
    def kernel_record(self) -> Path:
        return self.kaggle / KERNEL_RECORD

    @property
    def submission_record(self) -> Path:
        return self.kaggle / SUBMISSION_RECORD

    def exported(self) -> dict[str, Path]:
        """The files a run hands on (a Kaggle kernel's output, read back by the report), by name."""
        return {SCORE: self.score_json, SAMPLES: self.samples, LOSSES: self.losses, METRICS: self.metrics,
                EXPORTED_TRAIN_SUMMARY: self.train_summary, NEAREST: self.nearest}


class Workdir:
    """Where every artifact lives; one object so no stage invents its own paths."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def raw(self, source_id: str) -> Path:
        return self.root / "raw" / source_id

    def shards(self, source_id: str, resolution: int, domain: str = "paintings") -> Path:
        """Prepared images of one domain: the paintings (<source>-<res>px) or the photos (<source>-photos-<res>px)."""
        infix = "" if domain == "paintings" else f"-{domain}"
        return self.root / "shards" / f"{source_id}{infix}-{resolution}px"

    @property
    def runs_root(self) -> Path:
        return self.root / "runs"

    def run_folder(self, name: str) -> RunFolder:
        return RunFolder(self.runs_root / name)

    def run_folders(self) -> list[RunFolder]:
        found = sorted(p for p in self.runs_root.iterdir() if p.is_dir()) if self.runs_root.is_dir() else []
        return [RunFolder(path) for path in found]

    @property
    def baselines_root(self) -> Path:
        return self.root / "baselines"

    def baseline(self, source_id: str) -> Path:
        """The untouched photos of `source_id`, scored as if they were a run's images."""
        return self.baselines_root / f"{source_id}-photos"

    def baselines(self) -> list[Path]:
        """Every baseline folder, by name (score.json, samples.png and nearest.png in each)."""
        found = self.baselines_root.iterdir() if self.baselines_root.is_dir() else []
        return sorted(path for path in found if path.is_dir())  # not the lock files beside them

    @property
    def reference_features(self) -> Path:
        """The paintings' Inception features, shared by every run scored against them."""
        return self.root / "features"

    @property
    def kernels_root(self) -> Path:
        """`painter kernel push`'s folder: a folder per run, and the wheels and their dataset's record."""
        return self.root / "kernels"

    def kernel(self, run: str) -> Path:
        """What `painter kernel push` made and recorded for `run`."""
        return self.kernels_root / run

    @property
    def kaggle_standings(self) -> Path:
        """The competition's public leaderboard as last fetched (`painter leaderboard --kaggle`)."""
        return self.root / KAGGLE_STANDINGS


def submission_folder(submissions: str | Path, run: str) -> Path:
    """Where `run`'s images.zip and its score.json are submitted from (`--submissions`, not in the workdir)."""
    return Path(submissions) / run
