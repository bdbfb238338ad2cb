"""The `hashsearch` command with generated bad options, paths, runs and indexes.

Every refusal is exit status 2 and exactly one stderr line `error: ...` naming the option,
value or file at fault (click's usage errors included), and a failed command leaves every
run and index directory byte-identical. Generated: train (120) and evaluate (40) options,
search options and queries (60), index-add (30) and index-remove (30) arguments, manifests
with fields of any type (30), damaged index files (30), run.json fields (20), truncated
weights (20); parametrized: config files (6), folders that are no index (10 x 3 commands)
or no run (7 x 4), another model, unwritable outputs, usage errors, a decompression bomb
through the real console script. About 410 cases.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fuzz_helpers import (
    FUZZ,
    assert_one_line,
    claiming,
    encoded,
    fresh_copy,
    noise_image,
    snapshot,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import run_cli

from hashsearch.config import RunConfig
from hashsearch.data import list_datasets
from hashsearch.data.protocols import PROTOCOLS
from hashsearch.index import HashIndex
from hashsearch.index.store import current_version
from hashsearch.methods import list_methods
from hashsearch.methods.saeh import SAEHParams
from hashsearch.presets import PRESETS
from hashsearch.rerank import RERANKERS

# hashsearch.data.decode ignores this warning (it refuses every such image), but pytest
# restores the warning filters around each test.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def refused(code: int, err: str, *fragments: str) -> None:
    """Exit 2 and one line on stderr, `error: ...`, naming `fragments`."""
    assert code == 2, (code, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert_one_line(err.rstrip("\n"), *fragments)


def tiff_with_a_tag_past_its_end() -> bytes:
    """A TIFF that decodes, with a Pillow warning: its Compression tag claims 1,000 values."""
    data = bytearray(encoded(noise_image("RGB", (8, 8)), "TIFF"))
    ifd = int.from_bytes(data[4:8], "little")
    compression = next(
        at for at in range(ifd + 2, len(data), 12) if data[at : at + 2] == b"\x03\x01"
    )
    data[compression + 4 : compression + 8] = (1000).to_bytes(4, "little")
    return bytes(data)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Query files: two that decode (any size: the 8x8 model resizes) and bad ones."""
    folder = tmp_path_factory.mktemp("queries")
    contents = {
        "gray.png": encoded(noise_image("L", (8, 8))),
        "photo.jpg": encoded(noise_image("RGB", (21, 13)), "JPEG"),
        "text.png": b"not an image",
        "empty.jpg": b"",
        "cut.png": encoded(noise_image("RGB", (30, 30)))[:100],
        "bomb.png": claiming(encoded(noise_image("RGB", (4, 4))), "PNG", 10_000, 10_000),
        "odd-tags.tif": tiff_with_a_tag_past_its_end(),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in [*contents, "missing.png"]}


GOOD = ("gray.png", "photo.jpg")


@pytest.fixture(scope="module")
def existing_run(digits_run, tmp_path_factory) -> Path:
    """A copy of the run that failed `train --out` commands aim at: it must survive them."""
    copy = tmp_path_factory.mktemp("target") / "run"
    shutil.copytree(digits_run.directory, copy)
    return copy


# -- train ----------------------------------------------------------------------------

NAME = st.text(string.ascii_letters + string.digits + "-_. ", min_size=1, max_size=12).filter(
    lambda name: not name.startswith("-")
)
NOT_INT = st.text(string.ascii_letters + ".,/ ", min_size=1, max_size=8).filter(str.strip)
IDENTIFIER = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)


def dotted_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        keys.append(prefix + key)
        if isinstance(value, dict) and key != "params":  # method.params takes any key
            keys += dotted_keys(value, f"{prefix}{key}.")
    return keys


CONFIG_KEYS = dotted_keys(RunConfig().model_dump())
BAD_VALUES = {
    "seed": "[1, 2]",
    "data.image_size": "-3",
    "method.bits": "4",
    "train.lr": "fast",
    "train.epochs": "0",
    "train.batch_size": "1",
    "train.augment.flip": "sideways",
    "backbone.widths": "[]",
    "data.normalization": "median",
    "train.precision": "fp8",
    "train.momentum": "1.5",
    "method.params": "7",
    "data.val_per_class": "-1",
    "seed.date": "2001-02-30",
}


