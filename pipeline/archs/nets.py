"""Networks and losses of two unpaired image-translation GANs: CycleGAN and CUT/FastCUT.

CycleGAN: Zhu et al. 2017 (ResNet generator, 70x70 PatchGAN, least-squares GAN loss, image history pool).
CUT/FastCUT: Park et al. 2020 (the same generator, by default with blur-pool anti-aliasing, plus a patch
sampler with per-layer MLPs and the PatchNCE contrastive loss).

Layer layouts follow the reference implementations so that parameter counts and CUT's `nce_layers`
indices (0, 4, 8, 12, 16) mean the same thing here. Every normalisation is InstanceNorm2d without affine
parameters or running statistics, and every conv before one keeps its bias, as the references do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) weights and zero biases for conv, transposed conv and linear layers; use via `net.apply`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def init_xavier(module: nn.Module, gain: float = 0.02) -> None:
    """Xavier-normal weights with a small gain and zero biases (CUT's default initialisation)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_normal_(module.weight, gain=gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def _binomial_kernel(taps: list[float], channels: int) -> torch.Tensor:
    """A separable, sum-1 binomial filter, one copy per channel for a depthwise (grouped) convolution."""
    row = torch.tensor(taps, dtype=torch.float32)
    kernel = torch.outer(row, row)
    kernel = kernel / kernel.sum()
    return kernel.expand(channels, 1, len(taps), len(taps)).contiguous()


class BlurDownsample(nn.Module):
    """Anti-aliased 2x downsampling (Zhang 2019): low-pass with a 3x3 binomial filter, then keep every
    second pixel, so that high frequencies do not alias into the coarser map. H x W -> ceil(H/2) x ceil(W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.pad = nn.ReflectionPad2d(1)
        self.register_buffer("kernel", _binomial_kernel([1.0, 2.0, 1.0], channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.kernel.to(x.dtype), stride=2, groups=self.channels)


class BlurUpsample(nn.Module):
    """Anti-aliased 2x upsampling: zero-insertion then a fixed 4x4 binomial low-pass (a transposed conv).

    The filter sums to 4 (= stride^2) because only a quarter of the upsampled pixels carry input values;
    each output pixel then receives weights summing to 1, so flat regions stay flat. The input is padded by
    one replicated pixel and the excess border of the transposed conv cropped so that H x W -> 2H x 2W.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.pad = nn.ReplicationPad2d(1)
        self.register_buffer("kernel", 4.0 * _binomial_kernel([1.0, 3.0, 3.0, 1.0], channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (H + 2) rows -> 2(H + 1) - 2*2 + 4 = 2H + 2 rows; dropping the first and the last gives 2H.
        y = F.conv_transpose2d(self.pad(x), self.kernel.to(x.dtype), stride=2, padding=2, groups=self.channels)
        return y[:, :, 1:-1, 1:-1]


class ResidualBlock(nn.Module):
    """x + two reflection-padded 3x3 convs; the identity path lets nine blocks train like a shallow net."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN/CUT ResNet generator: 7x7 stem, two 2x downsamplings, `blocks` residual blocks at 4x
    width, two 2x upsamplings, 7x7 head with tanh. Works on any H, W divisible by 4.

    antialias=False is CycleGAN's layout (strided convs, transposed convs); antialias=True is CUT's
    default (stride-1 convs followed by BlurDownsample, BlurUpsample followed by a conv).
    All layers sit in one `self.layers` Sequential so that CUT's feature-layer indices address them.
    """

    def __init__(self, channels: int = 64, blocks: int = 9, antialias: bool = False):
        super().__init__()
        c = channels
        # Top-level ReLUs are not in-place: an in-place one would overwrite the norm output that encode()
        # may already have handed out as a feature.
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, c, 7), _norm(c), nn.ReLU()]
        for c_in, c_out in ((c, 2 * c), (2 * c, 4 * c)):
            if antialias:
                layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), _norm(c_out), nn.ReLU(), BlurDownsample(c_out)]
            else:
                layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), _norm(c_out), nn.ReLU()]
        layers += [ResidualBlock(4 * c) for _ in range(blocks)]
        for c_in, c_out in ((4 * c, 2 * c), (2 * c, c)):
            if antialias:
                layers += [BlurUpsample(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1), _norm(c_out), nn.ReLU()]
            else:
                layers += [nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1), _norm(c_out), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, 3, 7), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        self.apply(init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def _check_layers(self, layers: tuple[int, ...] | list[int]) -> None:
        if len(layers) == 0:
            raise ValueError("layers must name at least one layer index")
        bad = [i for i in layers if not 0 <= i < len(self.layers)]
        if bad:
            raise ValueError(f"layer indices {bad} out of range: the generator has layers 0..{len(self.layers) - 1}")

    def encode(self, x: torch.Tensor, layers: tuple[int, ...] | list[int]) -> list[torch.Tensor]:
        """Outputs of the listed layers (in the order listed), running the net only as far as it must."""
        self._check_layers(layers)
        wanted, outputs = set(layers), {}
        for index, layer in enumerate(self.layers[:max(layers) + 1]):
            x = layer(x)
            if index in wanted:
                outputs[index] = x
        return [outputs[i] for i in layers]

    def feature_channels(self, layers: tuple[int, ...] | list[int]) -> list[int]:
        """Channel count of each listed layer's output, read from the module structure without a forward
        pass, so that PatchSampler's MLPs can be built before the first batch (needed for exact resume)."""
        self._check_layers(layers)
        channels, width = [], 3
        for layer in self.layers:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                width = layer.out_channels
            channels.append(width)  # every other layer keeps its input's channel count
        return [channels[i] for i in layers]


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator: one raw realness score (no sigmoid) per overlapping input patch,
    70x70 px with layers=3; a 256 px input gives a 30x30 score map. With antialias (CUT's option) each
    stride-2 conv becomes a stride-1 conv whose activations are blur-pooled."""

    def __init__(self, channels: int = 64, layers: int = 3, antialias: bool = False):
        super().__init__()

        def down(c_in: int, c_out: int, norm: bool) -> list[nn.Module]:
            block: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 1 if antialias else 2, 1)]
            block += [_norm(c_out)] if norm else []
            block += [nn.LeakyReLU(0.2, True)]
            return block + ([BlurDownsample(c_out)] if antialias else [])

        widths = [channels * min(2 ** n, 8) for n in range(layers + 1)]
        net = down(3, widths[0], norm=False)
        for n in range(1, layers):
            net += down(widths[n - 1], widths[n], norm=True)
        net += [nn.Conv2d(widths[layers - 1], widths[layers], 4, 1, 1), _norm(widths[layers]), nn.LeakyReLU(0.2, True),
                nn.Conv2d(widths[layers], 1, 4, 1, 1)]
        self.layers = nn.Sequential(*net)
        self.apply(init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PatchSampler(nn.Module):
    """CUT's patch sampler ("mlp_sample" netF): picks feature vectors at random spatial positions of each
    encoder layer, projects them with a per-layer two-layer MLP and L2-normalises them for PatchNCE.

    The MLPs are built eagerly from `in_channels` (see ResnetGenerator.feature_channels) rather than on the
    first batch as the reference does, so optimiser state and checkpoints exist from step 0.
    """

    def __init__(self, in_channels: list[int], features: int = 256):
        super().__init__()
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, features), nn.ReLU(True), nn.Linear(features, features)) for c in in_channels)
        self.apply(init_normal)

    def forward(self, feats: list[torch.Tensor], num_patches: int, patch_ids: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Sample `num_patches` positions per layer (the same positions for every image of the batch) and
        return ((B*P) x features rows per layer, the position ids used per layer).

        Pass the ids returned for the source image's features when sampling the translated image's, so that
        row i of both refers to the same location. Random ids are drawn on `generator`'s device (on the
        features' device when no generator is given) and then moved to the features' device, so either a
        CPU generator or one on the features' device works.
        """
        if len(feats) != len(self.mlps):
            raise ValueError(f"expected {len(self.mlps)} feature maps, got {len(feats)}")
        if patch_ids is not None and len(patch_ids) != len(feats):
            raise ValueError(f"expected {len(feats)} patch id tensors, got {len(patch_ids)}")
        if num_patches <= 0:
            raise ValueError(f"num_patches must be positive, got {num_patches}")
        samples, ids_used = [], []
        for index, (feat, mlp) in enumerate(zip(feats, self.mlps)):
            b, c, h, w = feat.shape
            rows = feat.flatten(2).transpose(1, 2)  # B x (H*W) x C
            if patch_ids is None:
                device = generator.device if generator is not None else feat.device
                ids = torch.randperm(h * w, generator=generator, device=device)[:min(num_patches, h * w)]
                ids = ids.to(feat.device)
            else:
                ids = patch_ids[index].to(feat.device)
            # normalised in fp32: in fp16 the sum of squares of 256 features overflows to inf
            x = mlp(rows[:, ids, :].flatten(0, 1)).float()  # (B*P) x features, image-major
            samples.append(x / (x.norm(dim=1, keepdim=True) + 1e-7))
            ids_used.append(ids)
        return samples, ids_used


def patch_nce_loss(feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int,
                   temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE (CUT): each translated-image patch q_i must pick its own source patch k_i among the other
    patches of the same image. Rows are (B*P) x D, image-major, L2-normalised. Returns the per-patch
    cross-entropy, shape (B*P,), computed in float32. k is detached: it is the fixed target of the query.
    """
    if feat_q.shape != feat_k.shape or feat_q.dim() != 2:
        raise ValueError(f"feat_q and feat_k must be matching (B*P) x D matrices, got {tuple(feat_q.shape)} "
                         f"and {tuple(feat_k.shape)}")
    if feat_q.shape[0] % batch_size:
        raise ValueError(f"{feat_q.shape[0]} rows do not split into {batch_size} images")
    q, k = feat_q.float(), feat_k.detach().float()
    positive = (q * k).sum(dim=1, keepdim=True)  # (B*P) x 1
    dim = q.shape[1]
    q_img, k_img = q.view(batch_size, -1, dim), k.view(batch_size, -1, dim)
    patches = q_img.shape[1]
    negatives = torch.bmm(q_img, k_img.transpose(1, 2))  # B x P x P; the diagonal holds the positives
    eye = torch.eye(patches, dtype=torch.bool, device=q.device)
    negatives = negatives.masked_fill(eye, -10.0)  # a logit that exp() makes negligible, as in CUT
    logits = torch.cat([positive, negatives.view(-1, patches)], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target, reduction="none")


class ImagePool:
    """History of generated images (Shrivastava et al. 2017), as CycleGAN uses to update its discriminators
    on a mix of current and past fakes, which damps oscillation.

    Until `size` images are stored, each new image is stored and returned; afterwards, with probability 1/2
    a uniformly chosen stored image is returned and replaced by the new one, else the new one is returned.
    All draws go through torch with the caller's generator, and state_dict() captures the contents, so a
    resumed run reproduces the same sequence exactly.
    """

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.size == 0:
            return images
        device = generator.device if generator is not None else torch.device("cpu")
        returned = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                returned.append(image)
            elif torch.rand((), generator=generator, device=device).item() < 0.5:
                slot = int(torch.randint(self.size, (), generator=generator, device=device).item())
                returned.append(self.images[slot])
                self.images[slot] = image.clone()
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self) -> dict:
        stacked = torch.stack(self.images) if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        """`state` as saved (a checkpoint is loaded onto the CPU); the images go to `device`, where
        the fakes they are stacked with live."""
        images = state["images"].to(device)
        if state["size"] != self.size:
            raise ValueError(f"pool state has size {state['size']}, this pool has size {self.size}")
        if images.numel() > 0 and images.shape[0] > self.size:
            raise ValueError(f"pool state holds {images.shape[0]} images, more than its size {self.size}")
        self.images = [image.clone() for image in images] if images.numel() > 0 else []
