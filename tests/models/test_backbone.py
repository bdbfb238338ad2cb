"""The backbone family and the encoder options every method shares."""

import pytest
import torch

from hashsearch import device
from hashsearch.config import BackboneConfig, RunConfig, with_overrides
from hashsearch.methods import create_method
from hashsearch.models.backbone import BACKBONES, DSHNet, PatchWhitening, create_backbone

SHAPE = (3, 16, 16)


def correlated_images(n=64, seed=0):
    """Smooth random images: neighbouring pixels and channels strongly correlated."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(base, size=16, mode="bilinear").repeat(1, 3, 1, 1)
    return x + 0.1 * torch.randn(n, 3, 16, 16, generator=g)


def test_patch_whitening_decorrelates_training_patches():
    x = correlated_images()
    layer = PatchWhitening(3, kernel=2, eps=1e-6)
    layer.fit(x)
    out = layer(x)
    assert out.shape == (64, 24, 15, 15)
    half = out[:, :12].permute(1, 0, 2, 3).reshape(12, -1)
    covariance = torch.cov(half)
    assert torch.allclose(covariance, torch.eye(12), atol=0.05)
    bias = layer.conv.bias[:, None, None]
    assert torch.allclose(out[:, 12:] - bias[12:], -(out[:, :12] - bias[:12]), atol=1e-4)
    assert not layer.conv.weight.requires_grad and layer.conv.bias.requires_grad


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_maps_images_to_pooled_features(name):
    config = BackboneConfig(name=name, widths=(8, 16, 24), blocks=(1, 0, 1))
    backbone = create_backbone(3, config)
    backbone.fit(correlated_images(8))
    assert backbone(correlated_images(4)).shape == (4, backbone.out_dim)
    assert backbone.out_dim == (DSHNet.hidden if name == "dsh" else 24)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_takes_8x8_grayscale_images(name):
    backbone = create_backbone(1, BackboneConfig(name=name, widths=(4, 8, 8), blocks=(1, 1, 1)))
    x = torch.randn(5, 1, 8, 8)
    backbone.fit(x)
    assert backbone(x).shape == (5, backbone.out_dim)


def tiny_config(**overrides):
    return with_overrides(
        RunConfig(),
        {
            "backbone.name": "whitened",
            "backbone.widths": (8, 16),
            "backbone.blocks": (1, 1),
            "method.bits": 16,
            **overrides,
        },
    )


def test_hash_batchnorm_balances_every_bit_in_training():
    model = create_method(tiny_config(**{"method.hash_batchnorm": True}), 3, SHAPE).train()
    h = model(correlated_images(32)).h
    assert h.shape == (32, 16) and model.bits == 16
    assert torch.allclose(h.mean(dim=0), torch.zeros(16), atol=1e-4)
    assert torch.allclose(h.var(dim=0, unbiased=False), torch.ones(16), atol=1e-2)


def test_bf16_encoding_returns_float32_and_nearly_the_same_codes():
    fp32 = create_method(tiny_config(), 3, SHAPE)
    bf16 = create_method(tiny_config(**{"encode.precision": "bf16"}), 3, SHAPE)
    bf16.load_state_dict(fp32.state_dict())
    x = correlated_images(64)
    fp32.eval(), bf16.eval()
    with torch.no_grad():
        a, b = fp32(x), bf16(x)
    assert b.h.dtype == b.feature.dtype == torch.float32
    assert not torch.equal(a.h, b.h)  # the pass really ran in bfloat16
    agreement = ((a.h >= 0) == (b.h >= 0)).float().mean().item()
    assert agreement > 0.95
    assert torch.allclose(a.feature, b.feature, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_encodes_in_bf16_only_where_the_device_computes_it(monkeypatch, native):
    monkeypatch.setattr(device, "native_bf16", lambda device_type: native)
    models = {
        precision: create_method(tiny_config(**{"encode.precision": precision}), 3, SHAPE).eval()
        for precision in ("fp32", "bf16", "auto")
    }
    for model in models.values():
        model.load_state_dict(models["fp32"].state_dict())
    x = correlated_images(64)
    with torch.no_grad():
        h = {precision: model(x).h for precision, model in models.items()}
    assert torch.equal(h["auto"], h["bf16" if native else "fp32"])
    assert not torch.equal(h["auto"], h["fp32" if native else "bf16"])
