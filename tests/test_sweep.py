"""`painter sweep`: equal budgets, ordinary cached runs, resuming after an interruption, the report."""

import re

import pandas as pd
import pytest

from pipeline import generate, sweep
from pipeline.archs.dcgan import critic_steps
from pipeline.errors import PainterError

TINY = ["--set", "data.source=demo", "--set", "data.demo_paintings=24", "--set", "data.demo_photos=0",
        "--set", "data.resolution=32", "--set", "model.g_channels=8", "--set", "model.d_channels=8",
        "--set", "model.latent_dim=16", "--set", "train.batch_size=8", "--set", "train.log_every=1",
        "--set", "train.sample_every=1000", "--set", "train.eval_every=2", "--set", "train.eval_images=24",
        "--set", "generate.count=40", "--set", "score.max_images=40"]


def overrides():
    return [TINY[i + 1] for i in range(0, len(TINY), 2)]


def test_the_budget_is_equal_in_images_shown_to_the_discriminator():
    configs = sweep.plan(["dcgan", "wgan", "wgan-gp"], [False, True], overrides(), 4000, None)
    assert [c.run.name for c in configs] == ["sweep-dcgan", "sweep-dcgan-da", "sweep-wgan", "sweep-wgan-da",
                                             "sweep-wgan-gp", "sweep-wgan-gp-da"]
    assert [c.train.diffaugment for c in configs[:2]] == ["", sweep.DIFFAUGMENT]
    by_name = {c.run.name: c for c in configs}
    assert by_name["sweep-dcgan"].train.steps == 500          # 4000 / batch 8, one critic step each
    assert by_name["sweep-wgan-gp"].train.steps == 100        # five critic steps per generator step
    wgan = by_name["sweep-wgan"]   # its warm-up: 100 critic steps for each of the first 25 steps
    seen = sum(critic_steps(s, 5, True) * 8 for s in range(wgan.train.steps))
    assert seen >= 4000 > seen - 100 * 8 and wgan.train.steps < 100
    assert all(c.data.resolution == 32 and c.model.g_channels == 8 for c in configs)

    timed = sweep.plan(["sngan"], [False], overrides(), None, 2.5)[0]
    assert timed.train.max_minutes == 2.5 and timed.train.steps == sweep.MAX_STEPS
    with pytest.raises(PainterError, match="one budget"):
        sweep.plan(["dcgan"], [False], [], 10, 1.0)
    with pytest.raises(PainterError, match="unknown architecture"):
        sweep.plan(["stylegan"], [False], [], 10, None)


def states(output: str, run: str) -> dict[str, str]:
    section = output.split(f": {run} (")[1].split("\n== ")[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"(train|generate|score): (running|up to date)", section)}


def test_an_interrupted_sweep_resumes_and_a_finished_one_costs_nothing(painter, tmp_path, monkeypatch):
    args = ["sweep", "--archs", "dcgan,sngan", "--budget-images", "32", *TINY]
    real_generate = generate.run

    def interrupted(cfg, wd, **kwargs):
        if cfg.run.name == "sweep-sngan":
            raise KeyboardInterrupt  # killed while the third run is generating
        return real_generate(cfg, wd, **kwargs)

    monkeypatch.setattr(generate, "run", interrupted)
    stopped = painter(*args, ok=False)
    assert stopped.exit_code == 1 and "Aborted" in stopped.output and "sweep 4/4" not in stopped.output
    monkeypatch.setattr(generate, "run", real_generate)

    resumed = painter(*args)
    assert states(resumed.output, "sweep-dcgan") == {"train": "up to date", "generate": "up to date",
                                                     "score": "up to date"}
    assert states(resumed.output, "sweep-sngan") == {"train": "up to date", "generate": "running",
                                                     "score": "running"}
    assert set(states(resumed.output, "sweep-sngan-da").values()) == {"running"}

    again = painter(*args)
    for run in ("sweep-dcgan", "sweep-dcgan-da", "sweep-sngan", "sweep-sngan-da"):
        assert set(states(again.output, run).values()) == {"up to date"}
    table = pd.read_csv(tmp_path / "work" / "leaderboard.csv")
    assert sorted(table["run"]) == ["sweep-dcgan", "sweep-dcgan-da", "sweep-sngan", "sweep-sngan-da"]
    assert table["swd"].notna().all() and table["steps"].tolist() == [4] * 4
    assert (tmp_path / "work" / "leaderboard.html").is_file() and (tmp_path / "work" / "leaderboard.md").is_file()
