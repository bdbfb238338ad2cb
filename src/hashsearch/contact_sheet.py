"""Contact sheets: each query and its top results as one PNG, for a quick look.

One row per query: the query image, then its results best first, each captioned
with its rank, label, Hamming distance and re-rank score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from hashsearch import api
from hashsearch.data.decode import decode_image
from hashsearch.index import HashIndex
from hashsearch.items import ItemImages

CELL = 96  # pixels a side: a 32x32 CIFAR-10 image at 3x
CAPTION = 30  # two lines of 12-pixel text
PAD = 6
GAP = 18  # between the query and its results
BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)


@dataclass(frozen=True)
class Tile:
    """One image of a sheet and the lines under it."""

    pixels: np.ndarray  # (H, W, C) uint8, C = 1 or 3
    caption: tuple[str, ...]


def render_sheet(rows: Sequence[tuple[Tile, Sequence[Tile]]]) -> Image.Image:
    """rows: (query tile, result tiles) per query -> the sheet image."""
    columns = max(len(results) for _, results in rows)
    width = PAD + (CELL + PAD) * (columns + 1) + GAP
    height = PAD + (CELL + CAPTION + PAD) * len(rows)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for r, (query, results) in enumerate(rows):
        top = PAD + r * (CELL + CAPTION + PAD)
        for c, tile in enumerate([query, *results]):
            left = PAD + c * (CELL + PAD) + (GAP if c else 0)
            sheet.paste(fit_cell(tile.pixels), (left, top))
            for line, text in enumerate(tile.caption[:2]):
                draw.text((left, top + CELL + 2 + 13 * line), _clip(text), fill=INK, font=font)
    return sheet


def fit_cell(pixels: np.ndarray) -> Image.Image:
    """An image scaled into a CELL x CELL square, padded with the background."""
    image = Image.fromarray(pixels.squeeze(axis=2) if pixels.shape[2] == 1 else pixels)
    return ImageOps.pad(image.convert("RGB"), (CELL, CELL), Image.Resampling.BICUBIC, BACKGROUND)


def _clip(text: str, chars: int = 16) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def result_tile(items: ItemImages, rank: int, hit: dict[str, Any]) -> Tile:
    """A hit of `api.hits_as_dicts` as a tile: rank and label, then distance and score."""
    score = "" if hit["score"] is None else f"  {hit['score']:.3f}"
    return Tile(items.pixels(hit["id"]), (f"{rank}. {hit['label']}", f"d={hit['hamming']}{score}"))


def write_contact_sheet(
    index_dir: Path,
    found: Sequence[dict[str, Any]],
    out: Path,
    data_path: str | None = None,
) -> Path:
    """Render `api.search_images` results (one row per query) to the PNG `out`; its path."""
    index = HashIndex.load(index_dir)
    items = ItemImages(index.ids, api.index_model(index, index_dir).config, data_path)
    rows = []
    for query in found:
        path = Path(query["query"])
        tile = Tile(decode_image(path, str(path)), ("query", path.name))
        rows.append(
            (tile, [result_tile(items, r, hit) for r, hit in enumerate(query["results"], 1)])
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    render_sheet(rows).save(out)
    return out