def unknown(names: list[str]) -> st.SearchStrategy[str]:
    return NAME.filter(lambda name: name not in names)


def option(flag: str, values: st.SearchStrategy[Any], fragment: Any = None):
    """(arguments, what the refusal must name): `fragment(value)`, else the flag."""
    return values.map(lambda v: ([flag, str(v)], fragment(v) if fragment else flag))


UNKNOWN_KEYS = (
    st.tuples(st.sampled_from(["", *CONFIG_KEYS]), IDENTIFIER)
    .map(lambda parts: ".".join(parts).lstrip("."))
    .filter(lambda key: key not in CONFIG_KEYS)
)
NOT_ASSIGNMENTS = st.text(string.printable, max_size=10).filter(
    lambda item: "=" not in item or not item.partition("=")[0].strip()
)
UNKNOWN_PARAMS = IDENTIFIER.filter(lambda key: key not in SAEHParams.model_fields)
BAD_TRAIN = st.one_of(
    option("--bits", st.integers().filter(lambda b: not 8 <= b <= 256), str),
    option("--epochs", st.integers(max_value=0), lambda _: "epochs"),
    option("--image-size", st.integers(max_value=0) | st.integers(1025), lambda _: "image_size"),
    st.sampled_from(["--bits", "--epochs", "--seed", "--image-size"]).flatmap(
        lambda flag: option(flag, NOT_INT)
    ),
    option(
        "--set",
        st.sampled_from(sorted(BAD_VALUES)).map(lambda key: f"{key}={BAD_VALUES[key]}"),
        lambda item: item.partition("=")[0].removesuffix(".date"),
    ),
    option("--set", UNKNOWN_KEYS.map(lambda key: f"{key}=1"), lambda item: item[:-2]),
    option("--set", NOT_ASSIGNMENTS),
    option("--param", UNKNOWN_PARAMS.map(lambda key: f"{key}=1"), lambda item: item[:-2]),
    option("--method", unknown(list_methods()), repr),
    option("--protocol", unknown(PROTOCOLS.names()), repr),
    option("--preset", unknown(PRESETS.names()), repr),
    option("--dataset", unknown(list_datasets()), repr),
    option("--device", unknown(["cpu", "cuda", "mps"]), repr),
    st.sampled_from(("folder", "list", "cifar10")).map(
        lambda name: (["--dataset", name, "--data", "/nowhere/data"], "/nowhere/data")
    ),
)


@settings(FUZZ, max_examples=120)
@given(bad=BAD_TRAIN, into_existing=st.booleans())
def test_train_refuses_bad_options(bad, into_existing, existing_run, tmp_path, capsys, monkeypatch):
    arguments, fragment = bad
    out = existing_run if into_existing else tmp_path / "new-run"
    before = snapshot(existing_run, tmp_path / "new-run")
    code, _, err = run_cli(capsys, monkeypatch, "train", *arguments, "--out", out, "--no-progress")
    refused(code, err, fragment)
    assert snapshot(existing_run, tmp_path / "new-run") == before


CONFIGS = {
    "absent": None,
    "binary": b"\xff\xfe\x00\x01 not text",
    "bad YAML": b"method: [1, 2\nbits: 3\n",
    "a list": b"- 1\n- 2\n",
    "unknown key": b"method:\n  name: saeh\n  colour: red\n",
    "an impossible date": b"seed: 2001-02-30\n",
}


@pytest.mark.parametrize("kind", CONFIGS)
def test_bad_config_files_are_named(kind, tmp_path, capsys, monkeypatch):
    path = tmp_path / "run.yaml"
    if CONFIGS[kind] is not None:
        path.write_bytes(CONFIGS[kind])
    code, _, err = run_cli(capsys, monkeypatch, "train", "--config", path, "--out", tmp_path / "r")
    refused(code, err, str(path))
    assert not (tmp_path / "r").exists()


BAD_EVALUATE = st.one_of(
    option("--candidates", st.integers(max_value=0)),
    option("--radius", st.integers(max_value=-1)),
    option("--rerank", unknown(RERANKERS.names()), repr),
    option("--queries-per-class", st.integers(max_value=0)).map(
        lambda bad: (["--corruptions", *bad[0]], bad[1])
    ),
    option("--candidates", NOT_INT),
)


