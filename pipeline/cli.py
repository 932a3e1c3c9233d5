"""The `painter` command line: one subcommand per stage, plus `run` for the whole chain."""

from __future__ import annotations

import errno
import functools
from pathlib import Path

import click

from . import __version__, layout, lock
from .chain import STAGES
from .config import Config, describe_keys, ignored_overrides, load_config
from .errors import PainterError
from .kernel.script import GPU_CHOICES, MAX_SESSION_HOURS, SESSION_HOURS
from .layout import Workdir


class PainterGroup(click.Group):
    """Lists commands in pipeline order; turns expected failures into one clear message."""

    def list_commands(self, ctx):
        return list(self.commands)

    def format_commands(self, ctx, formatter):
        """Each command's first sentence whole, wrapped (click cuts it at the terminal's width)."""
        rows = [(name, self.commands[name].get_short_help_str(limit=1000)) for name in self.list_commands(ctx)
                if not self.commands[name].hidden]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PainterError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = getattr(exc, "exit_code", 1)  # 128 + signal number after a signal stop
            raise error from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise click.ClickException(
                    f"no space left on device while writing {exc.filename or 'an artifact'}. Free some space "
                    "and run the same command again: finished stages are kept and unfinished ones restart "
                    "cleanly (training resumes from its last checkpoint).") from None
            raise


source_option = click.option(
    "--source", metavar="SOURCE", help='The data: "kaggle", "demo" or a folder holding monet_jpg/ (and photo_jpg/); '
                                       'the same as --set data.source=SOURCE.')


def with_source(overrides: tuple[str, ...], source: str | None) -> tuple[str, ...]:
    """The --set overrides with --source as one more."""
    if source is None:
        return tuple(overrides)
    if any(text.replace(" ", "").startswith("data.source=") for text in overrides):
        raise click.UsageError("give the data once: --source or --set data.source, not both")
    return (*overrides, f"data.source={source}")


workdir_option = click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default="artifacts",
                              envvar="PAINTER_WORKDIR", show_default=True,
                              help="Where artifacts live (env PAINTER_WORKDIR).")


def wait_option(func):
    """--wait, for the commands that write a stage's output: wait for another writer instead of stopping."""
    @click.option("--wait", "wait_for_writer", is_flag=True, envvar=lock.WAIT_ENV,
                  help="When another painter process writes the same output, wait for it instead of stopping "
                       f"(env {lock.WAIT_ENV}).")
    @functools.wraps(func)
    def wrapper(wait_for_writer, **kwargs):
        with lock.waiting(wait_for_writer):
            return func(**kwargs)
    return wrapper


def stage_options(func):
    """--config, --set, --source, --workdir and --force, shared by every stage."""
    @click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="TOML preset, e.g. configs/demo.toml (default: built-in DCGAN settings).")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config key; repeatable, e.g. --set train.steps=200.")
    @source_option
    @workdir_option
    @click.option("--force", is_flag=True, help="Re-run the stage even if its output is up to date.")
    @functools.wraps(func)
    def wrapper(config_path, overrides, source, workdir, force, **kwargs):
        cfg = load_config(config_path, with_source(overrides, source))
        for key in ignored_overrides(cfg, overrides):
            click.echo(f"warning: --set {key} is ignored: this run's model.arch is {cfg.model.arch}", err=True)
        runs = cfg.seed_runs()  # run.seeds: the command for each seed's run in turn
        if len(runs) > 1:
            names = ", ".join(one.run.name for one in runs)
            click.echo(f"{cfg.run.name}: run.seeds {list(cfg.run.seeds)}: the runs {names}")
        for one in runs:
            func(cfg=one, wd=Workdir(workdir), force=force, **kwargs)
    return wrapper


inception_option = click.option(
    # No click envvar: find_weights reads the variable itself, and names it as the source.
    "--inception-weights", type=click.Path(dir_okay=False),
    help="Local Inception weights file for FID/KID/MiFID (env PAINTER_INCEPTION_WEIGHTS); "
         "without it torch-fidelity downloads them.")
submissions_option = click.option(
    "--submissions", type=click.Path(file_okay=False, path_type=Path), default="submissions",
    envvar="PAINTER_SUBMISSIONS", show_default=True, help="Folder for submissions/<run>/ (env PAINTER_SUBMISSIONS).")


