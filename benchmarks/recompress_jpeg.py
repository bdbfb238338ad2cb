"""How much does JPEG loss cost? Write a copy of an image-folder archive re-encoded at a
lower JPEG quality, to train and evaluate on it like the original.

    python benchmarks/recompress_jpeg.py ../shared/data/cifar10-jpg.tar.gz \
        --quality 50 --out /tmp/cifar10-q50.tar.gz

The CIFAR-10 copy in ../shared/data was re-encoded from the official pixels as JPEG
at quality 75 with 4:2:0 chroma subsampling (its quantisation tables and sampling
say so), and the original pixels are not to be had here. What that first loss costs
the recipe cannot be measured directly; what a second, stronger one costs can: train
on copies re-encoded at lower qualities (train and test images alike, as in the
given copy) and read accuracy and mAP against the distortion each adds. The script
prints, per copy, the mean JPEG file size before and after and the PSNR of the
re-encoded pixels against the given ones (from the mean squared error over all
images), so that the cost can be read per decibel. Members that are
not JPEG images are copied unchanged; the layout and names are kept, so the copy
loads with `--data` like the original (it gets its own cache entry: the cache key
is the archive's content).
"""

from __future__ import annotations

import argparse
import io
import math
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hashsearch.data.decode import decode_image
from hashsearch.errors import HashsearchError

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def reencode(data: bytes, name: str, quality: int, subsampling: str) -> tuple[bytes, float]:
    """The image re-encoded, and the mean squared error the re-encoding added to its
    pixel values; both sides decoded by the loader's own `decode_image`."""
    pixels = decode_image(data, name)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling])
    again = decode_image(out.getvalue(), name)
    error = float(np.mean((pixels.astype(np.float64) - again.astype(np.float64)) ** 2))
    return out.getvalue(), error


def psnr(mean_squared_error: float) -> float:
    return math.inf if mean_squared_error == 0 else 10 * math.log10(255**2 / mean_squared_error)


def write_reencoded(
    source: Path, target: Path, quality: int, subsampling: str
) -> tuple[list[float], list[tuple[int, int]]]:
    """Copy the archive member by member, JPEGs re-encoded; their added errors and their
    sizes before and after."""
    errors: list[float] = []
    sizes: list[tuple[int, int]] = []
    with tarfile.open(source, "r:*") as tar_in, tarfile.open(target, "w:gz") as tar_out:
        for member in tar_in:
            handle = tar_in.extractfile(member) if member.isfile() else None
            if handle is None:
                tar_out.addfile(member)
                continue
            data = handle.read()
            if member.name.lower().endswith((".jpg", ".jpeg")):
                try:
                    reencoded, error = reencode(data, member.name, quality, subsampling)
                except HashsearchError as exc:
                    raise SystemExit(
                        f"{source}: {member.name} is not a readable JPEG ({exc})"
                    ) from exc
                errors.append(error)
                sizes.append((len(data), len(reencoded)))
                data = reencoded
            info = tarfile.TarInfo(member.name)
            info.size, info.mtime, info.mode = len(data), member.mtime, member.mode
            tar_out.addfile(info, io.BytesIO(data))
    if not errors:
        raise SystemExit(f"{source}: holds no .jpg images; nothing to re-encode")
    return errors, sizes


def recompress(source: Path, target: Path, quality: int, subsampling: str) -> dict[str, float]:
    """Write the re-encoded copy of `source` to `target`; return what it cost.

    The copy is written beside `target` and moved there only when complete, so a
    failure midway leaves whatever was at `target` as it was."""
    if not source.is_file():
        raise SystemExit(f"{source}: no such archive; pass the image-folder .tar.gz to re-encode")
    if target.resolve() == source.resolve():
        raise SystemExit(f"{target}: is the source archive; pass another --out")
    partial = target.with_name(target.name + ".partial")
    try:
        errors, sizes = write_reencoded(source, partial, quality, subsampling)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return {
        "images": len(errors),
        "source_bytes_per_image": float(np.mean([before for before, _ in sizes])),
        "bytes_per_image": float(np.mean([after for _, after in sizes])),
        "psnr_db": psnr(float(np.mean(errors))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, help="image-folder archive (.tar.gz) to re-encode")
    parser.add_argument("--quality", type=int, required=True, help="JPEG quality, 1-95")
    parser.add_argument("--subsampling", choices=sorted(SUBSAMPLING), default="4:2:0")
    parser.add_argument("--out", type=Path, required=True, help="where to write the copy (.tar.gz)")
    args = parser.parse_args()
    if not 1 <= args.quality <= 95:
        parser.error(f"--quality {args.quality}: Pillow's JPEG qualities run from 1 to 95")
    started = time.perf_counter()
    stats = recompress(args.source, args.out, args.quality, args.subsampling)
    print(
        f"{args.out}: {stats['images']} images at quality {args.quality} ({args.subsampling}), "
        f"{stats['bytes_per_image']:.0f} bytes/image "
        f"(was {stats['source_bytes_per_image']:.0f}), "
        f"PSNR {stats['psnr_db']:.2f} dB against {args.source.name}, "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
