"""Write scikit-learn's bundled digits as an image folder, `<class>/<n>.png` (issue 7).

    python benchmarks/export_digits.py --out runs/digits-folder
    hashsearch bench --preset folder --data runs/digits-folder --bits 16 32 --seeds 0 \
        --out runs/study-digits-folder

The digits are the one labelled image set besides CIFAR-10 that this project
reads offline (they ship inside scikit-learn). Written as ordinary PNG files
they go through the generic image-folder loader like any user's photos, so the
whole pipeline (decoding, RGB conversion, protocols, every method) is exercised
on a second data set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from hashsearch.data.digits import load_digits_dataset


def export(out: Path) -> int:
    """Write every digit as `out/<class>/<index>.png`; how many were written."""
    dataset = load_digits_dataset()
    for image, label, item in zip(dataset.images, dataset.labels, dataset.ids, strict=True):
        folder = out / dataset.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(folder / f"{item.split('/')[-1]:0>4}.png")
    return len(dataset.images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    args = parser.parse_args()
    print(f"wrote {export(args.out)} images to {args.out}")


if __name__ == "__main__":
    main()