@settings(FUZZ, max_examples=40)
@given(bad=BAD_EVALUATE)
def test_evaluate_refuses_bad_options_before_any_work(bad, existing_run, capsys, monkeypatch):
    arguments, fragment = bad
    before = snapshot(existing_run)
    code, _, err = run_cli(capsys, monkeypatch, "evaluate", "--run", existing_run, *arguments)
    refused(code, err, fragment)
    assert snapshot(existing_run) == before


# -- search, index-add, index-remove ---------------------------------------------------

LENGTH = st.integers(-3, 20) | st.integers(2**31, 2**70)


@settings(FUZZ, max_examples=60)
@given(
    top=LENGTH,
    candidates=LENGTH,
    radius=st.none() | LENGTH,
    rerank=st.sampled_from(RERANKERS.names()) | NAME,
    queries=st.lists(
        st.sampled_from(["gray.png", "photo.jpg", "text.png", "missing.png"]),
        min_size=1,
        max_size=3,
    ),
)
def test_search_options(
    top, candidates, radius, rerank, queries, digits_index, files, capsys, monkeypatch
):
    options = ["--top", top, "--candidates", candidates, "--rerank", rerank, "--json"]
    options += [] if radius is None else ["--radius", radius]
    code, out, err = run_cli(
        capsys,
        monkeypatch,
        "search",
        "--index",
        digits_index,
        *options,
        *[files[name] for name in queries],
    )
    if top < 1 or candidates < 1:
        refused(code, err, "--top" if top < 1 else "--candidates")
    elif radius is not None and radius < 0:
        refused(code, err, "--radius")
    elif rerank not in RERANKERS.names():
        refused(code, err, repr(rerank))
    elif bad := [name for name in queries if name not in GOOD]:
        refused(code, err, bad[0])
    else:
        assert code == 0, err
        found = json.loads(out)
        assert [len(query["results"]) <= top for query in found] == [True] * len(queries)


@settings(FUZZ, max_examples=30)
@given(
    label=st.integers(-3, 12) | st.integers(-(2**70), 2**70),
    names=st.lists(
        st.sampled_from([*GOOD, "text.png", "cut.png", "bomb.png", "missing.png"]),
        min_size=1,
        max_size=3,
    ),
)
def test_index_add_arguments(label, names, digits_index, files, tmp_path, capsys, monkeypatch):
    index = fresh_copy(digits_index, tmp_path / "added")
    before = snapshot(index)
    images = [files[name] for name in names]
    code, _, err = run_cli(
        capsys, monkeypatch, "index-add", "--index", index, "--label", label, *images
    )
    if not 0 <= label < 10:
        refused(code, err, "label", str(label))
    elif bad := [name for name in names if name not in GOOD]:
        refused(code, err, bad[0])
    elif len(set(names)) < len(names):
        refused(code, err, "occurs twice")
    else:
        assert code == 0, err
        assert len(HashIndex.load(index)) == len(HashIndex.load(digits_index)) + len(names)
        return
    assert snapshot(index) == before


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_index_remove_arguments(data, digits_index, tmp_path, capsys, monkeypatch):
    index = fresh_copy(digits_index, tmp_path / "removed")
    before, known = snapshot(index), HashIndex.load(digits_index).ids
    ids = data.draw(st.lists(st.sampled_from(known[:50]) | NAME, min_size=1, max_size=4))
    code, _, err = run_cli(capsys, monkeypatch, "index-remove", "--index", index, "--", *ids)
    if unknown_ids := [item for item in ids if item not in known]:
        refused(code, err, "not in the index", repr(unknown_ids[0]))
        assert snapshot(index) == before
    else:
        assert code == 0, err
        assert len(HashIndex.load(index)) == len(known) - len(set(ids))


def damage_index(index: Path, kind: str) -> None:
    """Turn a copy of an index into one of the folders `NOT_INDEXES` names."""
    version = current_version(index)
    manifest = json.loads((version / "manifest.json").read_text())
    if kind == "empty folder":
        shutil.rmtree(index)
        index.mkdir()
    elif kind == "a file":
        shutil.rmtree(index)
        index.write_text("not an index")
    elif kind == "CURRENT names nothing":
        (index / "CURRENT").write_text("v-gone\n")
    elif kind == "CURRENT escapes":
        (index / "CURRENT").write_text("../../etc\n")
    elif kind == "manifest not JSON":
        (version / "manifest.json").write_bytes(b"\x00{not json")
    elif kind.startswith("format version"):
        manifest["format_version"] = int(kind.split()[-1])
        (version / "manifest.json").write_text(json.dumps(manifest))
    elif kind == "manifest of another tool":
        (version / "manifest.json").write_text(json.dumps({**manifest, "format": "faiss"}))
    elif kind == "model swapped":
        (version / "model" / "model.safetensors").write_bytes(b"other weights")


