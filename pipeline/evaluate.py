"""Evaluation during training: how close the EMA generator is to the paintings, every train.eval_every steps.

Each evaluation takes a copy of the sampling (EMA) generator readied for generation as generator.pt
would be if training stopped here (`finalize`: the noise family's exact batch-norm statistics), makes
one image from each of a fixed set of inputs (noise vectors, or photos for a translation
architecture) and compares them with as many training paintings at the training resolution:
- SWD always (weight-free);
- FID and KID as well when a local Inception weights file exists (never a download mid-training);
  the images are upsampled to 256 px as for the final score.
The best value (FID when computed, else SWD; lower is better) marks the checkpoint kept as best.pt.
Nothing here touches the training RNG streams, so a resumed run evaluates exactly as an uninterrupted one.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from .devices import generator_batch
from .images import to_uint8, to_uint8_256
from .metrics.swd import sliced_wasserstein_distance


class Evaluator:
    def __init__(self, real: torch.Tensor, inputs, seed: int, weights=None, batch_size: int = 64,
                 finalize: Callable[[torch.nn.Module], None] | None = None):
        """real: the training paintings (uint8, on the training device), of which as many as there are
        inputs are compared; inputs: the fixed generator inputs (archs' NoiseInputs or PhotoInputs);
        weights: a local Inception weights file (metrics.inception.Weights) for FID/KID, or None for SWD
        only; finalize: readies the generator copy for eval-mode generation."""
        n = min(len(inputs), len(real))
        pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n]
        self.real = real[pick.to(real.device)]
        self.inputs, self.n = inputs, n
        self.seed, self.batch_size = seed, batch_size
        self.finalize = finalize
        self.weights = weights
        self.extractor = self.real_features = None
        self.metric = "fid" if weights is not None else "swd"

    def _inception(self, fake: torch.Tensor) -> dict:
        from .metrics import inception

        if self.extractor is None:
            device = self.real.device
            self.extractor = inception.load_extractor(self.weights, device)
            real_256 = to_uint8_256(self.real.float().div(127.5).sub(1))
            self.real_features = inception.extract_features(self.extractor, real_256, self.batch_size)
        fake_256 = to_uint8_256(fake.float().div(127.5).sub(1))
        scores = inception.fid_kid_mifid(self.real_features,
                                         inception.extract_features(self.extractor, fake_256, self.batch_size))
        return {"fid": round(scores["fid"], 4), "kid": round(scores["kid"], 6)}

    @torch.no_grad()
    def evaluate(self, generator: torch.nn.Module) -> tuple[dict, torch.nn.Module]:
        """({"swd": ..., ["fid", "kid"]}, the evaluated generator copy, ready to save as best.pt)."""
        model = copy.deepcopy(generator)
        if self.finalize is not None:
            self.finalize(model)
        model.eval()
        device = next(model.parameters()).device
        step = generator_batch(self.batch_size, device)
        fake = torch.cat([to_uint8(model(self.inputs.batch(slice(start, min(start + step, self.n)), device)))
                          for start in range(0, self.n, step)])
        result = {"swd": round(sliced_wasserstein_distance(self.real, fake, seed=self.seed)["swd"], 4)}
        if self.weights is not None:
            result.update(self._inception(fake))
        return result, model
