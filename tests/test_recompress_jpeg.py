"""benchmarks/recompress_jpeg.py: the re-encoded copy loads like the original and says
what distortion it added."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashsearch.data.cifar10 import load_cifar10


@pytest.fixture(scope="module")
def recompress_jpeg(load_benchmark):
    return load_benchmark("recompress_jpeg")


def pixels_by_name(archive: Path) -> dict[str, np.ndarray]:
    with tarfile.open(archive) as tar:
        return {
            m.name: np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB"))
            for m in tar
            if m.isfile()
        }


def test_copy_keeps_every_member_and_loses_more_at_lower_quality(
    recompress_jpeg, cifar10_slice, tmp_path
):
    source = pixels_by_name(cifar10_slice)
    psnrs = {}
    for quality in (90, 30):
        copy = tmp_path / f"q{quality}.tar.gz"
        stats = recompress_jpeg.recompress(cifar10_slice, copy, quality, "4:2:0")
        copied = pixels_by_name(copy)
        assert copied.keys() == source.keys() and stats["images"] == len(source)
        errors = [np.mean((source[n].astype(float) - copied[n]) ** 2) for n in source]
        assert stats["psnr_db"] == pytest.approx(10 * np.log10(255**2 / np.mean(errors)))
        assert stats["bytes_per_image"] > 0 and stats["source_bytes_per_image"] > 0
        assert not copy.with_name(copy.name + ".partial").exists()
        psnrs[quality] = stats["psnr_db"]
    assert 20 < psnrs[30] < psnrs[90] < 60
    dataset = load_cifar10(tmp_path / "q30.tar.gz")  # loads as CIFAR-10, like the original
    assert len(dataset.labels) == 300 and set(dataset.splits.tolist()) == {"train", "test"}


def test_bad_input_gets_one_line_and_leaves_the_target_alone(
    recompress_jpeg, cifar10_slice, tmp_path, monkeypatch, capsys
):
    target = tmp_path / "copy.tar.gz"
    target.write_bytes(b"kept")
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as tar:
        info = tarfile.TarInfo("train/cat/0001.jpg")
        info.size = 9
        tar.addfile(info, io.BytesIO(b"not a jpg"))
    with pytest.raises(SystemExit, match="0001.jpg is not a readable JPEG"):
        recompress_jpeg.recompress(broken, target, 50, "4:2:0")
    assert target.read_bytes() == b"kept" and set(tmp_path.iterdir()) == {target, broken}
    with pytest.raises(SystemExit, match="no such archive"):
        recompress_jpeg.recompress(tmp_path / "missing.tar.gz", target, 50, "4:2:0")
    with pytest.raises(SystemExit, match="is the source archive"):
        recompress_jpeg.recompress(cifar10_slice, cifar10_slice, 50, "4:2:0")
    argv = ["recompress_jpeg.py", str(cifar10_slice), "--quality", "100", "--out", str(target)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        recompress_jpeg.main()
    assert "--quality 100" in capsys.readouterr().err
