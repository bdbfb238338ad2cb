"""The trainer: deterministic from the seed, selects on validation, batches and augments right."""

import json
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hashsearch import api
from hashsearch.config import AugmentConfig, with_overrides
from hashsearch.methods import create_method
from hashsearch.presets import preset_config
from hashsearch.training.augment import augment, corrupted_copies, random_translate, scaled_down
from hashsearch.training.trainer import Trainer, _state_copy, batches, code_inconsistency


def tiny(seed=0, epochs=2):
    return preset_config(
        "digits",
        {
            "seed": seed,
            "train.epochs": epochs,
            "train.eval_every": 1,
            "method.bits": 16,
            "backbone.widths": (8, 16),
            "backbone.blocks": (1, 1),
        },
    )


def test_same_seed_same_weights_and_bit_identical_codes_different_seed_different(tmp_path):
    """Determinism: every random step (splits, init, shuffles, augmentation, corruption)
    comes from the seed, so two CPU runs of one config give the very same codes."""
    config = with_overrides(tiny(seed=1), {"train.augment.corrupt": 0.5})
    runs = [api.train(config, tmp_path / name, progress=False) for name in ("a", "b")]
    other = api.train(with_overrides(config, {"seed": 2}), tmp_path / "c", progress=False)
    a, b, c = (run.model.state_dict() for run in (*runs, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    first, second = (api.encode_split(run, "database")[0] for run in runs)
    assert np.array_equal(first.codes, second.codes)
    assert np.array_equal(first.features, second.features)


@pytest.mark.parametrize("ema", [0.0, 0.75])
def test_saved_weights_are_the_best_validation_epoch(tmp_path, ema):
    """The saved weights (the weight average with train.ema) score what validation
    scored at the best epoch."""
    config = with_overrides(tiny(epochs=4), {"train.ema": ema})
    run = api.train(config, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    scores = [r["val_map_all"] for r in metrics["history"]]
    assert metrics["best_epoch"] == 1 + int(np.argmax(scores))
    dataset, splits = api.load_data(config)
    data = api.training_data(dataset, splits, config.train.val_retrieval_size, config.seed)
    reloaded = api.load_run(tmp_path / "run")
    again = Trainer(config.train, config.seed).validate(reloaded.model, data)
    assert again["val_map_all"] == pytest.approx(max(scores))
    assert run.meta["splits"]["query"] > 0  # the query split exists but selection never saw it


def test_batches_drop_the_last_partial_batch_and_cover_distinct_items():
    g = torch.Generator().manual_seed(0)
    got = list(batches(10, 4, g))
    assert [len(b) for b in got] == [4, 4]
    assert len(torch.cat(got).unique()) == 8
    assert [len(b) for b in batches(3, 8, g)] == [3]  # a data set smaller than a batch


def test_random_translate_is_reflect_pad_then_crop():
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (16, 3, 6, 6), dtype=torch.uint8)
    shifted = random_translate(images, 2, g)
    padded = torch.nn.functional.pad(images.float(), (2, 2, 2, 2), mode="reflect")
    for i in range(16):
        crops = [padded[i, :, y : y + 6, x : x + 6] for y in range(5) for x in range(5)]
        assert any(torch.equal(shifted[i].float(), c) for c in crops)
    assert shifted.dtype == torch.uint8


def test_flip_only_when_configured():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 1 * 2 * 3, dtype=torch.uint8).view(2, 1, 2, 3).repeat(8, 1, 1, 1)
    unflipped = augment(images, AugmentConfig(translate=0, flip=False), g).inputs
    assert torch.equal(unflipped, images)
    flipped = augment(images, AugmentConfig(translate=0, flip=True), g).inputs
    mirrored = [torch.equal(f, x.flip(2)) for f, x in zip(flipped, images, strict=True)]
    assert any(mirrored) and not all(mirrored)


def test_alternating_flip_shows_each_image_both_ways_in_any_two_epochs(tmp_path, monkeypatch):
    """`flip: alternating`: the set each epoch trains on is the last one mirrored, the
    first epoch's a random half-mirrored copy of the stored images; the batch
    augmentation then draws no flips of its own."""
    shown = []
    real = Trainer._epoch

    def spy(self, method, images, *args):
        shown.append(images.clone())
        return real(self, method, images, *args)

    monkeypatch.setattr(Trainer, "_epoch", spy)
    config = with_overrides(
        tiny(epochs=3), {"train.augment": {"translate": 0, "flip": "alternating"}}
    )
    api.train(config, tmp_path / "run", progress=False)
    dataset, splits = api.load_data(config)
    data = api.training_data(dataset, splits, config.train.val_retrieval_size, config.seed)
    stored = torch.from_numpy(data.train_images).permute(0, 3, 1, 2)
    mirrored = [
        torch.equal(a, b.flip(2)) and not torch.equal(a, b)
        for a, b in zip(shown[0], stored, strict=True)
    ]
    assert 0.3 < np.mean(mirrored) < 0.7
    assert torch.equal(shown[1], shown[0].flip(3)) and torch.equal(shown[2], shown[0])
    alternating = AugmentConfig(translate=0, flip="alternating")
    assert torch.equal(augment(stored, alternating, torch.Generator()).inputs, stored)


def test_a_non_finite_loss_stops_training_with_a_clear_error(tmp_path, monkeypatch):
    from hashsearch.errors import TrainingDiverged
    from hashsearch.methods.saeh import SAEH

    real = SAEH.losses

    def exploding(self, x, targets, out):
        terms = real(self, x, targets, out)
        return {**terms, "cls": terms["cls"] * float("inf")}

    monkeypatch.setattr(SAEH, "losses", exploding)
    with pytest.raises(TrainingDiverged, match="loss cls is not finite at step 1; lower train.lr"):
        api.train(tiny(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists()  # nothing half-written


def test_optimizer_groups_scale_batchnorm_rates_and_keep_their_decay_per_step():
    from hashsearch.config import with_overrides
    from hashsearch.methods import create_method

    config = with_overrides(
        tiny(),
        {
            "train.norm_lr_scale": 64.0,
            "train.freeze_norm_scale": True,
            "train.momentum_schedule": "constant",
            "train.momentum": 0.8,
            "train.lr": 0.1,
            "train.weight_decay": 0.01,
        },
    )
    method = create_method(config, num_classes=10, image_shape=(1, 8, 8))
    optimizer, schedule = Trainer(config.train, 0).build_optimizer(method, total_steps=10)
    norms = [m for m in method.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad for m in norms)  # scales frozen at 1
    other, norm = optimizer.param_groups
    assert {id(p) for p in norm["params"]} == {id(m.bias) for m in norms}
    assert norm["weight_decay"] * norm["initial_lr"] == pytest.approx(
        other["weight_decay"] * other["initial_lr"]
    )
    assert norm["max_lr"] == pytest.approx(64 * other["max_lr"]) and other["max_lr"] == 0.1
    for _ in range(5):
        for p in method.parameters():
            p.grad = torch.ones_like(p) if p.requires_grad else None
        optimizer.step()
        schedule.step()
    assert all(group["momentum"] == 0.8 for group in optimizer.param_groups)
    assert all(torch.all(m.weight == 1) for m in norms)  # still 1 after steps


def test_one_cycle_momentum_schedule_is_the_default():
    from hashsearch.methods import create_method

    config = tiny()
    method = create_method(config, num_classes=10, image_shape=(1, 8, 8))
    optimizer, schedule = Trainer(config.train, 0).build_optimizer(method, total_steps=10)
    assert len(optimizer.param_groups) == 2  # BatchNorm parameters in their own group
    first = optimizer.param_groups[0]["momentum"]
    for _ in range(2):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["momentum"] < first  # cycles with the learning rate


def test_corruption_augmentation_hits_its_share_of_images_deterministically():
    images = (torch.rand(400, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 255).to(
        torch.uint8
    )
    config = AugmentConfig(translate=0, flip=False, corrupt=0.5)
    first = augment(images, config, torch.Generator().manual_seed(1)).inputs
    again = augment(images, config, torch.Generator().manual_seed(1)).inputs
    assert first.dtype == torch.uint8 and torch.equal(first, again)
    changed = (first != images).flatten(1).any(1).float().mean()
    assert 0.4 < changed < 0.6
    off = AugmentConfig(translate=0, flip=False)
    assert torch.equal(augment(images, off, torch.Generator().manual_seed(1)).inputs, images)
    everything = augment(images, off.model_copy(update={"corrupt": 1.0}), torch.Generator()).inputs
    assert (everything != images).flatten(1).any(1).float().mean() > 0.95


def spied_step(
    augmenting: dict, progress: float = 0.0, method: Any = None
) -> tuple[dict, list, torch.Tensor, Any]:
    """One `train_step` of the tiny SAEH (or `method`, built from the same config) on 16
    gray 8x8 images with `augmenting` as `train.augment`. Returns the loss terms,
    (x, targets, out) of each call of the method's loss, the images and the method."""
    config = with_overrides(tiny(), {"train.augment": augmenting})
    method = method or create_method(config, num_classes=10, image_shape=(1, 8, 8))
    method.progress = progress
    calls, losses = [], method.losses

    def spying(x, targets, out):
        calls.append((x.detach().float(), targets, out))
        return losses(x, targets, out)

    method.losses = spying
    trainer = Trainer(config.train, 0)
    optimizer, _ = trainer.build_optimizer(method, total_steps=10)
    images = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    targets = torch.eye(10)[torch.arange(16) % 10]
    terms = trainer.train_step(method, images, targets, torch.Generator(), optimizer)
    return terms, calls, images, method


def test_corruption_stops_at_corrupt_until_and_the_consistency_copies_with_it():
    """`corrupt_until`: corrupted images in the first part of training, clean after."""
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    early = AugmentConfig(translate=0, flip=False, corrupt=1.0, corrupt_until=0.7)
    assert not torch.equal(augment(images, early, torch.Generator(), progress=0.69).inputs, images)
    assert torch.equal(augment(images, early, torch.Generator(), progress=0.7).inputs, images)
    copying = {"translate": 0, "flip": False, "corrupt": 0.5, "consistency": 1.0}
    for progress, copied in ((0.4, True), (0.5, False)):
        terms, *_ = spied_step({**copying, "corrupt_until": 0.5}, progress)
        assert ("consistency" in terms) == copied


@pytest.mark.parametrize("denoise", [False, True])
def test_a_denoising_decoder_reconstructs_the_images_before_corruption(denoise):
    augmenting = {"translate": 0, "flip": False, "corrupt": 1.0, "denoise": denoise}
    terms, calls, images, method = spied_step(augmenting)
    assert "rec" in terms
    assert torch.equal(calls[0][0], method.normalize(images).float()) == denoise
    batch = augment(images, AugmentConfig(**augmenting), torch.Generator())
    assert torch.equal(batch.originals, images) and not torch.equal(batch.inputs, images)


@pytest.mark.parametrize(("progress", "side"), [(0.0, 4), (0.59, 4), (0.6, 8)])
def test_progressive_resizing_feeds_small_inputs_early_and_reconstructs_full_size(progress, side):
    """`low_res`: the encoder sees 4x4 inputs for the first 60% of the steps, 8x8 after;
    the decoder's target stays the full 8x8 image throughout."""
    seen = []
    augmenting = {"translate": 0, "flip": False, "low_res": 4, "low_res_until": 0.6}
    config = with_overrides(tiny(), {"train.augment": augmenting})
    method = create_method(config, num_classes=10, image_shape=(1, 8, 8))
    method.encoder.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    terms, calls, images, _ = spied_step(augmenting, progress, method)
    assert seen == [torch.Size([16, 1, side, side])]
    assert "rec" in terms and all(np.isfinite(list(terms.values())))
    assert calls[0][0].shape == images.shape


def test_scaled_down_keeps_a_flat_image_flat_and_averages_detail():
    flat = torch.full((2, 3, 32, 32), 0.7)
    assert torch.allclose(scaled_down(flat, 24), torch.full((2, 3, 24, 24), 0.7))
    stripes = torch.arange(32.0).remainder(2).expand(1, 1, 32, 32)  # 0/1 columns
    halved = scaled_down(stripes, 16)  # antialiased: each pixel mixes both kinds of column
    inner = halved[..., 1:-1]  # the edge columns' filters are cut short
    assert halved.shape == (1, 1, 16, 16) and torch.allclose(inner, torch.full_like(inner, 0.5))
    assert F.interpolate(stripes, size=(16, 16), mode="nearest").max() == 0  # aliased away
    assert scaled_down(stripes, 32) is stripes and scaled_down(stripes, 48) is stripes
    wide = torch.rand(2, 3, 16, 40)  # the shorter side goes to `size`, the aspect stays
    assert scaled_down(wide, 8).shape == (2, 3, 8, 20)


def test_data_parallel_processes_shuffle_alike_and_augment_apart(monkeypatch):
    from hashsearch.errors import HashsearchError
    from hashsearch.training import trainer

    shuffling = torch.Generator().manual_seed(0)
    assert trainer.data_parallel_generator(shuffling, 0, 64) is shuffling  # one process
    draws = []
    for rank in (0, 1):
        monkeypatch.setattr(trainer, "world", lambda rank=rank: (rank, 2))
        augmenting = trainer.data_parallel_generator(shuffling, 0, 64)
        assert augmenting is not shuffling
        draws.append(torch.rand(4, generator=augmenting))
    assert not torch.equal(draws[0], draws[1])
    for bad in (65, 2):
        with pytest.raises(HashsearchError, match="equal shares of at least 2"):
            trainer.data_parallel_generator(shuffling, 0, bad)


def test_consistency_adds_corrupted_copies_the_method_loss_never_sees():
    """With a consistency weight the method's loss gets exactly the clean batch, and the
    corrupted copies (a `corrupt` share) are trained only towards their originals' codes."""
    augmenting = {"translate": 0, "flip": False, "corrupt": 0.25, "consistency": 2.0}
    terms, calls, images, method = spied_step(augmenting)
    assert [tuple(map(len, (x, targets, out.h, out.feature))) for x, targets, out in calls] == [
        (16, 16, 16, 16)
    ]
    assert torch.equal(calls[0][0], method.normalize(images).float())  # the clean batch, whole
    assert set(terms) == {"cls", "sim", "rec", "consistency"}
    assert 0 < terms["consistency"] <= 2.0 * 2  # weight x (1 - cosine), cosine >= -1
    rows, copies = corrupted_copies(images, AugmentConfig(**augmenting), torch.Generator())
    assert len(rows) == len(copies) == 4 and len(set(rows.tolist())) == 4
    assert copies.dtype == torch.uint8 and not torch.equal(copies, images[rows])


def test_code_inconsistency_is_scale_free_and_zero_only_for_equal_directions():
    h = torch.randn(8, 48)
    assert float(code_inconsistency(h, h)) == pytest.approx(0, abs=1e-6)
    assert float(code_inconsistency(3 * h, h)) == pytest.approx(0, abs=1e-6)
    assert float(code_inconsistency(-h, h)) == pytest.approx(2)
    assert 0 < float(code_inconsistency(h + torch.randn(8, 48), h)) < 2


def test_consistency_without_corrupted_copies_is_refused():
    with pytest.raises(ValueError, match="consistency > 0 needs corrupt > 0"):
        AugmentConfig(consistency=1.0)
    augmenting = AugmentConfig(translate=0, flip=False, corrupt=0.5, consistency=1.0)
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    unchanged = augment(images, augmenting, torch.Generator()).inputs
    assert torch.equal(unchanged, images)  # no replacing


def test_weight_average_is_the_warmed_up_moving_average_of_every_step(tmp_path, monkeypatch):
    """With train.ema the run keeps the moving average of every step's weights and
    BatchNorm statistics: the first step's copied, then lerped at 1 - min(decay,
    (1 + n) / (10 + n)) after n steps; integer buffers follow the model."""
    snapshots: list[dict[str, torch.Tensor]] = []
    step = Trainer.train_step

    def snapshotting(self, method, *args):
        terms = step(self, method, *args)
        snapshots.append(_state_copy(method))
        return terms

    monkeypatch.setattr(Trainer, "train_step", snapshotting)
    config = with_overrides(tiny(epochs=1), {"train.ema": 0.75, "train.max_steps": 3})
    run = api.train(config, tmp_path / "run", progress=False)
    assert len(snapshots) == 3
    kept, last = run.model.state_dict(), snapshots[-1]
    floats = [k for k, v in kept.items() if v.is_floating_point()]
    expected = {k: snapshots[0][k] for k in floats}
    for n, snapshot in enumerate(snapshots[1:], start=1):
        rate = 1 - min(0.75, (1 + n) / (10 + n))  # 0.818, then 0.75
        expected = {k: (1 - rate) * expected[k] + rate * snapshot[k] for k in floats}
    assert all(torch.allclose(kept[k].cpu(), expected[k].cpu(), atol=1e-6) for k in floats)
    assert not all(torch.equal(kept[k].cpu(), last[k].cpu()) for k in floats)
    counts = [k for k in kept if k.endswith("num_batches_tracked")]
    assert counts and all(torch.equal(kept[k].cpu(), last[k].cpu()) for k in counts)


@pytest.mark.parametrize(
    "backbone",
    [
        {"backbone.name": "resnet"},
        {"backbone.name": "whitened"},
        {"backbone.name": "dsh", "backbone.widths": (8, 8, 16), "backbone.blocks": (0, 0, 0)},
    ],
    ids=["resnet", "whitened", "dsh"],
)
def test_the_stem_trains_for_stem_epochs_then_stays_fixed(tmp_path, monkeypatch, backbone):
    """train.stem_epochs: the stem's parameters move in the first epochs only, after which
    they get no gradient at all (so backpropagation stops before the stem), while the
    rest of the network keeps training; the trained model's stem is trainable again."""
    moved: list[tuple[bool, bool]] = []  # per epoch: (stem moved, the rest moved)
    epoch = Trainer._epoch

    def watching(self, method, *args):
        stem = method.encoder.backbone.stem_parameters()
        ids = {id(p) for p in stem}
        rest = [p for p in method.parameters() if id(p) not in ids]
        before = [p.detach().clone() for p in (*stem, *rest)]
        record = epoch(self, method, *args)
        changed = [
            not torch.equal(b, p.detach()) for b, p in zip(before, (*stem, *rest), strict=True)
        ]
        moved.append((any(changed[: len(stem)]), any(changed[len(stem) :])))
        if len(moved) > 1:
            assert all(p.grad is None for p in stem)
        return record

    monkeypatch.setattr(Trainer, "_epoch", watching)
    config = with_overrides(tiny(epochs=3), {**backbone, "train.stem_epochs": 1})
    run = api.train(config, tmp_path / "run", progress=False)
    assert moved == [(True, True), (False, True), (False, True)]
    assert all(p.requires_grad for p in run.model.encoder.backbone.stem_parameters())
