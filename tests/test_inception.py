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


def score(real, fake, extractor=STAND_IN, **kwargs):
    return inception_scores(real, fake, Weights(None, "download"), 32, torch.device("cpu"), extractor=extractor,
                            **kwargs)


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


class CountingStandIn(StandInExtractor):
    images_seen = 0

    def forward(self, x):
        CountingStandIn.images_seen += len(x)
        return super().forward(x)


COUNTING = "painter-test-counting-stand-in"
if COUNTING not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(COUNTING, CountingStandIn)


def test_features_are_extracted_once_and_reused(tmp_path):
    real, fake, other_fake = images(0, 40), images(1, 24), images(2, 24)
    caches = {"real_cache": inception.FeatureCache(tmp_path / "reference"), "real_key": {"images": "shards-1"}}

    def scored(fake_images, fake_key):
        before = CountingStandIn.images_seen
        result = score(real, fake_images, extractor=COUNTING, **caches, fake_key={"images": fake_key},
                       fake_cache=inception.FeatureCache(tmp_path / "run", keep_one=True))
        return result, CountingStandIn.images_seen - before

    first, seen = scored(fake, "gen-1")
    assert seen == 40 + 24 and first["features"] == {"reference": "extracted", "generated": "extracted"}
    again, seen = scored(fake, "gen-1")
    assert seen == 0 and again["features"] == {"reference": "cached", "generated": "cached"}
    assert again["fid"] == first["fid"] and again["kid"] == first["kid"] and again["mifid"] == first["mifid"]
    second_run, seen = scored(other_fake, "gen-2")  # another run: only its own images are extracted
    assert seen == 24 and second_run["features"] == {"reference": "cached", "generated": "extracted"}
    assert len(list((tmp_path / "run").glob("features-*.pt"))) == 1  # a run keeps only its latest set
    saved = torch.load(next((tmp_path / "reference").glob("features-*.pt")), weights_only=True)
    assert saved["features"].shape == (40, 32)
    assert torch.allclose(saved["mu"], saved["features"].double().mean(0))
    assert torch.allclose(saved["sigma"], torch.cov(saved["features"].double().T))


class AsTorchmetricsFeature(torch.nn.Module):
    """torchmetrics wants a module returning N x d; torch-fidelity's extractors return a tuple."""

    def __init__(self, extractor):
        super().__init__()
        self.extractor = extractor

    def forward(self, x):
        return self.extractor(x)[0]


def test_mifid_equals_torchmetrics_with_the_same_feature_module():
    from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance

    module = StandInExtractor(STAND_IN, ["32"]).eval()
    real = images(0, 120)
    for fake in (images(3, 100, brightness=40), images(4, 100, brightness=-60), real[:50].flip(-1)):
        ours = inception.fid_kid_mifid(inception.extract_features(module, real, 32),
                                       inception.extract_features(module, fake, 32))
        reference = MemorizationInformedFrechetInceptionDistance(feature=AsTorchmetricsFeature(module))
        # torchmetrics 1.x averages the nearest distance over its "real" set; Kaggle averages over the
        # generated images. FID is symmetric, so giving torchmetrics the sets swapped computes Kaggle's MiFID.
        reference.update(fake, real=True)
        reference.update(real, real=False)
        assert ours["mifid"] == pytest.approx(float(reference.compute()), rel=1e-4)


def gaussian_features(n: int, mean: torch.Tensor, variances: torch.Tensor, rotation: torch.Tensor, seed: int):
    """n samples whose sample mean and sample covariance are exactly mean and R diag(variances) R^T."""
    z = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z -= z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T  # sample covariance exactly I
    return (z * variances.sqrt()) @ rotation.T + mean


def test_fid_equals_the_closed_form_for_gaussian_features():
    d = 24
    g = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    var1 = torch.rand(d, generator=g, dtype=torch.float64) * 3 + 0.1
    var2 = torch.rand(d, generator=g, dtype=torch.float64) * 3 + 0.1
    real = gaussian_features(400, mu1, var1, rotation, 1)
    fake = gaussian_features(300, mu2, var2, rotation, 2)
    # Covariances sharing eigenvectors: tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt(v1) - sqrt(v2))^2.
    closed_form = float(((mu1 - mu2) ** 2).sum() + ((var1.sqrt() - var2.sqrt()) ** 2).sum())
    assert inception.fid_kid_mifid(real, fake)["fid"] == pytest.approx(closed_form, rel=1e-6)


def test_kid_is_about_zero_for_two_samples_of_one_distribution():
    g = torch.Generator().manual_seed(0)
    real, same = torch.randn(600, 64, generator=g), torch.randn(500, 64, generator=g)
    shifted = torch.randn(500, 64, generator=g) + 0.3
    null, apart = inception.fid_kid_mifid(real, same), inception.fid_kid_mifid(real, shifted)
    assert null["kid_subset_size"] == 500
    # KID is unbiased: for one distribution it is zero up to sampling noise, far below a real gap.
    assert abs(null["kid"]) < 0.01 * apart["kid"] and apart["kid"] > 50 * apart["kid_std"]


def test_mifid_formula():
    assert inception.mifid(10.0, 0.5) == pytest.approx(10.0, rel=1e-12)  # d >= 0.1: no penalty
    assert inception.mifid(10.0, 0.05) == pytest.approx(200.0)  # d < 0.1: divided by d
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    fake = torch.tensor([[-2.0, 0.0], [1.0, 1.0]])           # |cos| makes the opposite vector a copy
    # Kaggle's d: for each generated image its nearest painting, averaged over the generated images
    # (averaged over the paintings instead, it would be (0 + 2 x 0.293) / 3).
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


