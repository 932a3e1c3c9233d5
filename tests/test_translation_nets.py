"""Tests for the CycleGAN / CUT networks and losses (pipeline/archs/nets.py). Small widths keep them fast."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline.archs.nets import (BlurDownsample, BlurUpsample, ImagePool, PatchDiscriminator, PatchSampler,
                                 ResidualBlock, ResnetGenerator, init_normal, patch_nce_loss)

from .conftest import torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: with other work on the machine, intra-op threads cost more than they save."""
    with torch_threads(1):
        yield


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _image(n: int = 1, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------- blur pooling

def test_blur_upsample_doubles_size_and_keeps_constants():
    up = BlurUpsample(2)
    for h, w in ((8, 8), (5, 7), (1, 3)):
        assert up(torch.zeros(1, 2, h, w)).shape == (1, 2, 2 * h, 2 * w)
    out = up(torch.full((1, 2, 8, 8), 0.7))
    assert torch.allclose(out[:, :, 2:-2, 2:-2], torch.tensor(0.7), atol=1e-6)


def test_blur_downsample_halves_size_and_keeps_constants():
    down = BlurDownsample(2)
    assert down(torch.zeros(1, 2, 16, 12)).shape == (1, 2, 8, 6)
    out = down(torch.full((1, 2, 16, 16), -0.3))
    assert torch.allclose(out[:, :, 1:-1, 1:-1], torch.tensor(-0.3), atol=1e-6)


def test_blur_filters_are_buffers_not_parameters():
    # the upsampling filter sums to stride^2 = 4: only one output pixel in four receives an input value
    for module, total in ((BlurUpsample(4), 4.0), (BlurDownsample(4), 1.0)):
        assert _count(module) == 0
        assert module.kernel.shape[0] == 4
        assert torch.allclose(module.kernel.sum(dim=(1, 2, 3)), torch.full((4,), total))
        assert "kernel" not in module.state_dict()


# ---------------------------------------------------------------- generator

@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("size", [64, 128])
def test_generator_keeps_shape_and_range(antialias, size):
    torch.manual_seed(0)
    net = ResnetGenerator(channels=8, blocks=2, antialias=antialias)
    x = _image(1, size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_generator_handles_non_square_input():
    net = ResnetGenerator(channels=4, blocks=1, antialias=True)
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 32, 48)).shape == (1, 3, 32, 48)


def test_cut_nce_layer_indices():
    c = 8
    net = ResnetGenerator(channels=c, blocks=9, antialias=True)
    layers = (0, 4, 8, 12, 16)
    kinds = [type(net.layers[i]) for i in layers]
    assert kinds == [nn.ReflectionPad2d, nn.Conv2d, nn.Conv2d, ResidualBlock, ResidualBlock]
    assert net.layers[4].stride == (1, 1) and isinstance(net.layers[7], BlurDownsample)
    with torch.no_grad():
        feats = net.encode(_image(1, 32), layers)
    assert [f.shape[1] for f in feats] == [3, 2 * c, 4 * c, 4 * c, 4 * c]
    assert net.feature_channels(layers) == [3, 2 * c, 4 * c, 4 * c, 4 * c]
    assert [f.shape[-1] for f in feats] == [38, 32, 16, 8, 8]  # padded input, full, 1/2 (pre-pool), 1/4


@pytest.mark.parametrize("antialias", [False, True])
def test_encode_matches_forward_intermediates(antialias):
    torch.manual_seed(1)
    net = ResnetGenerator(channels=8, blocks=2, antialias=antialias)
    captured: dict[int, torch.Tensor] = {}
    for index, layer in enumerate(net.layers):
        layer.register_forward_hook(lambda _m, _i, out, index=index: captured.__setitem__(index, out))
    x = _image(2, 32)
    with torch.no_grad():
        net(x)
        full = dict(captured)
        layers = (len(net.layers) - 1, 0, 3, 9)  # any order, including the last layer
        feats = net.encode(x, layers)
    for index, feat in zip(layers, feats):
        assert torch.equal(feat, full[index])
    assert net.feature_channels(layers) == [f.shape[1] for f in feats]


def test_encode_features_survive_the_rest_of_the_pass():
    net = ResnetGenerator(channels=4, blocks=1)
    assert isinstance(net.layers[2], nn.InstanceNorm2d)
    with torch.no_grad():
        norm_out, _ = net.encode(_image(1, 16), (2, 3))
    assert norm_out.min() < 0  # a later ReLU has not clipped it in place


def test_encode_stops_early():
    net = ResnetGenerator(channels=4, blocks=2)
    ran: list[int] = []
    for index, layer in enumerate(net.layers):
        layer.register_forward_hook(lambda *_a, index=index: ran.append(index))
    with torch.no_grad():
        net.encode(_image(1, 16), (2, 5))
    assert ran == list(range(6))


def test_feature_channels_every_layer_agrees_with_encode():
    net = ResnetGenerator(channels=4, blocks=2, antialias=True)
    everything = tuple(range(len(net.layers)))
    with torch.no_grad():
        feats = net.encode(_image(1, 16), everything)
    assert net.feature_channels(everything) == [f.shape[1] for f in feats]


