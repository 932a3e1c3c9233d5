"""FID, KID and Kaggle's MiFID from torch-fidelity's Inception (pool3, 2048-d) features.

Features come from torch-fidelity's own extractor, FID and KID from its own math. MiFID is
Kaggle's formula: FID / (d_thr + 1e-14), where d is the mean over generated images of the
minimum cosine distance (1 - |cos|) to any training image, and d_thr = d if d < 0.1 else 1.

Features are extracted once per image set and cached (see FeatureCache): the reference
paintings' in the workdir, keyed by their shards and the extractor; a run's beside the run.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch_fidelity.utils as tf_utils
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ..artifacts import fingerprint, sha256_file, write_torch_atomic
from ..errors import PainterError
from ..progress import progress_bar

INCEPTION = "inception-v3-compat"
EXTRACTOR = INCEPTION  # the extractor used for scores; tests swap in a small stand-in
ENV_VAR = "PAINTER_INCEPTION_WEIGHTS"
# torch-fidelity's download name, and pytorch-fid's name for the same converted weights.
WEIGHTS_NAMES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
WEIGHTS_SIZE = 95_628_359
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_SHA256_PREFIX = WEIGHTS_SHA256[:8]
MIFID_EPSILON = 0.1
KID_MAX_SUBSET = 1000
KID_SUBSETS = 100
BOOTSTRAPS = 10  # resamples of the generated images behind FID's and MiFID's standard errors
# Precision: Inception runs in fp32 (torch-fidelity's default; TF32 off on GPUs). Under bf16 autocast its pool3
# features moved by 1.6% of their largest value (measured on this project's 2-core EPYC CPU, with
# a randomly initialised network since no weights can be had there), far beyond what a 1e-3
# relative FID budget allows; fp16 has not been measured on a GPU yet, so neither is used.
# channels_last is used: on the CPU it is 1.7x faster and changes features by < 1e-12.


@dataclass
class Weights:
    """Where the Inception weights come from; path None means torch-fidelity downloads them."""
    path: Path | None
    origin: str
    # why the download failed, once it did: a process tries once (score tries for the photos, then the run)
    download_failed: str | None = field(default=None, compare=False)

    def identity(self) -> dict:
        """What the scores depend on: the file's content (checked), or "whatever the download gives"."""
        if self.path is None:
            return {"source": "download"}
        return {"source": "file", "sha256": WEIGHTS_SHA256_PREFIX}


def check_weights_file(path: Path, origin: str) -> None:
    """Refuse anything but the converted Inception weights: right format, size and sha256."""
    where = f"Inception weights file {path} (from {origin})"
    hint = (f"expected the {WEIGHTS_SIZE:,}-byte {WEIGHTS_NAMES[1]} (pytorch-fid) or {WEIGHTS_NAMES[0]} "
            f"(torch-fidelity), whose sha256 begins {WEIGHTS_SHA256_PREFIX}")
    if not path.is_file():
        raise PainterError(f"{where} does not exist")
    if zipfile.is_zipfile(path):
        raise PainterError(f"{where} is a zip-format PyTorch file (torch.save of a newer PyTorch), "
                           f"not the original legacy-pickle weights; {hint}")
    size = path.stat().st_size
    if size != WEIGHTS_SIZE:
        raise PainterError(f"{where} is {size:,} bytes, so it is not the Inception weights "
                           f"(truncated download?); {hint}")
    digest = sha256_file(path)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        raise PainterError(f"{where} has sha256 {digest[:16]}..., not the Inception weights; {hint}")


def find_weights(explicit: str | os.PathLike | None = None) -> Weights:
    """--inception-weights, then $PAINTER_INCEPTION_WEIGHTS, then torch hub's cache, else a download."""
    for value, origin in ((explicit, "--inception-weights"), (os.environ.get(ENV_VAR), ENV_VAR)):
        if value:
            path = Path(value).expanduser().resolve()
            check_weights_file(path, origin)
            return Weights(path, origin)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in WEIGHTS_NAMES:
        if (cache / name).is_file():
            check_weights_file(cache / name, "torch hub cache")
            return Weights(cache / name, "torch hub cache")
    return Weights(None, "download")


def feature_layer(extractor: str) -> str:
    return FEATURE_EXTRACTORS_REGISTRY[extractor].get_default_feature_layer_for_metric("fid")


def load_extractor(weights: Weights | None, device: torch.device, extractor: str | None = None) -> torch.nn.Module:
    """torch-fidelity's feature extractor on `device`; downloads the weights when `weights.path` is None."""
    extractor = extractor or EXTRACTOR
    kwargs = {"verbose": False}
    if extractor == INCEPTION:
        kwargs["feature_extractor_weights_path"] = str(weights.path) if weights and weights.path else None
    model = tf_utils.create_feature_extractor(extractor, [feature_layer(extractor)], cuda=False, **kwargs)
    return model.to(device, memory_format=torch.channels_last)