NOT_INDEXES = (
    "empty folder",
    "a file",
    "CURRENT names nothing",
    "CURRENT escapes",
    "manifest not JSON",
    "format version 2",
    "format version 4",
    "manifest of another tool",
    "model swapped",
    "absent",
)


@pytest.mark.parametrize("kind", NOT_INDEXES)
def test_folders_that_are_no_index(kind, digits_index, files, tmp_path, capsys, monkeypatch):
    index = fresh_copy(digits_index, tmp_path / "index")
    if kind == "absent":
        shutil.rmtree(index)
    else:
        damage_index(index, kind)
    before = snapshot(index)
    commands = [
        ("search", "--index", index, files["gray.png"]),
        ("index-add", "--index", index, "--label", "1", files["gray.png"]),
        ("index-remove", "--index", index, "some-id"),
    ]
    for command in commands:
        code, _, err = run_cli(capsys, monkeypatch, *command)
        refused(code, err, str(index))
        assert snapshot(index) == before


MANIFEST_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_manifest_fields_of_any_type(data, digits_index, files, tmp_path, capsys, monkeypatch):
    """A manifest edited by hand: every field of any JSON type (files stay intact)."""
    index = fresh_copy(digits_index, tmp_path / "edited")
    path = current_version(index) / "manifest.json"
    manifest = json.loads(path.read_text())
    field = data.draw(st.sampled_from(sorted(manifest)) | st.sampled_from(["nprobe", "extra"]))
    if field == "nprobe":
        manifest["backend"] = {
            "kind": "ivf",
            **data.draw(st.just({}) | st.dictionaries(st.just("nprobe"), MANIFEST_VALUES)),
        }
    else:
        manifest[field] = data.draw(MANIFEST_VALUES)
    path.write_text(json.dumps(manifest))
    before = snapshot(index)
    code, _, err = run_cli(capsys, monkeypatch, "search", "--index", index, files["gray.png"])
    if code != 0:
        refused(code, err, str(index))
    code, _, err = run_cli(capsys, monkeypatch, "index-remove", "--index", index, "no-such-id")
    refused(code, err)
    assert snapshot(index) == before


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_damaged_index_files_are_named(data, digits_index, files, tmp_path, capsys, monkeypatch):
    index = fresh_copy(digits_index, tmp_path / "flipped")
    version = current_version(index)
    stored = sorted(p for p in version.rglob("*") if p.is_file() and p.name != "manifest.json")
    damaged = data.draw(st.sampled_from(stored))
    content = bytearray(damaged.read_bytes())
    content[data.draw(st.integers(0, len(content) - 1))] ^= data.draw(st.integers(1, 255))
    damaged.write_bytes(bytes(content))
    code, _, err = run_cli(capsys, monkeypatch, "search", "--index", index, files["gray.png"])
    refused(code, err, str(damaged), "damaged")


def test_an_index_searched_with_another_model(digits_index, other_run, files, capsys, monkeypatch):
    before = snapshot(digits_index, other_run.directory)
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        "search",
        "--index",
        digits_index,
        "--run",
        other_run.directory,
        files["gray.png"],
    )
    refused(code, err, str(other_run.directory), "not the model")
    assert snapshot(digits_index, other_run.directory) == before


# -- run directories -------------------------------------------------------------------


def damage_run(run: Path, kind: str) -> None:
    """Turn a copy of a run into one of the folders `NOT_RUNS` names."""
    if kind == "empty folder":
        shutil.rmtree(run)
        run.mkdir()
    elif kind == "a file":
        shutil.rmtree(run)
        run.write_text("not a run")
    elif kind == "run.json not JSON":
        (run / "run.json").write_bytes(b"\xff{")
    elif kind == "run.json of version 9":
        meta = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**meta, "format_version": 9}))
    elif kind == "config.yaml missing":
        (run / "config.yaml").unlink()
    elif kind == "config of other bits":
        config = (run / "config.yaml").read_text()
        (run / "config.yaml").write_text(config.replace("bits: 16", "bits: 24"))
    elif kind == "weights missing":
        (run / "model.safetensors").unlink()