@click.group(cls=PainterGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="painter")
def main():
    """painter: GAN art for Kaggle's "I'm Something of a Painter Myself".

    Stages run in order, each caching its output under the workdir:
    download -> prepare -> train -> generate -> score -> submit. `painter run` chains them.

    \b
    Example (offline, built-in demo data):
      painter run --config configs/demo.toml
    """


@main.command()
@stage_options
@wait_option
def download(cfg: Config, wd: Workdir, force: bool):
    """Fetch the images into <workdir>/raw/<source>/.

    \b
    Examples:
      painter download --source demo
      painter download --source ../shared/data
    """
    from . import download as stage
    stage.run(cfg, wd, force=force, log=click.echo)


@main.command()
@stage_options
@wait_option
def prepare(cfg: Config, wd: Workdir, force: bool):
    """Decode the paintings into uint8 tensor shards (training and 256 px reference).

    \b
    Example:
      painter prepare --config configs/demo.toml
    """
    from . import prepare as stage
    stage.run(cfg, wd, force=force, log=click.echo)


@main.command()
@stage_options
@wait_option
def train(cfg: Config, wd: Workdir, force: bool):
    """Train the GAN; writes <run>/train/ (generator, sample grids, metrics.csv, losses.png).

    \b
    Example:
      painter train --config configs/dcgan.toml --set train.steps=2000
    """
    from . import train as stage
    stage.run(cfg, wd, force=force, log=click.echo)


@main.command()
@stage_options
@wait_option
def generate(cfg: Config, wd: Workdir, force: bool):
    """Write generate.count 256x256 JPEGs into <run>/images/.

    \b
    Example:
      painter generate --config configs/demo.toml --set generate.count=7500
    """
    from . import generate as stage
    stage.run(cfg, wd, force=force, log=click.echo)


@main.command()
@stage_options
@wait_option
@inception_option
def score(cfg: Config, wd: Workdir, force: bool, inception_weights: str | None):
    """Score generated images against the paintings: SWD always, FID/KID/MiFID with Inception weights.

    \b
    Example:
      painter score --config configs/demo.toml --inception-weights ~/pt_inception-2015-12-05-6726825d.pth
    """
    from . import score as stage
    stage.run(cfg, wd, force=force, inception_weights=inception_weights, log=click.echo)


@main.command()
@stage_options
@wait_option
@submissions_option
@click.option("--kaggle", "to_kaggle", is_flag=True,
              help="Submit the run's pushed Kaggle kernel version to the competition instead (a code competition "
                   "scores the notebook's images.zip).")
@click.option("--message", help="Submission description on Kaggle (with --kaggle).")
def submit(cfg: Config, wd: Workdir, force: bool, submissions: Path, to_kaggle: bool, message: str | None):
    """Zip and validate the images as submissions/<run>/images.zip, with its score.json.

    With --kaggle, submit the kernel version that `painter kernel push` made for this run.

    \b
    Examples:
      painter submit --config configs/demo.toml
      painter submit --config configs/dcgan.toml --kaggle --message "dcgan 5k steps"
    """
    if to_kaggle:
        from .kernel import remote
        remote.submit(cfg, wd, message, log=click.echo)
    else:
        from . import submit as stage
        stage.run(cfg, wd, submissions, force=force, log=click.echo)


@main.command()
@workdir_option
@click.option("--kaggle", "on_kaggle", is_flag=True,
              help="First fetch the public leaderboard and where each submitted run stands (rank, top %).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the report (default: the workdir).")
@click.option("--compare", nargs=2, metavar="RUN RUN",
              help="Say which of two runs is closer to the paintings, by how much and how sure; writes nothing.")
@click.option("--setting", "settings", multiple=True, metavar="KEY",
              help="Show this config key's value for each run as a column, e.g. --setting cut.lambda_nce; "
                   "repeatable. A sweep's report shows the keys its spec varies.")
