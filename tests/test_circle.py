"""Circle helpers: period from harmonics, holes, coverage."""

from __future__ import annotations

import torch

from equifind._circle import coverage, harmonic_period, holes


def test_harmonic_period():
    grid = torch.arange(64) * 360.0 / 64
    for k, period in [(1, 360.0), (2, 180.0), (4, 90.0)]:
        curve = torch.cos(torch.deg2rad(grid * k)).clamp_min(0) ** 2
        power = torch.fft.rfft(curve - curve.mean()).abs().square()
        assert harmonic_period(power, 64) == (k, period)


def test_holes():
    assert holes([0.0, 45.0, 90.0, 180.0, 225.0, 270.0, 315.0], 360.0) == [135.0]
    assert holes([0.0, 90.0, 180.0, 270.0], 360.0) == []
    assert holes([10.0], 360.0) == []
    # Nearly coincident members do not flood the list.
    assert len(holes([0.0, 1e-6, 2e-6], 90.0)) <= 6


def test_coverage():
    assert coverage([0.0, 90.0, 180.0, 270.0], 360.0) == 1.0
    assert abs(coverage([5.0, 5.0, 5.0, 5.0], 360.0) - 0.25) < 1e-9
    assert 0.25 < coverage([0.0, 90.0, 180.0], 360.0) <= 1.0