def test_a_failed_download_is_tried_once_a_process(monkeypatch, tmp_path, capfd):
    # score tries for the untouched photos, then for the run: one "Downloading" line, one failure
    monkeypatch.setattr(tf_inception, "URL_INCEPTION_V3", "http://127.0.0.1:9/weights-inception.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    weights = find_weights()
    first = inception_scores(images(0, 4), images(1, 4), weights, 4, torch.device("cpu"))
    second = inception_scores(images(2, 4), images(3, 4), weights, 4, torch.device("cpu"))
    assert first == second and first["computed"] is False
    assert capfd.readouterr().err.count("Downloading") == 1


def legacy_file(path, payload):
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    return path


def test_weights_file_is_checked(monkeypatch, tmp_path):
    """Format, size and sha256 are checked; constants are pointed at a small file (no real weights here)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    good = legacy_file(tmp_path / inception.WEIGHTS_NAMES[1], {"w": torch.arange(100.0)})
    monkeypatch.setattr(inception, "WEIGHTS_SIZE", good.stat().st_size)
    monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", inception.sha256_file(good)[:8])
    assert find_weights(good) == Weights(good, "--inception-weights")

    with pytest.raises(PainterError, match="does not exist"):
        find_weights(tmp_path / "missing.pth")
    zipped = tmp_path / "zipped.pth"
    torch.save({"w": torch.arange(100.0)}, zipped)
    with pytest.raises(PainterError, match="zip-format"):
        find_weights(zipped)
    short = tmp_path / "short.pth"
    short.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(PainterError, match=r"bytes, so it is not the Inception weights \(truncated"):
        find_weights(short)
    other = legacy_file(tmp_path / "other.pth", {"w": torch.arange(100.0) + 1})
    assert other.stat().st_size == good.stat().st_size
    monkeypatch.setenv(inception.ENV_VAR, str(other))
    with pytest.raises(PainterError, match="has sha256 .* not the Inception weights.*begins"):
        find_weights()


def test_weights_come_from_the_flag_then_the_variable_then_the_hub_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(inception, "check_weights_file", lambda path, origin: None)
    flag, variable = tmp_path / "a.pth", tmp_path / "b.pth"
    cached = tmp_path / "hub" / "checkpoints" / inception.WEIGHTS_NAMES[1]
    for path in (flag, variable, cached):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    monkeypatch.setenv(inception.ENV_VAR, str(variable))
    assert find_weights(flag) == Weights(flag, "--inception-weights")
    assert find_weights() == Weights(variable, inception.ENV_VAR)
    monkeypatch.delenv(inception.ENV_VAR)
    assert find_weights() == Weights(cached, "torch hub cache")


def test_a_broken_weights_file_is_a_clear_error(monkeypatch, tmp_path):
    bogus = legacy_file(tmp_path / inception.WEIGHTS_NAMES[1], {"not": torch.zeros(3)})
    monkeypatch.setattr(inception, "check_weights_file", lambda path, origin: None)
    with pytest.raises(PainterError, match="cannot load Inception weights"):
        inception_scores(images(0, 4), images(1, 4), Weights(bogus, "--inception-weights"), 4, torch.device("cpu"))


def test_features_are_extracted_in_full_fp32_without_tf32():
    """cuDNN runs fp32 convolutions in TF32 on Ampere and newer GPUs unless told not to."""
    seen = []

    class Recording(StandInExtractor):
        def forward(self, x):
            seen.append(torch.backends.cudnn.allow_tf32)
            return super().forward(x)

    before = torch.backends.cudnn.allow_tf32
    features = inception.extract_features(Recording(STAND_IN, ["32"]).eval(), images(0, n=20), 8)
    assert features.shape == (20, 32) and features.dtype == torch.float32
    assert seen == [False, False, False] and torch.backends.cudnn.allow_tf32 == before


def test_fid_and_mifid_carry_a_bootstrap_standard_error_that_shrinks_with_more_images():
    d = 24
    g = torch.Generator().manual_seed(3)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    real = gaussian_features(400, torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64), rotation, 1)
    shift = torch.full((d,), 0.5, dtype=torch.float64)
    few, many = (gaussian_features(n, shift, torch.full((d,), 2.0, dtype=torch.float64), rotation, 2)
                 for n in (60, 2000))
    small, large = inception.fid_kid_mifid(real, few), inception.fid_kid_mifid(real, many)
    assert small["bootstraps"] == inception.BOOTSTRAPS and 0 < large["fid_se"] < small["fid_se"] / 2
    assert small["mifid_se"] > 0
    # The resamples' FID, from eigenvalues, is torch-fidelity's (the closed form here) on the same statistics,
    # whether the sample has more images than features (F x F problem) or fewer (N x N).
    reference = inception.feature_set(real)
    eigen = inception._Reference(reference["mu"], reference["sigma"])
    assert eigen.fid(many) == pytest.approx(large["fid"], rel=1e-6)
    assert eigen.fid(few[:d // 2]) == pytest.approx(inception.fid_kid_mifid(real, few[:d // 2])["fid"], rel=1e-6)
    assert large["fid"] == pytest.approx(0.5 ** 2 * d + (2 ** 0.5 - 1) ** 2 * d, rel=1e-6)