def leaderboard(workdir: Path, on_kaggle: bool, out: Path | None, compare: tuple[str, str] | None,
                settings: tuple[str, ...]):
    """Rank every run in the workdir: leaderboard.csv, leaderboard.md and a self-contained leaderboard.html.

    The report shows each run's samples, loss and evaluation curves, and the real-vs-real SWD floor. SWDs
    carry their standard error, and a run level with the one above it (within the uncertainty) is marked ≈.

    \b
    Examples:
      painter leaderboard --workdir artifacts
      painter leaderboard --kaggle --out report/
      painter leaderboard --compare cut fastcut
      painter leaderboard --setting train.lr --setting cut.lambda_nce
    """
    from . import leaderboard as stage
    from .config import check_key
    for key in settings:
        check_key(key, "--setting")
    if compare:
        click.echo(stage.compare(Workdir(workdir), *compare))
        return
    if on_kaggle:
        standings = stage.kaggle_standings(Workdir(workdir), log=click.echo)
        click.echo("Kaggle public leaderboard (MiFID, lower is better):")
        click.echo(standings.to_string(index=False, na_rep="-") + "\n")
    stage.run(Workdir(workdir), log=click.echo, out=out, settings=list(settings))


@main.command()
@click.option("--backend", type=click.Choice(["local", "ray", "kaggle"]), default="local", show_default=True,
              help="local: the trials one after another here; ray: scheduled by Ray Tune over the CPUs/GPUs Ray "
                   "sees; kaggle: each trial a private Kaggle GPU kernel.")
@click.option("--ray-address", metavar="HOST:PORT", help="ray: join this Ray cluster (ray start --head prints it).")
@click.option("--cpus-per-trial", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="ray: CPUs (and torch threads) per trial.")
@click.option("--gpus-per-trial", type=click.FloatRange(min=0), help="ray: GPUs per trial (default: 1 when Ray sees one).")
@click.option("--asha", is_flag=True, help="ray: stop the trials whose evaluations trail (Tune's ASHA scheduler).")
@click.option("--parallel", type=click.IntRange(min=1), default=2, show_default=True,
              help="kaggle: kernels running at once (Kaggle lets an account run 2 GPU sessions).")
@click.option("--gpu", type=click.Choice(GPU_CHOICES), default="t4x2", show_default=True,
              help="kaggle: the machine of each kernel (painter kernel push --gpu).")
@click.option("--hours", type=float, default=SESSION_HOURS, show_default=True, metavar="H",
              help="kaggle: each kernel's session limit (painter kernel push --hours).")
