"""Clean mAP of a trained run after re-estimating its BatchNorm statistics on clean images.

    python benchmarks/bn_reestimate.py runs/robust-full48-seed1

Why: a model trained partly on corrupted images keeps running BatchNorm statistics
of that mix; if they were what cost clean mAP, statistics of clean images alone
would win it back (docs/robustness.md). The running statistics are reset, 10,000
clean training images and their mirror images pass through the model in train
mode without gradients, and the query split is scored against the database split
(stage 1 and two-stage mAP@all, as `hashsearch evaluate`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from hashsearch import api

SAMPLE = 10_000
BATCH = 500


def main() -> None:
    run = api.load_run(Path(sys.argv[1]))
    dataset, splits = api.load_data(run.config)
    model = run.model
    rows = np.random.default_rng(0).choice(splits.get("train"), SAMPLE, replace=False)
    images = torch.from_numpy(np.ascontiguousarray(dataset.images[rows])).permute(0, 3, 1, 2)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over every batch
    model.train()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        for start in range(0, len(images), BATCH):
            for batch in (images[start : start + BATCH], images[start : start + BATCH].flip(3)):
                model(model.normalize(batch).contiguous(memory_format=torch.channels_last))
    model.eval()
    report = api.evaluate(run)
    print(
        json.dumps(
            {
                "run": sys.argv[1],
                "stage1_map_all": report["stage1"]["map_all"],
                "two_stage_map_all": report["two_stage"]["map_all"],
            }
        )
    )


if __name__ == "__main__":
    main()
