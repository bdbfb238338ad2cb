"""DSH, DPSH, HashNet, CSQ and GreedyHash: each loss against a hand-computed case.

(Every registered method training through the one trainer is tests/methods/test_saeh.py's
registry smoke test.)"""

import numpy as np
import pytest
import torch

from hashsearch.config import RunConfig, with_overrides
from hashsearch.methods import create_method
from hashsearch.methods.losses import hash_centres, item_centres
from hashsearch.models.encoder import EncoderOutput

SHAPE = (1, 8, 8)
SAME = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # two items of one class
OTHER = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # two items of two classes


def method(name, bits=2, **params):
    config = with_overrides(
        RunConfig(),
        {
            "backbone.widths": (8, 16),
            "backbone.blocks": (1, 1),
            "method.name": name,
            "method.bits": 8,
            "method.params": params,
        },
    )
    model = create_method(config, 2, SHAPE)
    model.encoder.bits = bits  # the losses read bits; the hand cases use tiny codes
    return model


def losses(model, h, targets):
    x = torch.zeros(len(h), *SHAPE)
    return {k: v.item() for k, v in model.losses(x, targets, EncoderOutput(h, h)).items()}


def test_dsh_loss_hand_computed():
    h = torch.tensor([[1.0, 0.5], [-1.0, 0.5]])  # ||b1 - b2||^2 = 4, m = 2k = 4
    # similar: 1/2 * 4 per ordered pair / k = 1; regulariser: each row sums 0.5,
    # times alpha * 2 / k = 0.01
    assert losses(method("dsh"), h, SAME) == pytest.approx({"pair": 1.0, "reg": 0.005})
    # dissimilar: 1/2 max(4 - 4, 0) = 0
    assert losses(method("dsh"), h, OTHER)["pair"] == pytest.approx(0.0)
    h = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # distance 1: dissimilar costs (4 - 1) / 2 / 2
    assert losses(method("dsh"), h, OTHER)["pair"] == pytest.approx(0.75)


def test_dpsh_loss_hand_computed():
    h = torch.tensor([[1.0, -2.0], [0.5, 1.0]])
    theta = 0.5 * (h @ h.T).numpy()  # [[2.5, -0.5], [-0.5, 0.625]]
    s = np.array([[1, 0], [0, 1]])
    nll = np.log1p(np.exp(theta)) - s * theta
    quant = ((h.numpy() - np.sign(h.numpy())) ** 2).mean()  # entries .5 and 0
    got = losses(method("dpsh", eta=0.1), h, OTHER)
    assert got == pytest.approx({"likelihood": nll.mean(), "quant": 0.1 * quant})


