"""Multi-label list files (NUS-WIDE / MS-COCO format): parsing, refusals, and the pipeline
end to end with relevance by shared label."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_cli import TINY, run_cli

from hashsearch.data import load_dataset
from hashsearch.errors import HashsearchError
from hashsearch.metrics import relevance

CLASSES = ("red", "green", "blue", "white")
PATCHES = [(slice(0, 8), slice(0, 8)), (slice(0, 8), slice(8, 16)),
           (slice(8, 16), slice(0, 8)), (slice(8, 16), slice(8, 16))]  # fmt: skip
COLOURS = [(230, 30, 30), (30, 230, 30), (30, 30, 230), (240, 240, 240)]


def write_multilabel(folder, count=240, seed=0):
    """Images with a coloured patch per label (1-3 labels each) on noise; the list file."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    lines = []
    for i in range(count):
        flags = np.zeros(4, int)
        flags[rng.choice(4, size=rng.integers(1, 4), replace=False)] = 1
        image = rng.integers(0, 90, (16, 16, 3)).astype(np.uint8)
        for label in np.flatnonzero(flags):
            image[PATCHES[label]] = COLOURS[label]
        Image.fromarray(image).save(folder / "images" / f"{i:04d}.png")
        lines.append(f"images/{i:04d}.png " + " ".join(map(str, flags)))
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return folder / "list.txt"


def test_list_file_loads_multi_hot_labels_and_class_names(tmp_path):
    listed = write_multilabel(tmp_path, count=12)
    dataset = load_dataset("list", listed)
    assert dataset.images.shape == (12, 16, 16, 3) and dataset.labels.shape == (12, 4)
    assert dataset.classes == CLASSES and dataset.ids[0] == "images/0000.png"
    assert (dataset.labels.sum(1) >= 1).all()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("images/0000.png 1 0 2 0", "flags 0 or 1"),
        ("images/0000.png 1 0 1", "3 label flags, the first line has 4"),
        ("images/0000.png 0 0 0 0", "has no label"),
        ("images/none.png 1 0 0 0", "does not exist"),
        ("images/0000.png", "expected `path 0 1 ...`"),
    ],
)
def test_bad_lines_are_refused_with_file_and_line(tmp_path, line, message):
    listed = write_multilabel(tmp_path, count=2)
    listed.write_text(listed.read_text() + line + "\n")
    with pytest.raises(HashsearchError, match=message) as error:
        load_dataset("list", listed)
    assert "list.txt" in str(error.value) and "\n" not in str(error.value)


def test_multi_label_pipeline_end_to_end(tmp_path, capsys, monkeypatch):
    listed = write_multilabel(tmp_path / "data")
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys, monkeypatch, "train", "--dataset", "list", "--data", listed, "--bits", "16",
        "--epochs", "4", "--seed", "0", "--out", run, "--no-progress", *TINY,
        "--set", "data.val_per_class=0.1", "--set", "train.batch_size=16",
        "--set", "train.augment.flip=false",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli(capsys, monkeypatch, "evaluate", "--run", run, "--json")
    assert code == 0, err
    report = json.loads(out)
    code, _, err = run_cli(
        capsys, monkeypatch, "encode", "--run", run, "--split", "database", "--out", tmp_path / "db"
    )
    assert code == 0, err
    labels = np.load(tmp_path / "db.npz")["labels"]
    assert labels.shape[1] == 4  # multi-hot kept through encoding
    chance = relevance(labels, labels).mean()  # mAP of a random ranking, about
    assert report["two_stage"]["map_all"] > chance + 0.1, (report["two_stage"], chance)
    code, _, err = run_cli(capsys, monkeypatch, "index", "--run", run, "--out", tmp_path / "ix")
    assert code == 0, err
    query = tmp_path / "data" / "images" / "0000.png"
    code, out, err = run_cli(
        capsys, monkeypatch, "search", "--index", tmp_path / "ix", query, "--json"
    )
    assert code == 0, err
    first = json.loads(out)[0]["results"][0]
    assert set(first["label"].split(",")) <= set(CLASSES)


def test_replacing_a_listed_image_is_not_served_from_the_cache(tmp_path):
    listed = write_multilabel(tmp_path, count=4)
    before = load_dataset("list", listed).images[0].copy()
    Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(tmp_path / "images" / "0000.png")
    after = load_dataset("list", listed).images[0]
    assert not np.array_equal(before, after) and (after == 7).all()
