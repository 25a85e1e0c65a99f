"""Small hand-made networks for exact tests."""

from __future__ import annotations

import torch
from torch import nn


class Counter(nn.Module):
    """Identity that counts its calls (to prove that early stop skips later layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def tiny_net(seed: int = 0) -> nn.Sequential:
    """conv 3→4 (3×3) · relu · conv 4→6 (3×3, stride 2) · relu · counter · conv 6→5 (3×3) · counter.

    Analytic receptive fields of the centre units: 3 (layer "0"), 5 (layer "2") and 9 (layer "5").
    """
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        Counter(),
        nn.Conv2d(6, 5, 3, padding=1),
        Counter(),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net
