"""Run directories: a saved model encodes exactly as the trained one; damaged runs fail clearly."""

import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from hashsearch import api, device
from hashsearch.config import with_overrides
from hashsearch.encoding import encode_images
from hashsearch.errors import HashsearchError
from hashsearch.presets import preset_config
from hashsearch.search import two_stage_search


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory):
    config = preset_config(
        "digits",
        {
            "data.normalization": "channel",
            "method.bits": 16,
            "train.epochs": 1,
            "backbone.widths": (8, 16),
            "backbone.blocks": (1, 1),
            "seed": 5,
        },
    )
    return api.train(config, tmp_path_factory.mktemp("runs") / "digits", progress=False)


def test_reloaded_run_gives_identical_codes_and_features(channel_run):
    images = api.load_data(channel_run.config)[0].images[:50]
    labels = np.zeros(50, np.int64)
    before = encode_images(channel_run.model, images, labels)
    after = encode_images(api.load_run(channel_run.directory).model, images, labels)
    assert np.array_equal(before.codes, after.codes)
    assert np.allclose(before.features, after.features, atol=1e-6)


def test_channel_statistics_come_from_the_training_split(channel_run):
    dataset, splits = api.load_data(channel_run.config)
    pixels = dataset.images[splits.train].astype(np.float64) / 255.0
    normalize = api.load_run(channel_run.directory).model.encoder.normalize
    assert normalize.mean.flatten().tolist() == pytest.approx([pixels.mean()], rel=1e-5)
    assert normalize.std.flatten().tolist() == pytest.approx([pixels.std()], rel=1e-4)


def test_run_records_resolved_config_and_selection(channel_run):
    text = (channel_run.directory / "config.yaml").read_text()
    assert "normalization: channel" in text and "lambda_rec: 0.1" in text  # defaults resolved
    assert channel_run.meta["splits"]["val"] > 0


def test_damaged_weights_are_a_clear_error(channel_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(channel_run.directory, copy)
    (copy / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(HashsearchError, match="damaged"):
        api.load_run(copy)


def test_query_shifts_change_query_codes_only(channel_run, tmp_path):
    """With `encode.query_shifts` the query splits, `search` and the server's queries
    get the shifted-view average; indexed items keep the single-view codes."""
    plain = api.load_run(channel_run.directory)
    translated = api.load_run(channel_run.directory, encode={"query_shifts": [[1, 1], [-1, -1]]})
    assert translated.config.encode.query_shifts == ((1, 1), (-1, -1))
    assert plain.config.encode.query_shifts == ()

    as_items, _ = api.encode_split(translated, "query", as_queries=False)
    as_queries, _ = api.encode_split(translated, "query")  # a query split: queries by default
    plain_queries, _ = api.encode_split(plain, "query")
    assert np.array_equal(as_items.codes, plain_queries.codes)
    assert np.allclose(as_items.features, plain_queries.features, atol=1e-6)
    assert not np.allclose(as_queries.features, plain_queries.features, atol=1e-3)

    index = api.build_index(translated, tmp_path / "index")
    assert np.array_equal(index.encoded().codes, api.encode_split(plain, "database")[0].codes)

    dataset, splits = api.load_data(plain.config)
    files = []
    for i, row in enumerate(splits.query[:3]):
        files.append(tmp_path / f"q{i}.png")
        Image.fromarray(dataset.images[row][..., 0]).save(files[-1])
    found = api.search_images(tmp_path / "index", files, top=5, run=translated)
    pixels = np.stack([dataset.images[row] for row in splits.query[:3]])
    expected = two_stage_search(
        index, *_codes_and_features(translated, pixels, as_queries=True), top=5
    )
    plain_hits = two_stage_search(
        index, *_codes_and_features(translated, pixels, as_queries=False), top=5
    )
    for answer, hits, other in zip(found, expected, plain_hits, strict=True):
        scores = [row["score"] for row in answer["results"]]
        assert scores == pytest.approx(hits.scores.tolist(), abs=1e-5)
        assert scores != pytest.approx(other.scores.tolist(), abs=1e-5)


def test_finished_run_reads_a_parameter_missing_from_an_older_run_as_its_default(
    channel_run, tmp_path
):
    """A run saved before `centre_layout` existed was trained with its default."""
    older = tmp_path / "older"
    shutil.copytree(channel_run.directory, older)
    saved = yaml.safe_load((older / "config.yaml").read_text())
    assert saved["method"]["params"].pop("centre_layout") == "csq"
    (older / "config.yaml").write_text(yaml.safe_dump(saved))
    config = api.load_run(channel_run.directory).config
    default = with_overrides(config, {"method.params.centre_layout": "csq"})
    assert api.finished_run(older, default) is not None
    with pytest.raises(HashsearchError, match="another config"):
        api.finished_run(older, with_overrides(config, {"method.params.centre_layout": "blocks"}))


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_trains_and_is_saved_as_the_precision_this_machine_gives(
    monkeypatch, tmp_path, native
):
    """A saved run records the precision it trained in, and "auto" matches a finished
    run only where it means that precision."""
    monkeypatch.setattr(device, "native_bf16", lambda device_type: native)
    config = preset_config(
        "digits",
        {
            "train.precision": "auto",
            "method.bits": 16,
            "train.epochs": 1,
            "train.max_steps": 2,
            "backbone.widths": (8, 16),
            "backbone.blocks": (1, 1),
        },
    )
    run = api.train(config, tmp_path / "auto", progress=False)
    saved = yaml.safe_load((run.directory / "config.yaml").read_text())
    assert saved["train"]["precision"] == ("bf16" if native else "fp32")
    assert api.finished_run(run.directory, config) is not None
    monkeypatch.setattr(device, "native_bf16", lambda device_type: not native)
    with pytest.raises(HashsearchError, match="another config"):
        api.finished_run(run.directory, config)


def _codes_and_features(run, pixels, as_queries):
    encoded = encode_images(run.model, pixels, np.zeros(len(pixels)), as_queries=as_queries)
    return encoded.codes, encoded.features


def test_finished_run_applies_encode_settings_and_refuses_other_training(channel_run):
    config = api.load_run(channel_run.directory).config
    reused = api.finished_run(
        channel_run.directory, with_overrides(config, {"encode.query_shifts": [[2, 0]]})
    )
    assert reused is not None and reused.model.encoder.query_shifts == ((2, 0),)
    with pytest.raises(HashsearchError, match="another config"):
        api.finished_run(channel_run.directory, with_overrides(config, {"train.epochs": 2}))
