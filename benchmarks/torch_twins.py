"""PyTorch twins of dltk2's 3D residual network and asymmetric residual U-Net, for the benchmarks.

Layer for layer what :mod:`dltk2.networks.layers`, :func:`dltk2.networks.resnet.resnet_3d` and
:func:`dltk2.networks.unet.asymmetric_residual_unet_3d` build, so that the two frameworks do the same
arithmetic (``training_step.py`` prints both parameter counts):

* pre-activation residual unit: batch norm, ReLU6, convolution, twice; a strided first convolution
  has a kernel twice the stride (4 for stride 2) with Keras' 'same' padding, which for even sizes is
  one voxel on each side; the shortcut is max-pooled by the stride and zero-padded in channels (or
  projected 1x1x1 when channels shrink);
* convolutions without bias (batch norm follows), batch norm with Keras' epsilon 1e-3 and momentum;
* the U-Net's upsampling is linear with half-voxel centres (``align_corners=False``), as
  :class:`dltk2.networks.layers.UpsampleAndConcat3D`.

Tensors are (batch, channels, z, y, x), PyTorch's layout.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _triple(value: int) -> tuple[int, int, int]:
    return (value, value, value)


def _norm(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-3, momentum=0.01)  # Keras: epsilon 1e-3, momentum 0.99


class ResidualUnit3D(nn.Module):
    def __init__(self, in_filters: int, out_filters: int, stride: int = 1) -> None:
        super().__init__()
        kernel = 2 * stride if stride > 1 else 3
        self.in_filters, self.out_filters, self.stride = in_filters, out_filters, stride
        self.norm_0 = _norm(in_filters)
        self.conv_0 = nn.Conv3d(in_filters, out_filters, kernel, stride=stride, padding=(kernel - stride) // 2,
                                bias=False)
        self.norm_1 = _norm(out_filters)
        self.conv_1 = nn.Conv3d(out_filters, out_filters, 3, padding=1, bias=False)
        self.projection = (nn.Conv3d(in_filters, out_filters, 1, bias=False) if in_filters > out_filters else None)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        shortcut = F.max_pool3d(inputs, self.stride) if self.stride > 1 else inputs
        x = self.conv_0(F.relu6(self.norm_0(inputs)))
        x = self.conv_1(F.relu6(self.norm_1(x)))
        if self.in_filters < self.out_filters:
            extra = self.out_filters - self.in_filters
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, 0, extra // 2, extra - extra // 2))
        elif self.projection is not None:
            shortcut = self.projection(shortcut)
        return x + shortcut


def _encoder(filters: Sequence[int], strides: Sequence[int], units: int) -> tuple[nn.Module, nn.ModuleList]:
    stem = nn.Conv3d(1, filters[0], 3, stride=strides[0], padding=1, bias=False)
    scales = nn.ModuleList()
    for scale in range(1, len(filters)):
        blocks = [ResidualUnit3D(filters[scale - 1] if unit == 0 else filters[scale], filters[scale],
                                 strides[scale] if unit == 0 else 1) for unit in range(units)]
        scales.append(nn.Sequential(*blocks))
    return stem, scales


class ResNet3D(nn.Module):
    """Twin of ``resnet_3d(num_classes, num_res_units=units, filters, strides)``."""

    def __init__(self, filters: Sequence[int], strides: Sequence[int], units: int, num_classes: int) -> None:
        super().__init__()
        self.stem, self.scales = _encoder(filters, strides, units)
        self.norm = _norm(filters[-1])
        self.dense = nn.Linear(filters[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for scale in self.scales:
            x = scale(x)
        x = F.relu6(self.norm(x)).mean(dim=(2, 3, 4))
        return self.dense(x)


class AsymmetricResidualUNet3D(nn.Module):
    """Twin of ``asymmetric_residual_unet_3d(num_classes, num_res_units=units, filters, strides)``."""

    def __init__(self, filters: Sequence[int], strides: Sequence[int], units: int, num_classes: int) -> None:
        super().__init__()
        self.strides = list(strides)
        self.stem, self.scales = _encoder(filters, strides, units)
        self.decoder = nn.ModuleList()
        for scale in range(len(filters) - 2, -1, -1):
            self.decoder.append(ResidualUnit3D(filters[scale + 1] + filters[scale], filters[scale]))
        self.norm = _norm(filters[0])
        self.logits = nn.Conv3d(filters[0], num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = [x]
        for scale in self.scales:
            x = scale(x)
            skips.append(x)
        for index, unit in enumerate(self.decoder):
            skip = skips[len(skips) - 2 - index]
            x = F.interpolate(x, scale_factor=self.strides[len(skips) - 1 - index], mode="trilinear",
                              align_corners=False)
            x = unit(torch.cat([x[:, :, : skip.shape[2], : skip.shape[3], : skip.shape[4]], skip], dim=1))
        return self.logits(F.relu6(self.norm(x)))
