"""A one-minute proxy for recipe choices: short training on a CIFAR-10 slice, per variant.

    python benchmarks/recipe_proxy.py --data ../shared/data/cifar10-jpg.tar.gz --preset fast \
        --variant "tanh: method.params={relaxation: tanh, lambda_rec: 0.0}" \
        --variant "sign_ste: method.params={relaxation: sign_ste, lambda_rec: 0.0}"

Each variant (``NAME: KEY=VALUE; KEY=VALUE ...``, values read as YAML) trains
from the same seed on the same random 12,000 training images of `cifar10-2`
for `--epochs` epochs, then prints validation accuracy and validation mAP@all
(1,000 validation queries against 2,000 training items). It ranks variants that
differ in how fast they learn; it does not replace a full run, whose figures go
into docs/recipe.md. Time it alone: on 2 cores any other job skews it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from hashsearch import api
from hashsearch.cli import parse_assignments
from hashsearch.methods import create_method
from hashsearch.presets import preset_config
from hashsearch.training.trainer import Trainer, TrainingData


def slice_training(data: TrainingData, train: int, val: int, seed: int) -> TrainingData:
    rows = np.random.default_rng(seed).permutation(len(data.train_images))[:train]
    return dataclasses.replace(
        data,
        train_images=data.train_images[rows],
        train_labels=data.train_labels[rows],
        val_images=data.val_images[:val],
        val_labels=data.val_labels[:val],
    )


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, body = text.partition(":")
    items = [item.strip() for item in body.split(";") if item.strip()]
    return name.strip(), parse_assignments(items, "--variant")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 archive or folder")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--variant", action="append", required=True, help="NAME: K=V; K=V")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-images", type=int, default=12000)
    args = parser.parse_args()
    print(json.dumps(api.environment()), flush=True)
    base = preset_config(args.preset, {"data.path": args.data})
    dataset, splits = api.load_data(base)
    data = slice_training(api.training_data(dataset, splits, 2000, 0), args.train_images, 1000, 0)
    for text in args.variant:
        name, changes = parse_variant(text)
        config = preset_config(
            args.preset,
            {"train.epochs": args.epochs, "train.eval_every": args.epochs, **changes},
        )
        method = create_method(config, data.num_classes, dataset.image_shape)
        result = Trainer(config.train, config.seed).fit(method, data, progress=False)
        last = result.history[-1]
        record = {
            "variant": name,
            "changes": changes,
            "epochs": args.epochs,
            "train_seconds": round(result.train_seconds, 1),
            "val_accuracy": last.get("val_accuracy"),
            "val_map_all": round(last["val_map_all"], 4),
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