NOT_RUNS = (
    "empty folder",
    "a file",
    "run.json not JSON",
    "run.json of version 9",
    "config.yaml missing",
    "config of other bits",
    "weights missing",
)


@pytest.mark.parametrize("kind", NOT_RUNS)
def test_folders_that_are_no_run(kind, digits_run, files, tmp_path, capsys, monkeypatch):
    run = fresh_copy(digits_run.directory, tmp_path / "run")
    damage_run(run, kind)
    before = snapshot(run)
    commands = [
        ("evaluate", "--run", run),
        ("encode", "--run", run, "--out", tmp_path / "codes.npz"),
        ("index", "--run", run, "--out", tmp_path / "index"),
        ("search", "--index", tmp_path / "index", "--run", run, files["gray.png"]),
    ]
    for command in commands:
        code, _, err = run_cli(capsys, monkeypatch, *command)
        refused(code, err, str(run))
        assert snapshot(run) == before
    assert not (tmp_path / "codes.npz").exists() and not (tmp_path / "index").exists()


RUN_FIELDS = st.sampled_from(["num_classes", "image_shape", "classes", "bits", "feature_dim"])


@settings(FUZZ, max_examples=20)
@given(field=RUN_FIELDS, value=MANIFEST_VALUES)
def test_run_json_fields_of_any_type(field, value, digits_run, tmp_path, capsys, monkeypatch):
    run = fresh_copy(digits_run.directory, tmp_path / "edited-run")
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, field: value}))
    before = snapshot(run)
    code, _, err = run_cli(capsys, monkeypatch, "evaluate", "--run", run, "--candidates", "0")
    refused(code, err)
    code, _, err = run_cli(
        capsys, monkeypatch, "encode", "--run", run, "--split", "query", "--out", tmp_path / "q.npz"
    )
    if code != 0:
        refused(code, err, str(run))
    assert snapshot(run) == before


@settings(FUZZ, max_examples=20)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_weights_are_named(cut, digits_run, tmp_path, capsys, monkeypatch):
    run = fresh_copy(digits_run.directory, tmp_path / "cut-run")
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: int(cut * weights.stat().st_size)])
    code, _, err = run_cli(capsys, monkeypatch, "encode", "--run", run, "--out", tmp_path / "q")
    refused(code, err, str(run))


def test_outputs_that_cannot_be_written(digits_run, files, tmp_path, capsys, monkeypatch):
    blocker = files["gray.png"]  # a file where a folder is wanted
    for command in [
        ("index", "--run", digits_run.directory, "--out", blocker),
        ("encode", "--run", digits_run.directory, "--out", blocker / "codes.npz"),
        ("evaluate", "--run", digits_run.directory, "--out", blocker / "report"),
    ]:
        code, _, err = run_cli(capsys, monkeypatch, *command)
        refused(code, err, str(blocker))


def test_usage_errors_are_one_line_naming_the_option(tmp_path, capsys, monkeypatch):
    for args, fragment in [
        (("search", "--index", tmp_path, "--tpo", "3", "q.png"), "--tpo"),
        (("search", "--index", tmp_path, "--top", "many", "q.png"), "--top"),
        (("search", "q.png"), "--index"),
        (("index-add", "--index", tmp_path, "q.png"), "--label"),
        (("train",), "--out"),
        (("fly",), "fly"),
        (("index", "--run", tmp_path, "--out", tmp_path, "--features", "jpeg"), "--features"),
    ]:
        code, _, err = run_cli(capsys, monkeypatch, *args)
        refused(code, err, fragment)


def test_the_console_script_refuses_a_bomb_in_one_line(digits_index, files):
    """The real process: no Pillow warning (of the odd TIFF tag, of the 100 MP) or other
    line joins the refusal on stderr."""
    script = Path(sys.executable).with_name("hashsearch")
    done = subprocess.run(
        [script, "search", "--index", digits_index, files["odd-tags.tif"], files["bomb.png"]],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    refused(done.returncode, done.stderr, "bomb.png", "too large")