@click.option("--yes", is_flag=True, help="kaggle: go ahead when the sweep may use more than the weekly GPU quota.")
@click.option("--retry-failed", is_flag=True, help="kaggle: push the trials whose kernel failed again.")
@click.option("--interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="kaggle: seconds between looks at the running kernels.")
@click.option("--wheels", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="kaggle: upload the wheels in DIR instead of building them.")
@submissions_option
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A sweep spec (TOML): presets, [grid], [random], seeds, budget; instead of --archs and the rest.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a key in every run (after its preset), e.g. --set data.source=DIR; repeatable.")
@source_option
@click.option("--archs", default="all", show_default=True,
              help="Comma-separated architectures, or all of them; each starts from configs/<arch>.toml.")
@click.option("--diffaugment", type=click.Choice(["both", "off", "on", "preset"]), default="both",
              show_default=True, help="Train each architecture without and with DiffAugment (both), one way only, "
                                      "or as its preset says.")
@click.option("--budget-images", type=click.IntRange(min=1),
              help="Real images shown to the discriminator per run (default 100000 when no budget is given).")
@click.option("--budget-minutes", type=click.FloatRange(min=0, min_open=True),
              help="Minutes of training steps per run, instead of an image budget.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the report (leaderboard.md, .html, .csv); default: the workdir.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train each setting with N training seeds (0..N-1), each its own run; the leaderboard shows a "
                   "setting's seeds as one row with their mean and spread.")
@workdir_option
@click.option("--force", is_flag=True, help="Re-train, re-generate and re-score every run of the sweep.")
@inception_option
def sweep(backend, ray_address, cpus_per_trial, gpus_per_trial, asha, parallel, gpu, hours, yes, retry_failed, interval,
          wheels, submissions, spec_file, overrides, source, archs, diffaugment, budget_images, budget_minutes, seeds,
          report_dir, workdir, force, inception_weights):
    """Train architectures x DiffAugment (or a spec's trials) under an equal budget; generate, score, rank.

    Runs are named sweep-<arch>[-da] (a spec's from its settings) and cached like any run: an interrupted
    sweep resumes where it stopped, a finished one costs nothing. Ends with the leaderboard report of the
    sweep's runs, with the untouched photos as the baseline to beat when the data has photos. A spec file
    (--spec, see README "Sweeps") holds presets, a grid and a random space over any config key, seeds and
    the budget.

    \b
    Examples:
      painter sweep --source ../shared/data --set data.resolution=64 --budget-images 100000
      painter sweep --archs dcgan,cyclegan,cut --diffaugment preset --budget-minutes 30 \\
          --source ../shared/data --set cyclegan.crop=128 --set cut.crop=128
    """
    from . import leaderboard, sweep_spec
    from . import sweep as stage
    if backend == "ray":
        from .sweep_ray import require
        require()  # before anything is planned or prepared
    if spec_file is not None and (archs != "all" or diffaugment != "both" or budget_images or budget_minutes):
        raise click.UsageError("--spec holds the presets, settings and budget: leave out --archs, --diffaugment "
                               "and --budget-*")
    if budget_images is None and budget_minutes is None:
        budget_images = 100_000
    augment = {"both": [False, True], "off": [False], "on": [True], "preset": [None]}[diffaugment]
    if spec_file is not None:
        spec = sweep_spec.load_spec(spec_file)
        spec.overrides += with_source(overrides, source)
        if seeds > 1:
            spec.seeds = list(range(seeds))
    else:
        spec = stage.shorthand(stage.architectures(archs), augment, list(with_source(overrides, source)),
                               budget_images, budget_minutes, seeds)
    configs = stage.plan(spec)
    wd = Workdir(workdir)
    if backend == "kaggle":
        from .kernel import sweep as on_kaggle
        runs = stage.runs(configs)
        trials = on_kaggle.run(runs, wd, submissions, parallel=parallel, gpu=gpu, hours=hours, yes=yes,
                               retry_failed=retry_failed, interval=interval, inception_weights=inception_weights,
                               wheels=wheels, log=click.echo)
        leaderboard.run(wd, log=click.echo, runs=[cfg.run.name for cfg in runs], out=report_dir, by=spec.metric,
                        settings=spec.varied)
        failed = on_kaggle.failures(trials)
        if failed is not None:
            raise failed
        return
    if backend == "ray":
        from . import sweep_ray
        names = sweep_ray.run(stage.runs(configs), wd, address=ray_address,
                              cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, asha=asha,
                              metric=spec.metric, inception_weights=inception_weights, log=click.echo)
    else:
        names = stage.run(configs, wd, inception_weights=inception_weights, force=force, log=click.echo)
    leaderboard.run(wd, log=click.echo, runs=names, out=report_dir, by=spec.metric, settings=spec.varied)


@main.command("run")
@stage_options
@wait_option
@inception_option
@submissions_option
@click.option("--until", type=click.Choice(STAGES), default="submit", show_default=True,
              help="Stop after this stage (e.g. prepare, to train under torchrun next).")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train in N processes, one per GPU, under torchrun (the other stages run in one).")
def run_chain(cfg: Config, wd: Workdir, force: bool, inception_weights: str | None, submissions: Path, until: str,
              nproc: int):
    """Run the whole chain for one config; up-to-date stages are skipped.

    --force re-runs every stage.

    \b
    Examples:
      painter run --config configs/demo.toml
      painter run --config configs/dcgan.toml --set data.source=../shared/data
      painter run --config configs/cut.toml --nproc 2    # both GPUs of a machine
    """
    from . import chain
    stamps = chain.run(cfg, wd, until=until, force=STAGES if force else (), inception_weights=inception_weights,
                       submissions=submissions, nproc=nproc, log=click.echo)
    if until != "submit":
        click.echo(f"\ndone: {cfg.run.name} up to {until}")
        return
    train_stamp, score_stamp = stamps["train"], stamps["score"]

    from .records import summary_line
    folder = wd.run_folder(cfg.run.name)
    click.echo(f"\ndone: {cfg.run.name} ({train_stamp['summary']['arch']}, "
               f"{train_stamp['summary']['resolution']}px): {summary_line(score_stamp['summary'])}")
    click.echo(f"  submission  {layout.submission_folder(submissions, cfg.run.name) / layout.ZIP}")
    click.echo(f"  score       {folder.score_json}")
    click.echo(f"  samples     {folder.samples}")
    click.echo(f"  losses      {folder.losses}")


@main.command()
def info():
    """Show what painter can use here: versions, CUDA, Inception weights, Kaggle credentials.

    \b
    Example:
      painter info
    """
    from .info import report
    rows = report()
    width = max(len(topic) for topic, _ in rows)
    for topic, finding in rows:
        click.echo(f"{topic:<{width}}  {finding}")


@main.group(cls=PainterGroup)
def kernel():
    """Run the chain on Kaggle's GPUs: push it as a private kernel, follow it, pull its submission.

    \b
    Example:
      painter kernel push --config configs/dcgan.toml --gpu t4
      painter kernel status --config configs/dcgan.toml --wait
      painter kernel pull --config configs/dcgan.toml
    """


@kernel.command("push")
@stage_options
@click.option("--gpu", type=click.Choice(GPU_CHOICES), default="t4", show_default=True,
              help="Kaggle's T4 machine (it has two T4s) trained in one process (t4) or two under torchrun "
                   "(t4x2); p100: Kaggle's current PyTorch no longer runs on it.")
@click.option("--hours", type=float, default=SESSION_HOURS, metavar="H",
              help="The kernel session's time limit, sent to Kaggle as its session timeout: training stops "
                   "early enough for generate, score and the zip to finish inside it, judged from the run's own "
                   f"speed. Default: {SESSION_HOURS:g}, the limit within which this competition's notebooks must "
                   "finish for their output to be submitted (above it painter warns); at most "
                   f"{MAX_SESSION_HOURS:g}, Kaggle's cap on any GPU session.")
@click.option("--inception-weights", type=click.Path(dir_okay=False),
              help="Local Inception weights to upload with the wheels, for FID/KID/MiFID on Kaggle (which runs "
                   "offline); default: the torch hub cache when it has them (env PAINTER_INCEPTION_WEIGHTS).")
@click.option("--wheels", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Upload the wheels in DIR (painter's and torch-fidelity's) instead of building them.")
def kernel_push(cfg: Config, wd: Workdir, force: bool, gpu: str, hours: float, inception_weights: str | None,
                wheels: Path | None):
    """Upload the wheels (private dataset <you>/painter-wheels) and push the run as a Kaggle kernel.

    The kernel runs prepare -> submit on the competition's data and leaves images.zip, score.json
    and the plots as its output; training that would not leave time for the rest inside --hours
    stops early and generates from its best checkpoint. --force uploads the wheels even when they
    did not change.

    \b
    Example:
      painter kernel push --config configs/wgan-gp.toml --set train.steps=20000 --gpu t4x2
    """
    from .kernel import remote as stage
    stage.push(cfg, wd, gpu=gpu, hours=hours,
               inception_weights=inception_weights, wheels=wheels, force=force, log=click.echo)


@kernel.command("status")
@stage_options
@click.option("--wait", is_flag=True, help="Poll until the kernel completes, fails or is cancelled.")
@click.option("--interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds between polls with --wait.")
def kernel_status(cfg: Config, wd: Workdir, force: bool, wait: bool, interval: float):
    """Show the status of the run's kernel (exits non-zero when it failed).

    \b
    Example:
      painter kernel status --config configs/dcgan.toml --wait
    """
    from .kernel import remote as stage
    stage.status(cfg, wd, wait=wait, interval=interval, log=click.echo)


@kernel.command("pull")
@stage_options
@submissions_option
def kernel_pull(cfg: Config, wd: Workdir, force: bool, submissions: Path):
    """Fetch the kernel's output into submissions/<run>/ (checked first) and register its score.

    --force pulls even when Kaggle does not report the kernel complete.

    \b
    Example:
      painter kernel pull --config configs/dcgan.toml
    """
    from .kernel import remote as stage
    stage.pull(cfg, wd, submissions, force=force, log=click.echo)


@main.command("config")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="TOML preset.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override one key.")
@source_option
@click.option("--keys", is_flag=True,
              help="List every key with its value, its meaning and (when it differs) its default instead.")
def show_config(config_path: Path | None, overrides: tuple[str, ...], source: str | None, keys: bool):
    """Print the resolved config (a preset plus overrides) as TOML.

    \b
    Example:
      painter config --config configs/demo.toml --set train.steps=50
    """
    cfg = load_config(config_path, with_source(overrides, source))
    click.echo(describe_keys(cfg) if keys else cfg.to_toml())
