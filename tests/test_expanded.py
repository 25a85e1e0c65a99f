"""Expanded weights: the linear view of a network between two layers, with known answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import equifind as ef
from equifind import circuits
from equifind.expanded import expanded_weights
from nets import tiny_net
from planted_circuits import MixedBlock, mixed_block_expected, planted


def load(net: nn.Module, name: str = "planted") -> ef.Model:
    return ef.load_model(net, name=name, device="cpu")


def test_expanded_weights_are_importable_where_they_were():
    assert ef.expanded_weights is expanded_weights is circuits.expanded_weights


def test_expanded_weights_of_adjacent_convs_are_the_kernels():
    m = load(tiny_net(), "tiny")
    assert torch.equal(expanded_weights(m, "1", "2"), m.module[2].weight.detach())
    sub = expanded_weights(m, "1", "2", target_units=[5, 0], source_units=[3, 1])
    assert torch.equal(sub, m.module[2].weight.detach()[[5, 0]][:, [3, 1]])
    assert torch.equal(expanded_weights(m, "1", "2", batch_size=2), m.module[2].weight.detach())
    p = planted("eq→eq")
    mp = load(p.net)
    assert torch.equal(expanded_weights(mp, "2", "3"), p.net[3].weight.detach())
    # through a ReLU, a stride-2 conv and an identity: the kernels of conv "2" composed with conv "0"
    w = expanded_weights(m, "0", "5")
    assert w.shape == (5, 4, 7, 7)


def test_expanded_weights_through_a_mixed_block_match_a_direct_composition():
    block = MixedBlock()
    m = load(block, "mixed")
    expected = mixed_block_expected(block)
    torch.testing.assert_close(expanded_weights(m, "stem", "mixed"), expected, atol=1e-5, rtol=1e-4)
    # unit subsets keep the same window
    got = expanded_weights(m, "stem", "mixed", target_units=[0, 13], source_units=[2])
    torch.testing.assert_close(got, expected[[0, 13]][:, [2]], atol=1e-5, rtol=1e-4)


def test_pointwise_weights_are_the_1x1_and_pool_paths():
    # branches: 0-3 1×1, 4-8 1×1·3×3, 9-11 1×1·5×5, 12-13 3×3 pool·1×1 (see MixedBlock)
    m = load(MixedBlock(), "mixed")
    full = expanded_weights(m, "stem", "mixed")
    pointwise = expanded_weights(m, "stem", "mixed", pointwise=True)
    share = pointwise.square().sum((1, 2, 3)) / full.square().sum((1, 2, 3))
    torch.testing.assert_close(pointwise[[0, 1, 2, 3, 12, 13]], full[[0, 1, 2, 3, 12, 13]])
    assert share[4:12].abs().max() < 1e-12 and (share[[0, 1, 2, 3, 12, 13]] > 1 - 1e-6).all()


@pytest.mark.slow
def test_expanded_weights_on_googlenet(googlenet):
    w = expanded_weights(googlenet, "conv2d1", "conv2d2")  # all 192 units
    assert torch.equal(w, googlenet.module.conv2d2_pre_relu_conv.weight.detach())
    # conv2d2 -> LRN (identity) -> 3x3/2 max pool (average) -> mixed3a: a 1x1-branch unit and a 5x5-branch unit
    w = expanded_weights(googlenet, "conv2d2", "mixed3a", target_units=[3, 200])
    assert w.shape == (2, 192, 11, 11)
    net = googlenet.module
    one = net.mixed3a_1x1_pre_relu_conv.weight.detach()[3, :, 0, 0]
    expected_1x1 = torch.zeros(192, 11, 11)
    expected_1x1[:, 4:7, 4:7] = one[:, None, None] / 9
    torch.testing.assert_close(w[0], expected_1x1, atol=1e-6, rtol=0)
    k5 = torch.einsum("myx,ms->syx", net.mixed3a_5x5_pre_relu_conv.weight.detach()[200 - 192],
                      net.mixed3a_5x5_bottleneck_pre_relu_conv.weight.detach()[:, :, 0, 0])
    expected_5x5 = nn.functional.conv_transpose2d(k5[:, None], torch.ones(1, 1, 3, 3) / 9, stride=2)[:, 0]
    torch.testing.assert_close(w[1], expected_5x5, atol=1e-5, rtol=1e-4)



# --------------------------------------------------------------------------- errors


def test_bad_input_raises_clear_errors():
    p = planted("eq→eq", seed=4)
    m = load(p.net)
    with pytest.raises(ValueError, match=r"'3'.*before.*'2'"):
        expanded_weights(m, "3", "2")
    with pytest.raises(IndexError, match="99"):
        expanded_weights(m, "2", "3", target_units=[99])
    with pytest.raises(KeyError, match="conv9"):
        expanded_weights(m, "conv9", "3")
    with pytest.raises(ValueError, match="at least one unit"):
        expanded_weights(m, "2", "3", target_units=[])
    with pytest.raises(ValueError, match="equifind.Model"):
        expanded_weights(p.net, "2", "3")
    with pytest.raises(ValueError, match="batch_size"):
        expanded_weights(m, "2", "3", batch_size=0)


class TwoBranches(nn.Module):
    """Two convs of the same input: the second does not depend on the first."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(8)
        self.a = nn.Conv2d(3, 2, 3, padding=1)
        self.b = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return self.a(x) + self.b(x)


def test_a_target_that_does_not_depend_on_the_source_is_an_error_and_leaves_no_hook():
    m = load(TwoBranches(), "branches")
    with pytest.raises(ValueError, match="does not depend"):
        expanded_weights(m, "a", "b")
    assert not math.isnan(float(expanded_weights(m, "pool", "b").sum()))  # the model still works


def test_expanded_weights_see_through_lucents_redirected_relu():
    # lucent's ReLU is an autograd.Function whose backward scales negative inputs' gradients by 0.1;
    # the linear view must replace it by the identity (conv2d2's biases are half negative here).
    lucent = pytest.importorskip("lucent.modelzoo.inceptionv1.InceptionV1")
    net = lucent.InceptionV1(pretrained=False)
    m = load(net, "inceptionv1_random")
    units = list(range(8))
    w = expanded_weights(m, "conv2d1", "conv2d2", target_units=units)
    assert (net.conv2d2_pre_relu_conv.bias[units] < 0).any()
    torch.testing.assert_close(w, net.conv2d2_pre_relu_conv.weight.detach()[units], atol=1e-6, rtol=0)
