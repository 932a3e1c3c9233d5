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
    configs = sweep.plan(sweep.shorthand(["dcgan", "wgan", "wgan-gp"], [False, True], overrides(), 4000, None))
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

    timed = sweep.plan(sweep.shorthand(["sngan"], [False], overrides(), None, 2.5))[0]
    assert timed.train.max_minutes == 2.5 and timed.train.steps == sweep.MAX_STEPS
    with pytest.raises(PainterError, match="one budget"):
        sweep.shorthand(["dcgan"], [False], [], 10, 1.0)
    with pytest.raises(PainterError, match="unknown architecture"):
        sweep.shorthand(["stylegan"], [False], [], 10, None)


SPEC = """
[sweep]
presets = ["cut", "fastcut", "dcgan"]
budget = { images = 64 }
trials = 2
seeds = 2

[grid]
"cut.lambda_nce" = [1, 2]
"cut.crop" = [128]
"train.ema_decay" = [0.99, 0.999]

[random]
"train.lr_g" = { log_uniform = [5e-5, 5e-4] }
"fastcut.num_patches" = { choice = [64, 128] }

[set]
"data.source" = "demo"
"""


def test_a_spec_expands_to_its_trials_with_stable_names(tmp_path):
    from pipeline import sweep_spec

    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    trials = sweep_spec.expand(sweep_spec.load_spec(path))
    cut = [t for t in trials if t.preset == "cut"]
    # cut: 2 lambda_nce x 1 crop x 2 ema_decay grid points, 2 draws each; fastcut: 2 ema_decay x 2 draws;
    # dcgan: the same, no section of its own
    assert (len(cut), len(trials)) == (8, 16)
    assert re.fullmatch(r"sweep-cut-lambda_nce1-crop128-ema_decay0\.99-r[0-9a-f]{6}", cut[0].name)
    assert {t.settings["cut.lambda_nce"] for t in cut} == {1, 2}
    assert all("fastcut.num_patches" not in t.settings for t in cut)  # another architecture's key
    assert all(t.settings["fastcut.num_patches"] in (64, 128) for t in trials if t.preset == "fastcut")
    assert all(5e-5 <= t.settings["train.lr_g"] <= 5e-4 for t in trials)
    assert len({t.name for t in trials}) == 16
    again = sweep_spec.expand(sweep_spec.load_spec(path))
    assert [(t.name, t.settings) for t in again] == [(t.name, t.settings) for t in trials]  # stable

    configs = sweep.plan(sweep_spec.load_spec(path))
    assert [c.run.name for c in configs] == [t.name for t in trials]
    first = configs[0]
    assert (first.run.seeds, first.data.source, first.options.lambda_nce, first.train.ema_decay) == ((0, 1), "demo", 1, 0.99)
    assert first.train.lr_g == pytest.approx(trials[0].settings["train.lr_g"])
    assert [one.run.name for one in first.seed_runs()] == [f"{first.run.name}-seed0", f"{first.run.name}-seed1"]


@pytest.mark.parametrize("text, message", [
    ('[sweep]\npresets = ["cut"]\nbudget = { hours = 3 }', "budget must be"),
    ('[sweep]\npresets = []', "presets must list"),
    ('[sweep]\npresets = ["cut"]\ntrials = 3', "trials = 3 draws from [random], which is empty"),
    ('[sweep]\npresets = ["cut"]\n[random]\n"train.lr_g" = { normal = [0, 1] }', "expected { uniform"),
    ('[sweep]\npresets = ["cut"]\n[random]\n"train.lr_g" = { log_uniform = [0, 1] }', "lo > 0"),
    ('[sweep]\npresets = ["cut"]\nmetric = "fid"', "metric must be one of swd, mifid"),
    ('[sweep]\npresets = ["cut"]\n[grids]\n"a.b" = [1]', "unknown table(s) grids"),
    ('[sweep]\npresets = ["cut", "cut"]', "names sweep-cut more than once"),
    ('[sweep]\npresets = ["stylegan"]', "no preset 'stylegan'"),
])
def test_a_bad_spec_is_one_clear_line(tmp_path, text, message):
    from pipeline import sweep_spec

    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(PainterError, match=re.escape(message)):
        sweep_spec.expand(sweep_spec.load_spec(path))


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


def test_a_spec_file_runs_its_trials_and_ranks_them(painter, tmp_path):
    from pipeline.config import parse_override, toml_value

    settings = "\n".join(f'"{section}.{key}" = {toml_value(value)}' for o in overrides()
                         for section, keys in parse_override(o).items() for key, value in keys.items())
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[sweep]\npresets = ["dcgan"]\nbudget = {{ images = 32 }}\nname = "s"\n'
                    f'[grid]\n"train.ema_decay" = [0.9, 0.99]\n[set]\n{settings}\n')
    result = painter("sweep", "--spec", str(spec))
    assert "sweep 2/2: s-dcgan-ema_decay0.99" in result.output
    table = pd.read_csv(tmp_path / "work" / "leaderboard.csv")
    assert sorted(table["run"]) == ["s-dcgan-ema_decay0.9", "s-dcgan-ema_decay0.99"] and table["steps"].tolist() == [4] * 2
    # the setting the spec varies is a column: in the CSV, on screen and in the report's ranking
    assert dict(zip(table["run"], table["train.ema_decay"])) == {"s-dcgan-ema_decay0.9": 0.9, "s-dcgan-ema_decay0.99": 0.99}
    assert re.search(r"^\s*run .* train\.ema_decay", result.output, re.M)
    report = (tmp_path / "work" / "leaderboard.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| rank"))
    assert "| arch | train.ema_decay |" in header and "| 0.99 |" in report
    asked = painter("leaderboard", "--setting", "train.ema_decay", "--setting", "dcgan.blocks", ok=False)
    assert asked.exit_code != 0 and "unknown config section [dcgan]" in asked.output  # dcgan has no section
    near = painter("leaderboard", "--setting", "train.ema_decy", ok=False)
    assert "unknown config key train.ema_decy (did you mean train.ema_decay?)" in near.output
    mixed = painter("sweep", "--spec", str(spec), "--archs", "dcgan", ok=False)
    assert mixed.exit_code == 2 and "--spec holds the presets" in mixed.output
