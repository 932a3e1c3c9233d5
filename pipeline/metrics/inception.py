"""FID, KID and Kaggle's MiFID from torch-fidelity's Inception (pool3, 2048-d) features.

Features come from torch-fidelity's own extractor and FID/KID from its own math. MiFID is
Kaggle's formula: FID / (d_thr + 1e-14), where d is the mean over generated images of the
minimum cosine distance (1 - |cos|) to any training image, and d_thr = d if d < 0.1 else 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch_fidelity.utils as tf_utils
from torch.utils.data import Dataset
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ..errors import PainterError

EXTRACTOR = "inception-v3-compat"
ENV_VAR = "PAINTER_INCEPTION_WEIGHTS"
# torch-fidelity's download name, and pytorch-fid's name for the same converted weights.
WEIGHTS_NAMES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
MIFID_EPSILON = 0.1
KID_MAX_SUBSET = 1000
KID_SUBSETS = 100


@dataclass
class Weights:
    """Where the Inception weights come from; path None means torch-fidelity downloads them."""
    path: Path | None
    origin: str

    def identity(self) -> dict:
        if self.path is None:
            return {"origin": self.origin}
        stat = self.path.stat()
        return {"origin": self.origin, "name": self.path.name, "size": stat.st_size}


def find_weights(explicit: str | os.PathLike | None = None) -> Weights:
    for value, origin in ((explicit, "--inception-weights"), (os.environ.get(ENV_VAR), ENV_VAR)):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise PainterError(f"Inception weights file {path} (from {origin}) does not exist")
            return Weights(path.resolve(), origin)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in WEIGHTS_NAMES:
        if (cache / name).is_file():
            return Weights(cache / name, "torch hub cache")
    return Weights(None, "download")


class _ImageTensorDataset(Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def extract_features(images: torch.Tensor, weights: Weights | None, batch_size: int, device: torch.device,
                     extractor: str = EXTRACTOR) -> torch.Tensor:
    """uint8 N x 3 x H x W -> float64 N x F features through torch-fidelity's extractor."""
    layer = FEATURE_EXTRACTORS_REGISTRY[extractor].get_default_feature_layer_for_metric("fid")
    kwargs = {"verbose": False}
    if extractor == EXTRACTOR:
        kwargs["feature_extractor_weights_path"] = str(weights.path) if weights and weights.path else None
    model = tf_utils.create_feature_extractor(extractor, [layer], cuda=device.type == "cuda", **kwargs)
    features = tf_utils.get_featuresdict_from_dataset(_ImageTensorDataset(images), model, batch_size,
                                                      cuda=device.type == "cuda", save_cpu_ram=True, verbose=False)
    return features[layer].double()


def memorization_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Mean over generated images of the minimum cosine distance (1 - |cos|) to the real images."""
    real_n, fake_n = F.normalize(real.double(), dim=1), F.normalize(fake.double(), dim=1)
    closest = [(1 - (chunk @ real_n.T).abs()).min(dim=1).values for chunk in fake_n.split(1024)]
    return float(torch.cat(closest).mean())


def mifid(fid: float, distance: float) -> float:
    d_thr = distance if distance < MIFID_EPSILON else 1.0
    return fid / (d_thr + 1e-14)


def fid_kid_mifid(real_features: torch.Tensor, fake_features: torch.Tensor, seed: int = 0) -> dict:
    fid = fid_statistics_to_metric(fid_features_to_statistics(real_features.cpu()),
                                   fid_features_to_statistics(fake_features.cpu()), verbose=False)[KEY_METRIC_FID]
    subset = min(len(real_features), len(fake_features), KID_MAX_SUBSET)
    kid = kid_features_to_metric(real_features.cpu(), fake_features.cpu(), kid_subsets=KID_SUBSETS,
                                 kid_subset_size=subset, rng_seed=seed, verbose=False)
    distance = memorization_distance(real_features, fake_features)
    return {"fid": fid, "kid": kid[KEY_METRIC_KID_MEAN], "kid_std": kid[KEY_METRIC_KID_STD],
            "kid_subset_size": subset, "memorization_distance": distance, "mifid": mifid(fid, distance),
            "n_real": len(real_features), "n_fake": len(fake_features)}


def inception_scores(real: torch.Tensor, fake: torch.Tensor, weights: Weights, batch_size: int,
                     device: torch.device, seed: int = 0, extractor: str = EXTRACTOR) -> dict:
    """FID, KID, MiFID; when the weights cannot be had, {"computed": False, "reason": ...} instead."""
    try:
        real_features = extract_features(real, weights, batch_size, device, extractor)
    except Exception as exc:  # noqa: BLE001 - any download failure means "not computed", with its reason
        if weights.path is not None:
            raise PainterError(f"cannot load Inception weights from {weights.path}: {exc}") from exc
        return {"computed": False,
                "reason": f"Inception weights could not be downloaded ({type(exc).__name__}: {exc}); "
                          f"pass --inception-weights PATH or set {ENV_VAR} to a local "
                          f"{WEIGHTS_NAMES[0]}"}
    fake_features = extract_features(fake, weights, batch_size, device, extractor)
    result = fid_kid_mifid(real_features, fake_features, seed)
    if not np.isfinite(result["fid"]):
        raise PainterError("FID is not finite: the generated images may be constant or broken")
    return {"computed": True, "weights": weights.origin, **result}
