"""The Caffe BVLC GoogLeNet (a real InceptionV1), with lucid layer names.

Parameter names follow lucent's InceptionV1 (``conv2d0_pre_relu_conv`` …), so
``bvlc_googlenet.pth`` loads with ``strict=True``. The modules named
``conv2d0`` … ``conv2d2`` are the ReLUs after those convolutions and the
modules named ``mixed3a`` … ``mixed5b`` concatenate a block's four branches,
so a forward hook on them records the lucid layers.

Caffe conventions (see ``shared/weights/README.md``): ReLU after every conv;
3×3 stride-2 max pools with ``ceil_mode=True``; LRN(5, 1e-4, 0.75, 1) after
the first pool and after conv2d2's ReLU; the pool branch of a block is a
3×3 stride-1 pad-1 max pool then a 1×1 conv. Input: BGR, 0..255, minus the
mean (104, 117, 123).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GoogLeNetBVLC", "BLOCK_WIDTHS", "CAFFE_MEAN_BGR"]

CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)

#: Block widths: (1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce).
BLOCK_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}

#: Blocks followed by a 3×3 stride-2 max pool.
_POOL_AFTER = {"3b", "4e"}


class _Concat(nn.Module):
    """Concatenates a block's branch outputs along channels (the lucid mixed layer)."""

    def forward(self, branches: list[Tensor]) -> Tensor:
        return torch.cat(branches, dim=1)


class _LRN(nn.Module):
    """Caffe's across-channel local response normalisation (size 5, alpha 1e-4, beta 0.75, k 1)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=1.0)


def _pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)


class GoogLeNetBVLC(nn.Module):
    """BVLC GoogLeNet. ``forward`` maps Caffe-preprocessed ``Tensor[N, 3, H, W]`` to class logits ``[N, 1000]``."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv2d0_pre_relu_conv = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.conv2d0 = nn.ReLU()
        self.localresponsenorm0 = _LRN()
        self.conv2d1_pre_relu_conv = nn.Conv2d(64, 64, 1)
        self.conv2d1 = nn.ReLU()
        self.conv2d2_pre_relu_conv = nn.Conv2d(64, 192, 3, padding=1)
        self.conv2d2 = nn.ReLU()
        self.localresponsenorm1 = _LRN()
        in_ch = 192
        for block, (w1, w3r, w3, w5r, w5, wp) in BLOCK_WIDTHS.items():
            p = f"mixed{block}"
            setattr(self, f"{p}_1x1_pre_relu_conv", nn.Conv2d(in_ch, w1, 1))
            setattr(self, f"{p}_3x3_bottleneck_pre_relu_conv", nn.Conv2d(in_ch, w3r, 1))
            setattr(self, f"{p}_3x3_pre_relu_conv", nn.Conv2d(w3r, w3, 3, padding=1))
            setattr(self, f"{p}_5x5_bottleneck_pre_relu_conv", nn.Conv2d(in_ch, w5r, 1))
            setattr(self, f"{p}_5x5_pre_relu_conv", nn.Conv2d(w5r, w5, 5, padding=2))
            setattr(self, f"{p}_pool_reduce_pre_relu_conv", nn.Conv2d(in_ch, wp, 1))
            setattr(self, p, _Concat())
            in_ch = w1 + w3 + w5 + wp
        self.softmax2_pre_activation_matmul = nn.Linear(in_ch, num_classes)

    def _block(self, x: Tensor, block: str) -> Tensor:
        p = f"mixed{block}"

        def conv(branch: str, t: Tensor) -> Tensor:
            return F.relu(getattr(self, f"{p}_{branch}_pre_relu_conv")(t))

        b1 = conv("1x1", x)
        b3 = conv("3x3", conv("3x3_bottleneck", x))
        b5 = conv("5x5", conv("5x5_bottleneck", x))
        bp = conv("pool_reduce", F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        return getattr(self, p)([b1, b3, b5, bp])

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2d0(self.conv2d0_pre_relu_conv(x))
        x = self.localresponsenorm0(_pool(x))
        x = self.conv2d1(self.conv2d1_pre_relu_conv(x))
        x = self.conv2d2(self.conv2d2_pre_relu_conv(x))
        x = _pool(self.localresponsenorm1(x))
        for block in BLOCK_WIDTHS:
            x = self._block(x, block)
            if block in _POOL_AFTER:
                x = _pool(x)
        x = x.mean(dim=(2, 3))
        return self.softmax2_pre_activation_matmul(x)