def test_encode_rejects_bad_indices():
    net = ResnetGenerator(channels=4, blocks=1)
    for bad in ((0, len(net.layers)), (-1,), ()):
        with pytest.raises(ValueError, match="layer"):
            net.encode(_image(1, 16), bad)
        with pytest.raises(ValueError, match="layer"):
            net.feature_channels(bad)


def test_default_parameter_counts():
    assert _count(ResnetGenerator()) == 11_378_179
    assert _count(ResnetGenerator(antialias=True)) == 11_378_179  # blur filters are fixed buffers
    assert _count(PatchDiscriminator()) == 2_764_737


def test_initialisation_is_normal_002_with_zero_bias():
    torch.manual_seed(0)
    net = ResnetGenerator()
    weights = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(weights.std().item() - 0.02) < 1e-3 and abs(weights.mean().item()) < 1e-4
    assert all(torch.all(m.bias == 0) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    linear = nn.Linear(2, 3)
    init_normal(linear, std=0.5)
    assert torch.all(linear.bias == 0)


# ---------------------------------------------------------------- discriminator

@pytest.mark.parametrize("size,expected", [(256, 30), (128, 14)])
def test_patch_discriminator_output_shape(size, expected):
    net = PatchDiscriminator(channels=4)
    with torch.no_grad():
        assert net(torch.zeros(2, 3, size, size)).shape == (2, 1, expected, expected)


def test_patch_discriminator_antialias_shape():
    net = PatchDiscriminator(channels=4, antialias=True)
    assert sum(isinstance(m, BlurDownsample) for m in net.layers) == 3
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 256, 256))
    assert out.shape[:2] == (1, 1) and out.shape[-1] > 20


def test_patch_discriminator_receptive_field_is_70():
    torch.manual_seed(0)
    net = PatchDiscriminator(channels=4)
    # Instance norm couples every position through its statistics; the receptive field is a property of
    # the conv stack, so measure it with the norms removed.
    for index, layer in enumerate(net.layers):
        if isinstance(layer, nn.InstanceNorm2d):
            net.layers[index] = nn.Identity()
    x = torch.randn(1, 3, 160, 160, requires_grad=True)
    out = net(x)
    centre = out.shape[-1] // 2
    out[0, 0, centre, centre].backward()
    touched = x.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = touched.any(dim=1).nonzero().flatten(), touched.any(dim=0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70
    assert rows.min() > 0 and rows.max() < 159  # the window lies inside the image, not clipped


# ---------------------------------------------------------------- patch sampler

def test_patch_sampler_shapes_normalisation_and_reuse():
    torch.manual_seed(0)
    sampler = PatchSampler([3, 8], features=16)
    feats = [torch.randn(2, 3, 10, 10), torch.randn(2, 8, 4, 4)]
    out, ids = sampler(feats, num_patches=32, generator=torch.Generator().manual_seed(0))
    assert [o.shape for o in out] == [(64, 16), (32, 16)]  # the 4x4 map has only 16 positions
    assert [len(i) for i in ids] == [32, 16]
    assert len(set(ids[0].tolist())) == 32
    for o in out:  # freshly initialised MLPs give tiny rows, so the 1e-7 in the divisor shows at 1e-4
        assert torch.allclose(o.norm(dim=1), torch.ones(o.shape[0]), atol=1e-3)
    again, ids_again = sampler(feats, num_patches=32, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(out, again))
    assert all(torch.equal(a, b) for a, b in zip(ids, ids_again))


def test_patch_sampler_same_positions_for_every_image():
    sampler = PatchSampler([4], features=8)
    single = torch.randn(1, 4, 6, 6)
    out, _ = sampler([single.repeat(3, 1, 1, 1)], num_patches=5, generator=torch.Generator().manual_seed(3))
    rows = out[0].view(3, 5, 8)
    assert torch.equal(rows[0], rows[1]) and torch.equal(rows[0], rows[2])


def test_patch_sampler_is_reproducible_and_builds_eagerly():
    sampler = PatchSampler([3, 16, 32], features=256)
    assert _count(sampler) == sum(c * 256 + 256 + 256 * 256 + 256 for c in (3, 16, 32))
    feats = [torch.randn(1, 3, 8, 8)]
    small = PatchSampler([3], features=4)
    _, a = small(feats, 6, generator=torch.Generator().manual_seed(7))
    _, b = small(feats, 6, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0])
    with pytest.raises(ValueError):
        small(feats + feats, 6)


# ---------------------------------------------------------------- PatchNCE

