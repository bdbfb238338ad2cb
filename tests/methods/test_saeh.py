"""SAEH as a whole: the loss is eq. 4, lambda2 = 0 removes the decoder, registry smoke test."""

import pytest
import torch
from pydantic import ValidationError

from hashsearch.config import RunConfig, with_overrides
from hashsearch.errors import HashsearchError
from hashsearch.imageops import shifted
from hashsearch.methods import create_method, list_methods
from hashsearch.methods.losses import (
    central_similarity,
    hash_centres,
    pairwise_similar_distance,
    quantization_error,
    relax,
    same_label,
    soft_cross_entropy,
)
from hashsearch.methods.saeh import SAEHParams
from hashsearch.training.trainer import Trainer, TrainingData

SHAPE = (1, 8, 8)


def tiny_config(**overrides):
    return with_overrides(
        RunConfig(),
        {"backbone.widths": (8, 16), "backbone.blocks": (1, 1), "method.bits": 16, **overrides},
    )


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8)
    targets = torch.eye(3)[torch.arange(n) % 3]
    return images, targets


def test_losses_are_the_weighted_terms_of_eq4():
    config = tiny_config(
        **{"method.params": {"lambda_sim": 0.5, "lambda_rec": 0.25, "label_smoothing": 0.0}}
    )
    model = create_method(config, 3, SHAPE).eval()
    images, targets = batch()
    x = model.normalize(images)
    out = model(x)
    terms = model.losses(x, targets, out)
    b = relax(out.h, "sign_ste")
    assert terms["cls"].item() == pytest.approx(
        soft_cross_entropy(model.classifier(b), targets).item()
    )
    assert terms["sim"].item() == pytest.approx(
        0.5 * pairwise_similar_distance(b, same_label(targets)).item()
    )
    assert terms["rec"].item() == pytest.approx(0.25 * (model.decoder(b) - x).pow(2).mean().item())


def test_lambda_rec_zero_turns_the_decoder_off():
    model = create_method(tiny_config(**{"method.params": {"lambda_rec": 0.0}}), 3, SHAPE)
    assert model.decoder is None
    images, targets = batch()
    x = model.normalize(images)
    assert set(model.losses(x, targets, model(x))) == {"cls", "sim"}
    assert not any("decoder" in name for name, _ in model.named_parameters())


def test_encoder_exposes_code_and_intermediate_feature():
    model = create_method(tiny_config(), 3, SHAPE).eval()
    out = model(model.normalize(batch()[0]))
    assert out.h.shape == (6, 16)
    assert out.feature.shape == (6, model.encoder.feature_dim) == (6, 16)


def test_normalized_images_have_zero_mean_unit_variance():
    model = create_method(tiny_config(), 3, SHAPE)
    x = model.normalize(batch()[0])
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.zeros(6), atol=1e-5)
    assert torch.allclose(x.std(dim=(1, 2, 3)), torch.ones(6), atol=1e-4)


def test_unknown_method_parameter_is_a_clear_error():
    with pytest.raises(HashsearchError, match="lambda_typo"):
        create_method(tiny_config(**{"method.params": {"lambda_typo": 1.0}}), 3, SHAPE)


@pytest.mark.parametrize("name", list_methods())
def test_every_registered_method_trains_a_few_steps(name):
    """The registry smoke test: each method's loss decreases under the one trainer, and its
    codes separate three easy classes (chance mAP is about 0.37)."""
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(48) % 3
    images = labels[:, None, None, None] * 80 + torch.randint(0, 40, (48, *SHAPE), generator=g)
    images = images.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    config = tiny_config(
        **{
            "method.name": name,
            "train.epochs": 20,
            "train.batch_size": 16,
            "train.lr": 0.05,
            "train.augment": {"translate": 0, "flip": False},
        }
    )
    model = create_method(config, 3, SHAPE)
    data = TrainingData(
        images,
        labels.numpy(),
        images[:12],
        labels[:12].numpy(),
        images,
        labels.numpy(),
        num_classes=3,
    )
    result = Trainer(config.train, seed=0).fit(model, data, progress=False)
    first, last = result.history[0], result.history[-1]
    total = lambda r: sum(v for k, v in r.items() if k.startswith("loss_"))  # noqa: E731
    assert total(last) < total(first)
    assert last["val_map_all"] > 0.55


def test_flip_average_is_the_mean_of_both_orientations_in_eval_only():
    plain = create_method(tiny_config(), 3, SHAPE)
    flipped = create_method(tiny_config(**{"encode.flip_average": True}), 3, SHAPE)
    flipped.load_state_dict(plain.state_dict())
    x = plain.normalize(batch()[0])
    plain.eval(), flipped.eval()
    with torch.no_grad():
        expected = (plain(x).h + plain(x.flip(3)).h) / 2
        assert torch.allclose(flipped(x).h, expected, atol=1e-5)
        assert torch.allclose(
            flipped(x).feature, (plain(x).feature + plain(x.flip(3)).feature) / 2, atol=1e-5
        )
    flipped.train()
    plain.train()
    assert torch.allclose(flipped(x).h, plain(x).h, atol=1e-5)


