"""The CNN backbone family shared by every deep hashing method.

One family for all methods keeps the comparison fair: methods differ only in
their heads and losses. The residual design follows the fast CIFAR-10 recipes
(conv -> max-pool -> BatchNorm -> ReLU per stage, then residual blocks), which
are cheap on a CPU because pooling early shrinks the spatial work.
"""

from __future__ import annotations

import torch
from torch import nn

from hashsearch.config import BackboneConfig
from hashsearch.registry import Registry

BACKBONES: Registry[type[nn.Module]] = Registry("backbone")


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)
    )


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU layers with an identity shortcut."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(width, width), conv_bn_relu(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Stage(nn.Module):
    """Widen, halve the resolution, then refine with residual blocks."""

    def __init__(self, c_in: int, c_out: int, blocks: int) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.BatchNorm2d(c_out),
            nn.ReLU(True),
        )
        self.blocks = nn.Sequential(*(ResidualBlock(c_out) for _ in range(blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.down(x))


@BACKBONES.register("resnet")
class ResNetBackbone(nn.Module):
    """Images (B, C, H, W) -> pooled features (B, widths[-1]).

    The pooled feature is the "intermediate layer of the encoder" that stage 2
    re-ranks with (design document, section 3.3): it sits before the hash layer,
    so it keeps information that binarisation throws away.
    """

    def __init__(self, in_channels: int, config: BackboneConfig) -> None:
        super().__init__()
        widths, stem_width = config.widths, config.widths[0] // 2
        self.stem = conv_bn_relu(in_channels, stem_width)
        c_ins = (stem_width, *widths[:-1])
        self.stages = nn.Sequential(
            *(
                Stage(c_in, c_out, n)
                for c_in, c_out, n in zip(c_ins, widths, config.blocks, strict=True)
            )
        )
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return torch.amax(x, dim=(2, 3))


def create_backbone(in_channels: int, config: BackboneConfig) -> nn.Module:
    return BACKBONES.get(config.name)(in_channels, config)
