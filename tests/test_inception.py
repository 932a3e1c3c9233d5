"""The FID/KID/MiFID path through torch-fidelity, with a small stand-in for Inception (no weights here)."""

import pytest
import torch
import torch_fidelity
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from pipeline.errors import PainterError
from pipeline.metrics import inception
from pipeline.metrics.inception import Weights, find_weights, inception_scores

STAND_IN = "painter-test-stand-in"


class StandInExtractor(FeatureExtractorBase):
    """A fixed random conv net: uint8 images -> 32-d features, like Inception's interface."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 5, stride=4), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    @staticmethod
    def get_provided_features_list():
        return ("32",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "32"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 64, 64, dtype=torch.uint8)

    def forward(self, x):
        assert x.dtype == torch.uint8
        return (self.net(x.float() / 255),)


if STAND_IN not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(STAND_IN, StandInExtractor)


def images(seed: int, n: int = 80, brightness: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 200, (n, 3, 64, 64), generator=g)
    return (base + brightness).clamp(0, 255).to(torch.uint8)


def score(real, fake):
    return inception_scores(real, fake, Weights(None, "download"), 32, torch.device("cpu"), extractor=STAND_IN)


def test_scores_through_torch_fidelity():
    real = images(0)
    same = score(real, real.clone())
    other = score(real, images(1))
    shifted = score(real, images(2, brightness=50))
    assert same["computed"] and same["n_real"] == same["n_fake"] == 80
    assert abs(same["fid"]) < 1e-6 and same["memorization_distance"] < 1e-9  # copies: d = 0
    assert shifted["fid"] > 10 * other["fid"] > 0
    assert shifted["kid"] > other["kid"]
    assert other["kid_subset_size"] == 80   # min(n_real, n_fake, 1000)
    d = shifted["memorization_distance"]
    assert 0 < d < 0.1   # the stand-in's features are all positive: small cosine distances
    assert shifted["mifid"] == pytest.approx(shifted["fid"] / d)


def test_mifid_formula():
    assert inception.mifid(10.0, 0.5) == pytest.approx(10.0, rel=1e-12)  # d >= 0.1: no penalty
    assert inception.mifid(10.0, 0.05) == pytest.approx(200.0)  # d < 0.1: divided by d
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    fake = torch.tensor([[-2.0, 0.0], [1.0, 1.0]])           # |cos| makes the opposite vector a copy
    expected = (0.0 + (1 - 2 ** -0.5)) / 2
    assert inception.memorization_distance(real, fake) == pytest.approx(expected)


def test_no_weights_means_not_computed_with_a_reason(monkeypatch, tmp_path):
    # torch-fidelity's real download path, pointed at a closed local port: fails like an offline machine.
    monkeypatch.setattr(tf_inception, "URL_INCEPTION_V3", "http://127.0.0.1:9/weights-inception.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    weights = find_weights()
    assert weights == Weights(None, "download")
    result = inception_scores(images(0, 4), images(1, 4), weights, 4, torch.device("cpu"))
    assert result["computed"] is False
    assert "--inception-weights" in result["reason"] and inception.ENV_VAR in result["reason"]


def test_weights_file_choices(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(PainterError, match="does not exist"):
        find_weights(tmp_path / "missing.pth")
    bogus = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    bogus.write_bytes(b"not a checkpoint")
    monkeypatch.setenv(inception.ENV_VAR, str(bogus))
    assert find_weights() == Weights(bogus, inception.ENV_VAR)
    with pytest.raises(PainterError, match="cannot load Inception weights"):
        inception_scores(images(0, 4), images(1, 4), find_weights(), 4, torch.device("cpu"))
    monkeypatch.delenv(inception.ENV_VAR)
    cached = tmp_path / "hub" / "checkpoints" / inception.WEIGHTS_NAMES[0]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert find_weights() == Weights(cached, "torch hub cache")
