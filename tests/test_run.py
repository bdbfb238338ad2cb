"""Run directories: a saved model encodes exactly as the trained one; damaged runs fail clearly."""

import numpy as np
import pytest

from hashsearch import api
from hashsearch.encoding import encode_images
from hashsearch.errors import HashsearchError
from hashsearch.presets import preset_config


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