def test_query_shifts_average_shifted_views_of_queries_only_in_eval():
    """Queries: 1/2 the image's feature + 1/4 each one-pixel diagonal shift's, h from that
    mean; items (and training) keep the single view, flip averaging nested inside."""
    changes = {"encode.flip_average": True}
    plain = create_method(tiny_config(**changes), 3, SHAPE)
    shifts = {"encode.query_shifts": [[1, 1], [-1, -1]]}
    translated = create_method(tiny_config(**changes, **shifts), 3, SHAPE)
    translated.load_state_dict(plain.state_dict())
    x = plain.normalize(batch()[0])
    plain.eval(), translated.eval()
    with torch.no_grad():
        views = [x, shifted(x, 1, 1), shifted(x, -1, -1)]
        f0, f1, f2 = (plain(v).feature for v in views)
        expected = 0.5 * f0 + 0.25 * f1 + 0.25 * f2
        query = translated(x, as_queries=True)
        assert torch.allclose(query.feature, expected, atol=1e-5)
        assert torch.allclose(query.h, plain.encoder.hash_layer(expected), atol=1e-5)
        assert not torch.allclose(query.feature, f0, atol=1e-3)  # the views do differ
        assert torch.allclose(translated(x).feature, f0, atol=1e-6)  # items: one view
        assert torch.allclose(plain(x, as_queries=True).feature, f0, atol=1e-6)  # option off
    translated.train(), plain.train()
    assert torch.allclose(translated(x, as_queries=True).h, plain(x).h, atol=1e-5)


def test_a_query_shift_as_large_as_the_image_is_a_clear_error():
    far = tiny_config(**{"encode.query_shifts": [[0, 1], [4, 0]]})
    with pytest.raises(HashsearchError, match=r"query_shifts \[4, 0\] moves a 8x4 image"):
        create_method(far, 3, (1, 4, 8))


def test_shifted_moves_the_content_and_reflects_the_edge():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    moved = shifted(x, 1, -2)
    assert moved.shape == x.shape
    assert torch.equal(moved[..., 1:, :-2], x[..., :-1, 2:])
    assert torch.equal(moved[..., 0, :-2], x[..., 1, 2:])  # row -1 reflects row 1
    assert torch.equal(moved[..., 1:, -2:], x[..., :-1, [3, 2]])  # cols 5, 6 reflect 3, 2
    assert torch.equal(shifted(x, 0, 0), x)


def test_lambda_quant_adds_the_weighted_quantisation_term():
    model = create_method(tiny_config(**{"method.params": {"lambda_quant": 0.5}}), 3, SHAPE)
    images, targets = batch()
    x = model.normalize(images)
    out = model(x)
    terms = model.losses(x, targets, out)
    assert terms["quant"].item() == pytest.approx(0.5 * quantization_error(out.h).item())
    plain = create_method(tiny_config(), 3, SHAPE)
    assert "quant" not in plain.losses(x, targets, plain(x))


def test_lambda_centre_adds_csq_central_similarity_towards_class_centres():
    model = create_method(tiny_config(**{"method.params": {"lambda_centre": 0.5}}), 3, SHAPE)
    assert torch.equal(model.state_dict()["centres"], hash_centres(3, 16))  # saved with them
    images, targets = batch()
    x = model.normalize(images)
    out = model(x)
    terms = model.losses(x, targets, out)
    expected = central_similarity(out.h, hash_centres(3, 16), targets)
    assert terms["centre"].item() == pytest.approx(0.5 * expected.item())
    blocks = {"lambda_centre": 0.5, "centre_layout": "blocks"}
    spread = create_method(tiny_config(**{"method.params": blocks, "method.bits": 48}), 3, SHAPE)
    assert torch.equal(spread.state_dict()["centres"], hash_centres(3, 48, "blocks"))
    # a code at its class centre scores lower than the same code at another class's
    at_centre = central_similarity(10 * model.centres[:1], model.centres, targets[:1])
    elsewhere = central_similarity(10 * model.centres[1:2], model.centres, targets[:1])
    assert at_centre < elsewhere
    plain = create_method(tiny_config(), 3, SHAPE)
    assert "centre" not in plain.losses(x, targets, plain(x))
    assert "centres" not in plain.state_dict()  # old checkpoints load unchanged


def test_lambda_feature_cls_adds_a_classifier_on_the_backbone_feature():
    params = {"lambda_feature_cls": 0.5, "label_smoothing": 0.1}
    model = create_method(tiny_config(**{"method.params": params}), 3, SHAPE)
    images, targets = batch()
    x = model.normalize(images)
    out = model(x)
    terms = model.losses(x, targets, out)
    logits = model.feature_classifier(out.feature)
    expected = soft_cross_entropy(logits, targets, 0.1)
    assert terms["feature_cls"].item() == pytest.approx(0.5 * expected.item())
    # it trains the backbone, whatever the code's relaxation does, and not the hash layer
    terms["feature_cls"].backward()
    backbone = model.encoder.backbone.parameters()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone)
    assert model.encoder.hash_layer.weight.grad is None  # it does not train the code
    plain = create_method(tiny_config(), 3, SHAPE)
    assert "feature_cls" not in plain.losses(x, targets, plain(x))
    assert not any(k.startswith("feature_classifier") for k in plain.state_dict())


def test_feature_label_smoothing_smooths_the_feature_classifier_alone():
    params = {"lambda_feature_cls": 1.0, "label_smoothing": 0.0, "feature_label_smoothing": 0.3}
    model = create_method(tiny_config(**{"method.params": params}), 3, SHAPE)
    images, targets = batch()
    x = model.normalize(images)
    out = model(x)
    terms = model.losses(x, targets, out)
    features = soft_cross_entropy(model.feature_classifier(out.feature), targets, 0.3)
    code = soft_cross_entropy(model.class_logits(out), targets, 0.0)
    assert terms["feature_cls"].item() == pytest.approx(features.item())
    assert terms["cls"].item() == pytest.approx(code.item())
    assert features.item() != pytest.approx(
        soft_cross_entropy(model.feature_classifier(out.feature), targets, 0.0).item()
    )
    with pytest.raises(ValidationError, match="feature_label_smoothing"):
        SAEHParams(feature_label_smoothing=1.0)