def extract_features(model: torch.nn.Module, images: torch.Tensor, batch_size: int, desc: str | None = None
                     ) -> torch.Tensor:
    """uint8 N x 3 x H x W (on any device) -> float32 N x F features on the CPU, in batches."""
    device = next(model.parameters()).device
    chunks = []
    cudnn = torch.backends.cudnn
    # Full fp32: cuDNN's default runs fp32 convolutions in TF32 on Ampere and newer GPUs, which would make
    # these features differ from the CPU's and a T4's (and from the cached ones they are compared with).
    with torch.inference_mode(), cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                                             benchmark_limit=cudnn.benchmark_limit,
                                             deterministic=cudnn.deterministic, allow_tf32=False):
        for start in progress_bar(range(0, len(images), batch_size), desc=desc, unit="batch", disable=desc is None):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            chunks.append(model(batch.contiguous(memory_format=torch.channels_last))[0].float().cpu())
    if not chunks:
        raise PainterError("no images to extract features from")
    return torch.cat(chunks)


def feature_set(features: torch.Tensor) -> dict:
    """Features plus their FID statistics (float64 mean and covariance), as cached."""
    stats = fid_features_to_statistics(features.double())
    return {"features": features, "mu": torch.from_numpy(stats["mu"]), "sigma": torch.from_numpy(stats["sigma"])}


class FeatureCache:
    """Feature sets of image sets, one file per (image set, extractor, weights) key in a folder.

    `get(key, compute)` returns the cached set when the key matches, else computes the features,
    stores them with their statistics (atomically) and returns them. `keep_one` folders (a run's)
    keep only the latest file.
    """

    def __init__(self, folder: Path, keep_one: bool = False):
        self.folder, self.keep_one = Path(folder), keep_one

    def get(self, key: dict, compute) -> tuple[dict, bool]:
        """(feature set, whether it came from the cache)."""
        digest = fingerprint(key)
        path = self.folder / f"features-{digest[:16]}.pt"
        if path.is_file():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                if saved["key"] == digest:
                    return saved, True
            except Exception:  # noqa: BLE001 - an unreadable cache entry is recomputed, not fatal
                pass
        saved = {"key": digest, **feature_set(compute())}
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.keep_one:
            for old in self.folder.glob("features-*.pt"):
                old.unlink()
        write_torch_atomic(path, saved)
        return saved, False


def memorization_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Mean over generated images of the minimum cosine distance (1 - |cos|) to the real images.

    As Kaggle's metric code: rows whose features sum to 0 are left out, and the mean runs over the
    generated images (torchmetrics 1.x averages over the real ones instead).
    """
    return float(_closest_distances(real, fake).mean())


def _closest_distances(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Each generated image's minimum cosine distance to the real images (NaN for an all-zero feature row,
    which Kaggle's metric leaves out)."""
    real, fake = real.double(), fake.double()
    real_n = torch.nn.functional.normalize(real[real.sum(1) != 0], dim=1)
    fake_n = torch.nn.functional.normalize(fake, dim=1)
    closest = torch.cat([(1 - (chunk @ real_n.T).abs()).min(dim=1).values for chunk in fake_n.split(1024)])
    return closest.masked_fill(fake.sum(1) == 0, float("nan"))


class _Reference:
    """The reference statistics, for the FIDs of many samples of generated features."""

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor):
        self.mu, self.sigma = mu.double(), sigma.double()
        self._root = None

    @property
    def root(self) -> torch.Tensor:
        """S1^1/2, computed once, when a sample has more images than features."""
        if self._root is None:
            values, vectors = torch.linalg.eigh(self.sigma)
            self._root = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
        return self._root

    def fid(self, sample: torch.Tensor) -> float:
        """FID of the features `sample` (N x F) against the reference. tr((S1 S2)^1/2) is the sum of the square
        roots of the eigenvalues of S1^1/2 S2 S1^1/2 (F x F); with S2 = X'X / (N-1), X the centred sample, those
        are X S1 X' / (N-1)'s (N x N), the smaller problem when N < F (1,000 images against Inception's 2,048)."""
        sample = sample.double()
        mu = sample.mean(0)
        centred = sample - mu
        scale = 1 / (len(sample) - 1)
        if len(sample) < sample.shape[1]:
            inner = centred @ self.sigma @ centred.T * scale
        else:
            inner = self.root @ (centred.T @ centred * scale) @ self.root
        cross = torch.linalg.eigvalsh(inner).clamp_min(0).sqrt().sum()
        return float((self.mu - mu).square().sum() + self.sigma.trace() + centred.square().sum() * scale - 2 * cross)


