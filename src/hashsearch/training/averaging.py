"""The exponential moving average of a model's weights (`train.ema`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.optim.swa_utils import AveragedModel

from hashsearch.methods.base import HashingMethod


def weight_average(method: HashingMethod, decay: float) -> AveragedModel | None:
    """An exponential moving average of `method`'s weights and buffers (BatchNorm
    statistics too, so the average is scored with statistics that match it); None at
    decay 0.

    The decay warms up as timm's does, min(decay, (1 + n) / (10 + n)) after n steps,
    so that the first steps' weights, far from any good model, fade out of the average
    even in a run not much longer than 1 / (1 - decay) steps. Integer buffers (a
    BatchNorm step count) are copied, not averaged.
    """
    if decay == 0:
        return None

    @torch.no_grad()
    def blend(
        averages: Sequence[torch.Tensor], currents: Sequence[torch.Tensor], n: torch.Tensor | int
    ) -> None:
        rate = 1 - min(decay, (1 + float(n)) / (10 + float(n)))
        for average, current in zip(averages, currents, strict=True):
            if average.is_floating_point():
                average.lerp_(current, rate)
            else:
                average.copy_(current)

    return AveragedModel(method, multi_avg_fn=blend, use_buffers=True)
