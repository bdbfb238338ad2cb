"""SGD with Muon for the convolution filters (`train.optimizer: muon`)."""

import json
import math

import pytest
import torch

from hashsearch import api, device
from hashsearch.config import with_overrides
from hashsearch.methods import create_method
from hashsearch.presets import preset_config
from hashsearch.training.optimizers import SGDWithMuon, orthogonalised, scale_free_filters
from hashsearch.training.trainer import Trainer


def tiny(**overrides):
    return preset_config(
        "digits",
        {
            "train.epochs": 2,
            "method.bits": 16,
            "backbone.widths": (8, 16),
            "backbone.blocks": (1, 1),
            **overrides,
        },
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(8, 36), (36, 8), (16, 16)])
def test_orthogonalised_keeps_singular_vectors_and_moves_the_values_near_one(shape, dtype):
    g = torch.Generator().manual_seed(0)
    matrix = torch.randn(shape, generator=g) * torch.logspace(-1, 1, shape[1])
    result = orthogonalised(matrix, dtype=dtype)
    assert result.shape == matrix.shape and result.dtype == torch.float32
    u, values, vh = torch.linalg.svd(matrix, full_matrices=False)
    core = u.T @ result @ vh.T  # diagonal: the same singular vectors, new values
    rounding = 1e-3 if dtype == torch.float32 else 5e-2  # bf16 keeps 8 bits of mantissa
    assert torch.allclose(core, torch.diag(torch.diagonal(core)), atol=rounding)
    moved, kept = torch.diagonal(core), values / matrix.norm() > 1 / 500
    assert kept.sum() > min(shape) // 2  # not vacuous: most values are above 1/500
    assert torch.all(moved[kept] > 0.6) and torch.all(moved[kept] < 1.3)
    assert torch.all(moved >= -rounding)


def test_bf16_orthogonalisation_is_float32s_within_its_rounding():
    g = torch.Generator().manual_seed(2)
    matrix = torch.randn(64, 576, generator=g)
    exact = orthogonalised(matrix)
    rounded = orthogonalised(matrix, dtype=torch.bfloat16)
    assert 0 < float((rounded - exact).norm() / exact.norm()) < 0.05


def test_muon_groups_hold_filter_norms_and_other_groups_step_as_sgd():
    g = torch.Generator().manual_seed(1)
    conv = torch.nn.Conv2d(4, 6, 3, bias=False)
    head = torch.nn.Linear(5, 3)
    reference = torch.nn.Linear(5, 3)
    reference.load_state_dict(head.state_dict())
    optimizer = SGDWithMuon(
        [{"params": list(head.parameters())}, {"params": [conv.weight], "muon_momentum": 0.6}],
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-3,
    )
    plain = torch.optim.SGD(
        reference.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3
    )
    before = conv.weight.detach().clone()
    for _ in range(3):
        for p, q in zip(head.parameters(), reference.parameters(), strict=True):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        conv.weight.grad = torch.randn(conv.weight.shape, generator=g)
        optimizer.step()
        plain.step()
    for p, q in zip(head.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(p, q)
    assert not torch.allclose(conv.weight, before)
    # rescaled to norm sqrt(6) before each step, then moved by an orthogonal update of
    # Frobenius norm about sqrt(6) * lr
    assert float(conv.weight.detach().norm()) == pytest.approx(math.sqrt(6), rel=0.1)
    assert optimizer.step(lambda: 2.5) == 2.5  # a closure's loss comes back, as from SGD


def test_trainer_gives_muon_the_backbones_bias_free_convolutions_only():
    config = tiny(**{"train.optimizer": "muon", "train.muon_lr": 0.05})
    method = create_method(config, num_classes=10, image_shape=(1, 8, 8))
    optimizer, _ = Trainer(config.train, 0).build_optimizer(method, total_steps=10)
    muon = [group for group in optimizer.param_groups if "muon_momentum" in group]
    assert len(muon) == 1 and muon[0]["max_lr"] == 0.05
    filters = {id(p) for p in muon[0]["params"]}
    assert filters == {id(p) for p in scale_free_filters(method.encoder.backbone)}
    assert filters and all(p.ndim == 4 for p in muon[0]["params"])
    others = {id(p) for group in optimizer.param_groups[:-1] for p in group["params"]}
    assert optimizer.param_groups[-1] is muon[0] and not filters & others
    sgd = with_overrides(config, {"train.optimizer": "sgd"})
    optimizer, _ = Trainer(sgd.train, 0).build_optimizer(method, total_steps=10)
    assert all("muon_momentum" not in group for group in optimizer.param_groups)


@pytest.mark.parametrize(
    ("precision", "native", "dtype"),
    [
        ("fp32", True, torch.float32),
        ("bf16", False, torch.bfloat16),
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float32),
    ],
)
def test_muons_orthogonalisation_runs_at_train_muon_precision(
    monkeypatch, precision, native, dtype
):
    monkeypatch.setattr(device, "native_bf16", lambda device_type: native)
    config = tiny(**{"train.optimizer": "muon", "train.muon_precision": precision})
    method = create_method(config, num_classes=10, image_shape=(1, 8, 8))
    optimizer, _ = Trainer(config.train, 0).build_optimizer(method, total_steps=10)
    assert optimizer.param_groups[-1]["muon_dtype"] == dtype


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_muon_run_trains_and_scores(tmp_path, precision):
    config = tiny(
        **{"train.optimizer": "muon", "train.muon_lr": 0.05, "train.muon_precision": precision}
    )
    api.train(config, tmp_path / "run", progress=False)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert history[-1]["val_map_all"] > 0.3  # 10 classes: chance is about 0.1
