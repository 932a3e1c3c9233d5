"""sweep_ray: a sweep's trials scheduled by Ray Tune over the CPUs or GPUs Ray sees (one machine, or a cluster
joined with --ray-address).

Each trial is the ordinary chain (train, generate, score) of one trial's config, in a Ray worker, on the workdir
given as an absolute path: every node must see it (a shared disk or network file system; README "Sweeps").
Evaluations during training are reported to Tune; with --asha, Tune's ASHA scheduler stops the trials whose
evaluations trail, and each gets runs/<run>/stopped.json, which the leaderboard shows instead of ranking
it. A worker that dies (killed, out of memory) is restarted by Tune and its trial resumes from its
checkpoint; a killed sweep, run again, resumes its trials and re-runs nothing that finished.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import chain
from .artifacts import read_stamp, write_json_atomic
from .config import Config, load_config
from .errors import PainterError
from .layout import Workdir
from .lock import WAIT_ENV

RAY_MISSING = ("--backend ray needs Ray Tune, an optional extra: pip install 'ray[tune]==2.60.0' in painter's "
               "environment (make setup installs it)")
# What decides, as evaluations during training measure it: MiFID needs the final score, FID stands in for it.
EVAL_METRIC = {"swd": "swd", "mifid": "fid"}
MAX_FAILURES = 2  # restarts of a trial whose worker died


def require() -> None:
    """Stop before anything is done when Ray Tune is missing."""
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        raise PainterError(RAY_MISSING) from None


def run(configs: list[Config], wd: Workdir, *, address: str | None = None, cpus_per_trial: float = 1,
        gpus_per_trial: float | None = None, asha: bool = False, metric: str = "swd",
        inception_weights: str | None = None, log=print) -> list[str]:
    """Every trial through train, generate and score under Ray Tune; returns the run names."""
    require()
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    if asha and not all(cfg.train.eval_every for cfg in configs):
        raise PainterError("--asha decides from the evaluations during training: every trial needs train.eval_every > 0")
    root = Path(wd.root).resolve()
    wd = Workdir(root)  # the trials' workers are told this absolute path
    for cfg in configs:  # the data once, here: trials side by side would wait on each other's prepare
        chain.run(cfg, wd, until="prepare", log=log)
    folder = root / "ray"
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    trials = []
    for cfg in configs:
        wd.run_folder(cfg.run.name).stopped.unlink(missing_ok=True)  # run again: no longer stopped
        path = folder / "configs" / f"{cfg.run.name}.toml"
        path.write_text(cfg.to_toml())
        trials.append({"name": cfg.run.name, "config": str(path)})
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=True)
    if gpus_per_trial is None:
        gpus_per_trial = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    log(f"ray sweep: {len(trials)} trials on {ray.cluster_resources().get('CPU', 0):g} CPUs and "
        f"{ray.cluster_resources().get('GPU', 0):g} GPUs, {cpus_per_trial:g} CPU and {gpus_per_trial:g} GPU each")
    eval_metric = EVAL_METRIC[metric]
    scheduler = None
    if asha:
        first = min(cfg.train.eval_every for cfg in configs)
        # ASHA stops every trial that reaches max_t: past the last step, so that a trial's final evaluation
        # does not end it before it has generated and scored.
        scheduler = ASHAScheduler(time_attr="step", metric=eval_metric, mode="min",
                                  max_t=max(cfg.train.steps for cfg in configs) + 1, grace_period=first,
                                  reduction_factor=2)
    tuner = tune.Tuner(
        tune.with_resources(_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
        param_space={"trial": tune.grid_search(trials), "workdir": str(root), "threads": max(1, int(cpus_per_trial)),
                     "inception_weights": inception_weights},
        tune_config=tune.TuneConfig(scheduler=scheduler, trial_name_creator=lambda t: t.config["trial"]["name"],
                                    trial_dirname_creator=lambda t: t.config["trial"]["name"]),
        run_config=tune.RunConfig(name="tune", storage_path=str(folder), verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=MAX_FAILURES)))
    results = tuner.fit()
    by_name = {result.config["trial"]["name"]: result for result in results}
    for cfg in configs:
        result = by_name.get(cfg.run.name)
        if read_stamp(wd.run_folder(cfg.run.name).score) is not None:
            continue
        if result is not None and result.error is not None:
            log(f"ray sweep: {cfg.run.name} failed: {str(result.error).splitlines()[-1]}")
            continue
        step = (result.metrics or {}).get("step") if result is not None else None
        write_json_atomic(wd.run_folder(cfg.run.name).stopped,
                          {"step": step, "by": "ASHA", "metric": eval_metric,
                           "value": (result.metrics or {}).get(eval_metric) if result is not None else None})
        log(f"ray sweep: {cfg.run.name} stopped early at step {step}: its evaluations trailed")
    return [cfg.run.name for cfg in configs]


def _trial(params: dict) -> None:
    """One trial, in a Ray worker: the chain of its config up to score, reporting each evaluation to Tune."""
    import torch
    from ray import tune

    torch.set_num_threads(params["threads"])
    os.environ[WAIT_ENV] = "1"  # a restarted trial waits for a folder another worker still holds
    cfg = load_config(params["trial"]["config"])

    def report(step: int, scores: dict) -> None:
        tune.report({"step": step, **scores})

    chain.run(cfg, Workdir(params["workdir"]), until="score", inception_weights=params["inception_weights"],
              on_evaluation=report, log=print)