def test_hashnet_loss_hand_computed_with_class_balance():
    h = torch.tensor([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    u = np.tanh(h.numpy())  # progress 0: beta = 1
    inner = (10 / 2) * u @ u.T
    s = (targets @ targets.T).numpy()
    nll = np.log1p(np.exp(inner)) - s * inner
    # 9 pairs: 5 similar (3 diagonal + 2), 4 dissimilar -> weights 9/5 and 9/4
    w = np.where(s > 0, 9 / 5, 9 / 4)
    assert losses(method("hashnet"), h, targets)["pair"] == pytest.approx((w * nll).mean())


def test_hashnet_hardens_tanh_as_training_progresses():
    h = torch.tensor([[0.3, -0.2], [0.1, 0.4]])
    model = method("hashnet", final_scale=100.0)
    early = losses(model, h, SAME)["pair"]
    model.progress = 1.0
    assert losses(model, h, SAME)["pair"] != pytest.approx(early)


def test_csq_centres_are_far_apart():
    hadamard = hash_centres(10, 16)
    distances = (16 - hadamard @ hadamard.T) / 2
    off = distances[~torch.eye(10, dtype=bool)]
    assert set(off.unique().tolist()) <= {8.0, 16.0}
    random = hash_centres(10, 48)
    assert random.shape == (10, 48) and set(random.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(random, hash_centres(10, 48))  # fixed, whatever the run's seed


@pytest.mark.parametrize("bits", [12, 24, 48, 100])
def test_block_centres_stay_half_the_code_apart_where_csq_random_bits_do_not(bits):
    def closest(centres):
        distances = (bits - centres @ centres.T) / 2
        return distances[~torch.eye(10, dtype=bool)].min().item()

    blocks = hash_centres(10, bits, "blocks")
    assert blocks.shape == (10, bits) and set(blocks.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(row) for row in blocks.tolist()}) == 10
    if bits in (24, 48):  # 12 = 8 + 4 and 100 = 64 + 32 + 4 end in a part too short
        assert closest(blocks) >= bits / 2  # for 10 centres, which gets random bits
    else:
        assert closest(blocks) >= (bits - 4) / 2
    assert closest(blocks) > closest(hash_centres(10, bits, "csq"))
    torch.manual_seed(bits)
    np.random.seed(bits)  # the random parts come from the centre seed, not the run's
    assert torch.equal(blocks, hash_centres(10, bits, "blocks"))


def test_csq_centres_at_48_bits_stay_the_papers_random_bits():
    """The round-8 `fast` records (docs/results.json) were trained with these."""
    drawn = np.random.default_rng(0).integers(0, 2, (10, 48)) * 2.0 - 1.0
    assert torch.equal(hash_centres(10, 48, "csq"), torch.from_numpy(drawn).float())


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_centre_layouts_agree_at_a_power_of_two(bits):
    assert torch.equal(hash_centres(10, bits, "blocks"), hash_centres(10, bits, "csq"))


def test_csq_loss_hand_computed():
    model = method("csq", bits=2, lambda_quant=0.5)
    model.centres = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    h = torch.tensor([[0.5, -1.0], [0.2, 0.3]])
    u = np.tanh(h.numpy())
    p = (u + 1) / 2
    c = np.array([[1.0, 0.0], [1.0, 1.0]])  # item 0 -> class 0, item 1 -> class 1
    bce = -(c * np.log(p) + (1 - c) * np.log(1 - p)).mean()
    quant = ((np.abs(u) - 1) ** 2).mean()
    assert losses(model, h, OTHER) == pytest.approx({"centre": bce, "quant": 0.5 * quant})
    # a multi-label item's centre is the sign of the sum of its centres: (2, 0) -> (1, 1)
    assert item_centres(model.centres, torch.tensor([[1.0, 1.0]])).tolist() == [[1.0, 1.0]]


def test_csq_gradient_survives_saturated_codes():
    """tanh(12) is exactly 1 in float32; the centre loss must still pull a wrong bit back."""
    model = method("csq", bits=2, lambda_quant=0.0)
    model.centres = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    h = torch.tensor([[-12.0, 12.0]], requires_grad=True)  # both bits wrong for class 0
    centre = model.losses(None, torch.tensor([[1.0, 0.0]]), EncoderOutput(h, h))["centre"]
    centre.backward()
    assert torch.isfinite(centre) and centre.item() == pytest.approx(24.0, rel=1e-4)
    assert h.grad[0, 0] < -0.9 and h.grad[0, 1] > 0.9  # d/dh = 2 (sigmoid(2h) - c) / 2


def test_greedyhash_classifies_the_sign_and_passes_its_gradient_unchanged():
    model = method("greedyhash", bits=8, alpha=0.0)
    h = torch.tensor([[0.3, -0.2, 0.1, 0.4, -0.5, 0.2, 0.7, -0.1]], requires_grad=True)
    out = EncoderOutput(h, h)
    logits = model.class_logits(out)
    expected = model.classifier(torch.sign(h.detach()))
    assert torch.allclose(logits, expected)
    logits[0, 0].backward()
    assert torch.allclose(h.grad[0], model.classifier.weight[0])  # identity through sign
    got = losses(method("greedyhash", bits=8, alpha=1.0), torch.tensor([[0.5] * 8]), SAME[:1])
    assert got["quant"] == pytest.approx(0.125)  # |0.5 - 1|^3