def bootstrap_errors(real: dict, fake: dict, seed: int = 0, resamples: int = BOOTSTRAPS) -> dict:
    """Standard errors of FID and MiFID from resampling the generated images with replacement (the paintings
    are the fixed reference); each resample's FID is one symmetric eigenproblem (`_Reference.fid`)."""
    reference = _Reference(real["mu"], real["sigma"])
    features = fake["features"].double()
    distances = _closest_distances(real["features"], features)
    gen = torch.Generator().manual_seed(seed)
    fids, mifids = [], []
    for _ in range(resamples):
        picked = torch.randint(0, len(features), (len(features),), generator=gen)
        fid = reference.fid(features[picked])
        fids.append(fid)
        mifids.append(mifid(fid, float(distances[picked].nanmean())))
    return {"fid_se": float(np.std(fids, ddof=1)), "mifid_se": float(np.std(mifids, ddof=1)),
            "bootstraps": resamples}


def mifid(fid: float, distance: float) -> float:
    d_thr = distance if distance < MIFID_EPSILON else 1.0
    return fid / (d_thr + 1e-14)


def fid_kid_mifid(real: dict | torch.Tensor, fake: dict | torch.Tensor, seed: int = 0) -> dict:
    """Scores of two feature sets (from feature_set, or plain N x F feature tensors)."""
    real, fake = (s if isinstance(s, dict) else feature_set(s) for s in (real, fake))
    stats = [{"mu": s["mu"].numpy(), "sigma": s["sigma"].numpy()} for s in (real, fake)]
    fid = float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])
    real_f, fake_f = real["features"].double(), fake["features"].double()
    subset = min(len(real_f), len(fake_f), KID_MAX_SUBSET)
    kid = kid_features_to_metric(real_f, fake_f, kid_subsets=KID_SUBSETS, kid_subset_size=subset,
                                 rng_seed=seed, verbose=False)
    distance = memorization_distance(real_f, fake_f)
    return {"fid": fid, **bootstrap_errors(real, fake, seed), "kid": float(kid[KEY_METRIC_KID_MEAN]),
            "kid_std": float(kid[KEY_METRIC_KID_STD]),
            "kid_subset_size": subset, "kid_subsets": KID_SUBSETS,
            "memorization_distance": distance, "mifid": mifid(fid, distance),
            "n_real": len(real_f), "n_fake": len(fake_f)}


class _WeightsUnavailable(Exception):
    pass


def _not_computed(download_error: str) -> dict:
    return {"computed": False,
            "reason": f"Inception weights could not be downloaded ({download_error}); pass --inception-weights PATH "
                      f"or set {ENV_VAR} to a local {WEIGHTS_NAMES[1]} or {WEIGHTS_NAMES[0]}"}


def inception_scores(real: torch.Tensor, fake: torch.Tensor, weights: Weights, batch_size: int,
                     device: torch.device, *, seed: int = 0, real_cache: FeatureCache | None = None,
                     real_key: dict | None = None, fake_cache: FeatureCache | None = None,
                     fake_key: dict | None = None, extractor: str | None = None) -> dict:
    """FID, KID, MiFID of uint8 image sets; {"computed": False, "reason": ...} when the weights cannot be had.

    With caches and keys, features already extracted from the same images, extractor and weights
    are reused, and the extractor is not even loaded when both sets are cached.
    """
    extractor = extractor or EXTRACTOR
    if weights.download_failed is not None:
        return _not_computed(weights.download_failed)
    model = None

    def features_of(images: torch.Tensor, desc: str) -> torch.Tensor:
        nonlocal model
        if model is None:
            try:
                model = load_extractor(weights, device, extractor)
            except Exception as exc:  # noqa: BLE001 - a failed download means "not computed", with why
                if weights.path is not None:
                    raise PainterError(f"cannot load Inception weights from {weights.path}: {exc}") from exc
                raise _WeightsUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return extract_features(model, images, batch_size, desc)

    def get(cache, key, images, desc) -> tuple[dict, bool]:
        if cache is None:
            return feature_set(features_of(images, desc)), False
        return cache.get({**key, "extractor": extractor, "weights": weights.identity()},
                         lambda: features_of(images, desc))

    try:
        real_set, real_hit = get(real_cache, real_key, real, "score: reference features")
        fake_set, fake_hit = get(fake_cache, fake_key, fake, "score: generated features")
    except _WeightsUnavailable as exc:
        weights.download_failed = str(exc)
        return _not_computed(weights.download_failed)
    result = fid_kid_mifid(real_set, fake_set, seed)
    if not np.isfinite(result["fid"]):
        raise PainterError("FID is not finite: the generated images may be constant or broken")
    return {"computed": True, "weights": weights.origin, "extractor": extractor,
            "feature_dim": int(real_set["features"].shape[1]), **result,
            "features": {"reference": "cached" if real_hit else "extracted",
                         "generated": "cached" if fake_hit else "extracted"}}