def _unit_rows(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


def test_patch_nce_identical_orthogonal_beats_random():
    q = torch.eye(8)  # 2 images x 4 patches, orthogonal unit rows
    matched = patch_nce_loss(q, q.clone(), batch_size=2)
    unrelated = patch_nce_loss(_unit_rows(8, 8, 0), _unit_rows(8, 8, 1), batch_size=2)
    assert matched.shape == (8,)
    assert matched.mean() < unrelated.mean()


def test_patch_nce_hand_computed():
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    k = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    t = 0.07
    loss = patch_nce_loss(q, k, batch_size=1, temperature=t)
    # patch 0: positive q0.k0 = 0.8, negative q0.k1 = 0.0 (the self pair is masked to -10)
    # patch 1: positive q1.k1 = 0.8, negative q1.k0 = 0.48 + 0.48 = 0.96
    # per patch the logits are [positive, masked self pair, negative] / t, and the target is index 0
    expected = [-pos / t + math.log(math.exp(pos / t) + math.exp(-10.0 / t) + math.exp(neg / t))
                for pos, neg in ((0.8, 0.0), (0.8, 0.96))]
    assert torch.allclose(loss, torch.tensor(expected), atol=1e-4)


def test_patch_nce_breaking_correspondence_raises_loss():
    k = _unit_rows(16, 32, 0)
    q = k + 0.1 * _unit_rows(16, 32, 1)
    q = q / q.norm(dim=1, keepdim=True)
    shuffled = q[torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    assert patch_nce_loss(q, k, 2).mean() < patch_nce_loss(shuffled, k, 2).mean()


def test_patch_nce_gradient_to_q_only_and_float32():
    q = _unit_rows(6, 4, 0).half().requires_grad_()
    k = _unit_rows(6, 4, 1).half().requires_grad_()
    loss = patch_nce_loss(q, k, batch_size=2)
    assert loss.dtype == torch.float32 and loss.shape == (6,)
    loss.mean().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_patch_nce_rejects_bad_shapes():
    with pytest.raises(ValueError):
        patch_nce_loss(torch.zeros(6, 4), torch.zeros(6, 3), 2)
    with pytest.raises(ValueError):
        patch_nce_loss(torch.zeros(6, 4), torch.zeros(6, 4), 4)


# ---------------------------------------------------------------- LSGAN loss

def _batches(count: int, n: int = 2) -> list[torch.Tensor]:
    # every image is a distinct constant, so images can be identified by value
    return [torch.arange(i * n, (i + 1) * n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()
            for i in range(count)]


def test_image_pool_size_zero_passes_through():
    pool = ImagePool(0)
    x = torch.randn(3, 3, 4, 4)
    assert pool.query(x) is x


def test_image_pool_fill_then_history():
    pool, gen = ImagePool(4), torch.Generator().manual_seed(0)
    batches = _batches(20)
    assert torch.equal(pool.query(batches[0], gen), batches[0])
    assert torch.equal(pool.query(batches[1], gen), batches[1])
    seen = set(range(4))
    old_returned = 0
    for batch in batches[2:]:
        out = pool.query(batch, gen)
        assert out.shape == batch.shape
        new = {int(v) for v in batch[:, 0, 0, 0]}
        for value in out[:, 0, 0, 0].tolist():
            assert int(value) in seen | new  # only the new images or earlier history
            old_returned += int(value) not in new
        seen |= new
    assert old_returned > 0  # the history is actually used


def test_image_pool_detaches_and_copies():
    pool = ImagePool(2)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = pool.query(x * 1)
    assert not out.requires_grad
    stored = pool.state_dict()["images"]
    x.data.zero_()
    assert stored.abs().sum() > 0


def test_image_pool_state_dict_round_trip():
    batches = _batches(12)
    pool, gen = ImagePool(5), torch.Generator().manual_seed(1)
    for batch in batches[:4]:
        pool.query(batch, gen)
    state, gen_state = pool.state_dict(), gen.get_state()
    expected = [pool.query(batch, gen) for batch in batches[4:]]

    resumed, gen2 = ImagePool(5), torch.Generator()
    resumed.load_state_dict(state, torch.device("cpu"))
    gen2.set_state(gen_state)
    got = [resumed.query(batch, gen2) for batch in batches[4:]]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    on_device = ImagePool(5)  # a checkpoint is loaded onto the CPU; the pool's images go where the fakes are
    on_device.load_state_dict(state, torch.device("meta"))
    assert len(on_device.images) == 5 and all(image.device.type == "meta" for image in on_device.images)


def test_image_pool_empty_state_round_trip():
    pool = ImagePool(3)
    state = pool.state_dict()
    assert state["images"].numel() == 0
    other = ImagePool(3)
    other.load_state_dict(state, torch.device("cpu"))
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(other.query(x), x)
    with pytest.raises(ValueError):
        ImagePool(4).load_state_dict(state, torch.device("cpu"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_random_draws_on_cuda_with_cpu_or_cuda_generators():
    feats = [torch.randn(2, 4, 8, 8, device="cuda")]
    sampler = PatchSampler([4], features=8).cuda()
    for gen in (torch.Generator().manual_seed(0), torch.Generator(device="cuda").manual_seed(0), None):
        out, ids = sampler(feats, 10, generator=gen)
        assert out[0].device.type == "cuda" and ids[0].device.type == "cuda" and out[0].shape == (20, 8)
    pool = ImagePool(2)
    for gen in (torch.Generator(device="cuda").manual_seed(0), torch.Generator().manual_seed(0)):
        for _ in range(3):
            assert pool.query(torch.randn(2, 3, 4, 4, device="cuda"), gen).device.type == "cuda"
    assert pool.state_dict()["images"].device.type == "cuda"
