"""The CNN backbone family shared by every deep hashing method.

One family for all methods keeps the comparison fair: methods differ only in
their heads and losses. The residual design follows the fast CIFAR-10 recipes
(conv -> max-pool -> BatchNorm -> ReLU per stage, then residual blocks), which
are cheap on a CPU because pooling early shrinks the spatial work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hashsearch.config import BackboneConfig
from hashsearch.errors import HashsearchError
from hashsearch.registry import Registry

BACKBONES: Registry[type[Backbone]] = Registry("backbone")


class Backbone(nn.Module):
    """Images (B, C, H, W) -> pooled features (B, out_dim).

    The pooled feature is the "intermediate layer of the encoder" that stage 2
    re-ranks with (design document, section 3.3): it sits before the hash layer,
    so it keeps information that binarisation throws away.
    """

    out_dim: int

    def fit(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation from normalised training images; none by default."""

    def stem_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters of the layers that read the image itself."""
        raise HashsearchError(
            f"backbone {type(self).__name__} names no stem to freeze; unset train.stem_epochs"
        )

    def train_stem(self, trainable: bool) -> None:
        """Let the stem train or hold it fixed (`train.stem_epochs`).

        While it is fixed, backpropagation ends at the first layer after the stem:
        the gradient with respect to that layer's full-resolution input, the
        costliest input gradient of the network, is never computed.
        """
        for parameter in self.stem_parameters():
            parameter.requires_grad_(trainable)


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
class ResNetBackbone(Backbone):
    """A ReLU stem, then per width a downsampling stage with `blocks` residual blocks."""

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

    def stem_parameters(self) -> list[nn.Parameter]:
        return list(self.stem.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return torch.amax(x, dim=(2, 3))


class PatchWhitening(nn.Module):
    """A k x k convolution whose filters whiten the image patches of the training data.

    `fit` sets the filters to the eigenvectors of the patch covariance scaled by
    1/sqrt(eigenvalue), each with its negation (so that a following GELU keeps
    both signs); they stay fixed while the bias trains. The first layer then
    starts from decorrelated inputs, which the fast CIFAR-10 recipes (airbench,
    hlb-CIFAR10) found to save several epochs.
    """

    def __init__(self, in_channels: int, kernel: int = 2, eps: float = 5e-4) -> None:
        super().__init__()
        self.kernel, self.eps = kernel, eps
        self.out_channels = 2 * in_channels * kernel * kernel
        self.conv = nn.Conv2d(in_channels, self.out_channels, kernel)
        self.conv.weight.requires_grad_(False)
        nn.init.zeros_(self.conv.bias)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, chunk: int = 512) -> None:
        """Args: x: (N, C, H, W) normalised training images (a few thousand suffice)."""
        k, c = self.kernel, x.shape[1]
        total = torch.zeros(c * k * k, dtype=torch.float64)
        outer = torch.zeros(c * k * k, c * k * k, dtype=torch.float64)
        count = 0
        for start in range(0, len(x), chunk):
            patches = x[start : start + chunk].unfold(2, k, 1).unfold(3, k, 1)
            patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
            total += patches.sum(dim=0)
            outer += patches.T @ patches
            count += len(patches)
        mean = total / count
        covariance = outer / count - torch.outer(mean, mean)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T / (eigenvalues[:, None] + self.eps).sqrt()
        filters = filters.reshape(c * k * k, c, k, k)
        self.conv.weight.copy_(torch.cat((filters, -filters)).to(self.conv.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class HalvingMaxPool(nn.Module):
    """2x2 max-pooling, skipped once a map is a single pixel wide (tiny images, many groups)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2) if min(x.shape[-2:]) >= 2 else x


def conv_bn_gelu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]


class ConvGroup(nn.Sequential):
    """conv -> 2x2 max-pool -> BN -> GELU, then `extra` conv-BN-GELU layers at that size.

    Every convolution starts as an identity on its first input channels (Dirac
    init), so the deep net starts close to a shallow one.
    """

    def __init__(self, c_in: int, c_out: int, extra: int) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            HalvingMaxPool(),
            nn.BatchNorm2d(c_out),
            nn.GELU(),
        ]
        for _ in range(extra):
            layers += conv_bn_gelu(c_out, c_out)
        super().__init__(*layers)
        for conv in (m for m in self if isinstance(m, nn.Conv2d)):
            n = min(conv.in_channels, conv.out_channels)
            nn.init.dirac_(conv.weight[:n])


@BACKBONES.register("whitened")
class WhitenedConvNet(Backbone):
    """Patch-whitening stem, then one `ConvGroup` per width, global max-pool.

    The VGG-like shape of the airbench CIFAR-10 network (widths 64/256/256, one
    extra conv per group): no residual additions, pooling right after the first
    conv of a group, so most of the work runs at low resolution. On 32x32
    images the groups see 31, 15 and 7 pixels a side.
    """

    def __init__(self, in_channels: int, config: BackboneConfig) -> None:
        super().__init__()
        self.whiten = PatchWhitening(in_channels, eps=config.whiten_eps)
        c_ins = (self.whiten.out_channels, *config.widths[:-1])
        self.groups = nn.Sequential(
            *(
                ConvGroup(c_in, c_out, extra)
                for c_in, c_out, extra in zip(c_ins, config.widths, config.blocks, strict=True)
            )
        )
        self.out_dim = config.widths[-1]

    def fit(self, x: torch.Tensor) -> None:
        self.whiten.fit(x)

    def stem_parameters(self) -> list[nn.Parameter]:
        return [self.whiten.conv.bias]  # its filters never train

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(F.gelu(self.whiten(x)))
        return torch.amax(x, dim=(2, 3))


@BACKBONES.register("dsh")
class DSHNet(Backbone):
    """The network of the DSH paper (Liu et al., CVPR 2016, section 4.1), for the fidelity check.

    Three 5x5 conv layers of `widths` (the paper: 32, 32, 64) with 3x3 stride-2 pooling
    (max after the first, average after the others, ReLU), as in Caffe's CIFAR-10
    "quick" net it builds on, then a 500-unit fully connected layer with ReLU: the
    feature that the hash layer (the paper's last FC layer) reads. `blocks` is unused.
    """

    hidden = 500

    def __init__(self, in_channels: int, config: BackboneConfig) -> None:
        super().__init__()
        if len(config.widths) != 3:
            raise HashsearchError(f"the dsh backbone has 3 conv layers; got widths {config.widths}")
        c1, c2, c3 = config.widths
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(c2, c3, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.AdaptiveAvgPool2d(4),  # 32x32 inputs are 4x4 here already
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(c3 * 16, self.hidden), nn.ReLU(inplace=True))
        self.out_dim = self.hidden

    def stem_parameters(self) -> list[nn.Parameter]:
        return list(self.convs[0].parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x))


def create_backbone(in_channels: int, config: BackboneConfig) -> Backbone:
    return BACKBONES.get(config.name)(in_channels, config)
