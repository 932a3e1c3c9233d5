"""Evaluation during training, the best checkpoint, and the wall-clock budget."""

import json

import pandas as pd
import torch

from pipeline import archs, evaluate
from pipeline.archs.dcgan import NoiseInputs, recalibrate_batchnorm
from pipeline.metrics import inception
from pipeline.metrics.inception import Weights

from .conftest import REPO
from .test_inception import STAND_IN

DEMO = ["--config", str(REPO / "configs" / "demo.toml"), "--set", "data.demo_paintings=24", "--set",
        "data.demo_photos=0", "--set", "model.g_channels=8", "--set", "model.d_channels=8", "--set",
        "model.latent_dim=16", "--set", "train.batch_size=8", "--set", "train.log_every=1",
        "--set", "train.sample_every=1000", "--set", "score.max_images=64"]


def build_generator(resolution):
    return archs.get("dcgan").build_generator(resolution, {"latent_dim": 16, "channels": 8})


def test_training_evaluates_and_generate_uses_the_best_checkpoint(painter, tmp_path):
    evaluated_run = [*DEMO, "--set", "train.steps=9", "--set", "train.eval_every=3", "--set", "train.eval_images=24",
                     "--set", "generate.count=64"]
    painter("run", *evaluated_run, "--until", "generate")
    trained = tmp_path / "work" / "runs" / "demo" / "train"
    metrics = pd.read_csv(trained / "metrics.csv")
    evaluated = metrics.dropna(subset=["swd"])
    assert evaluated["step"].tolist() == [3, 6, 9] and (evaluated["swd"] > 0).all()
    assert metrics["swd"].isna().sum() == 6 and metrics["fid"].isna().all()  # no Inception weights here
    best = json.loads((trained / "best.json").read_text())
    assert best["metric"] == "swd" and best["value"] == evaluated["swd"].min()
    assert best["step"] == int(evaluated.loc[evaluated["swd"].idxmin(), "step"])
    saved = torch.load(trained / "best.pt", weights_only=True)
    final = torch.load(trained / "generator.pt", weights_only=True)
    assert saved.keys() == final.keys()
    stamp = json.loads((tmp_path / "work" / "runs" / "demo" / "images" / "_stamp.json").read_text())
    assert stamp["summary"]["generator"] == "best.pt"

    painter("generate", *evaluated_run, "--set", "generate.checkpoint=final")
    stamp = json.loads((tmp_path / "work" / "runs" / "demo" / "images" / "_stamp.json").read_text())
    assert stamp["summary"]["generator"] == "generator.pt"


def test_evaluation_is_repeatable_and_leaves_the_training_generator_alone():
    torch.manual_seed(0)
    real = (torch.rand(40, 3, 32, 32) * 255).to(torch.uint8)
    evaluator = evaluate.Evaluator(real, NoiseInputs(40, 16, seed=2), seed=0,
                                   finalize=lambda model: recalibrate_batchnorm(model, 16, seed=0))
    g = build_generator(32).train()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    rng = torch.get_rng_state()
    first, evaluated = evaluator.evaluate(g)
    assert evaluator.evaluate(g)[0] == first  # fixed noise, fixed SWD seed: the same number twice
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items()) and g.training
    assert torch.equal(rng, torch.get_rng_state())  # the training RNG streams are untouched
    assert evaluated is not g and not evaluated.training


def test_on_a_cpu_evaluation_runs_the_generator_on_small_batches():
    """As in generate: a CPU-sized CUT held about 4 GB evaluating 64 photos at once."""
    real = (torch.rand(40, 3, 32, 32) * 255).to(torch.uint8)
    evaluator = evaluate.Evaluator(real, NoiseInputs(40, 16, seed=2), seed=0, batch_size=64)
    g = build_generator(32)
    seen = []
    g.register_forward_hook(lambda module, args, output: seen.append(len(output)))  # deepcopy keeps it
    evaluator.evaluate(g)
    assert seen == [16, 16, 8]


def test_fid_and_kid_join_when_an_extractor_is_available(monkeypatch):
    monkeypatch.setattr(inception, "EXTRACTOR", STAND_IN)
    real = (torch.rand(24, 3, 32, 32) * 255).to(torch.uint8)
    evaluator = evaluate.Evaluator(real, NoiseInputs(24, 16, seed=2), seed=0, weights=Weights(None, "test"))
    scores, _ = evaluator.evaluate(build_generator(32))
    assert evaluator.metric == "fid" and scores["fid"] > 0 and "kid" in scores and scores["swd"] > 0


def test_a_wall_clock_budget_stops_training_early(painter, tmp_path):
    painter("download", *DEMO)
    painter("prepare", *DEMO)
    result = painter("train", *DEMO, "--set", "train.steps=100000", "--set", "train.max_minutes=0.002")
    stamp = json.loads((tmp_path / "work" / "runs" / "demo" / "train" / "_stamp.json").read_text())
    assert 1 <= stamp["summary"]["steps"] < 100000 and "min of training reached" in result.output
    metrics = pd.read_csv(tmp_path / "work" / "runs" / "demo" / "train" / "metrics.csv")
    assert metrics["step"].iloc[-1] == stamp["summary"]["steps"] and metrics["swd"].notna().iloc[-1]
