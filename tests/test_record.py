"""record(): hooks, reductions, early stop, streaming, and the hook-leak guard itself."""

from __future__ import annotations

import pytest
import torch

import equifind as ef
from hookcheck import leaks, track_hooks
from nets import tiny_net


@pytest.fixture
def tiny():
    model = ef.load_model(tiny_net(), name="tiny", device="cpu")
    assert model.layers  # the one shape-finding pass runs here, not inside the tests
    for layer in model.layers:  # and the receptive fields a small image is checked against (cached)
        model.receptive_field(layer)
    model.module[4].calls = model.module[6].calls = 0
    return model


def full_maps(model, x):
    """Layer outputs of a plain full pass, computed without equifind."""
    net, maps, h = model.module, {}, x
    for i, layer in enumerate(net):
        h = layer(h)
        maps[str(i)] = h
    return maps


@pytest.mark.parametrize("at", ["center", "max", "mean", "map", (3, 5)])
def test_reductions_match_a_plain_pass(tiny, at):
    x = torch.rand(4, 3, 15, 17)  # non-square: the centre's x must come from the width
    with torch.no_grad():
        maps = full_maps(tiny, x)
        with ef.record(tiny, ["0", "5"], at=at) as rec:
            tiny(x)
    for layer in ["0", "5"]:
        m = maps[layer]
        expected = {
            "center": m[:, :, (m.shape[2] - 1) // 2, (m.shape[3] - 1) // 2],
            "max": m.amax(dim=(2, 3)),
            "mean": m.mean(dim=(2, 3)),
            "map": m,
        }.get(at) if isinstance(at, str) else m[:, :, 3, 5]
        torch.testing.assert_close(rec[layer], expected)
        assert not rec[layer].requires_grad


def test_early_stop_skips_later_layers_and_matches_full_pass(tiny):
    x = torch.rand(2, 3, 16, 16)
    counter_mid, counter_end = tiny.module[4], tiny.module[6]
    with ef.record(tiny, ["2"], at="map") as rec:
        out = tiny(x)
    assert out is None
    assert counter_mid.calls == 0 and counter_end.calls == 0  # nothing after layer "2" ran
    with ef.record(tiny, ["2"], at="map", stop_early=False) as full:
        out = tiny(x)
    assert out is not None and counter_end.calls == 1
    torch.testing.assert_close(rec["2"], full["2"], rtol=0, atol=0)


def test_nested_recordings_stop_after_the_deepest(tiny):
    x = torch.rand(2, 3, 16, 16)
    with ef.record(tiny, ["0"]) as shallow, ef.record(tiny, ["5"]) as deep:
        tiny(x)
    assert tiny.module[4].calls == 1 and tiny.module[6].calls == 0
    assert shallow["0"].shape == (2, 4) and deep["5"].shape == (2, 5)


def test_detach_false_keeps_the_graph(tiny):
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    with ef.record(tiny, "2", detach=False) as rec:
        tiny.forward_preprocessed(x)
    rec["2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_recording_before_a_pass_and_unrecorded_layer(tiny):
    with ef.record(tiny, ["2"]) as rec:
        with pytest.raises(KeyError, match="no activation yet"):
            rec["2"]
        tiny(torch.rand(1, 3, 8, 8))
    with pytest.raises(KeyError, match="was not recorded"):
        rec["0"]
    assert list(rec) == ["2"] and len(rec) == 1


def test_bad_arguments(tiny):
    with pytest.raises(KeyError, match="unknown layer"):
        with ef.record(tiny, ["2", "nope"]):
            pass
    with pytest.raises(ValueError, match="at="):
        with ef.record(tiny, ["2"], at="middle"):
            pass
    with pytest.raises(ValueError, match="at least one layer"):
        with ef.record(tiny, []):
            pass
    with pytest.raises(ValueError, match="equifind.Model"):
        with ef.record(tiny.module, ["2"]):
            pass


def test_failing_calls_leave_no_hooks(tiny):
    # Position outside the map: raised inside the forward pass; the hooks must still go.
    with pytest.raises(IndexError, match="outside"):
        with ef.record(tiny, ["5"], at=(50, 50)):
            tiny(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        with ef.record(tiny, ["5"]):
            tiny(torch.full((1, 3, 8, 8), 3.0))
    for module in tiny.module.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_record_batched_matches_one_pass(tiny):
    x = torch.rand(10, 3, 16, 16)
    out = ef.record_batched(tiny, x, ["0", "5"], batch_size=3)
    with torch.no_grad(), ef.record(tiny, ["0", "5"]) as rec:
        tiny(x)
    for layer in ["0", "5"]:
        torch.testing.assert_close(out[layer], rec[layer])
    with pytest.raises(ValueError, match="batch_size"):
        ef.record_batched(tiny, x, "0", batch_size=0)


def test_record_batched_memory_is_bounded_by_the_batch(tiny):
    seen = []
    tiny.module[0].register_forward_pre_hook(lambda m, inp: seen.append(inp[0].shape[0]))
    try:
        ef.record_batched(tiny, torch.rand(10, 3, 8, 8), "5", batch_size=4)
    finally:
        tiny.module[0]._forward_pre_hooks.clear()
    assert seen == [4, 4, 2]


def test_hook_guard_catches_a_planted_leak():
    net = tiny_net()
    with track_hooks() as touched:
        net[2].register_forward_hook(lambda *a: None)
        net[3].register_forward_pre_hook(lambda *a: None)
    found = leaks(touched)
    assert len(found) == 2 and any("Conv2d" in f for f in found) and any("ReLU" in f for f in found)


def test_hook_guard_fixture_fails_a_leaking_test(pytester):
    """Run a leaking test under the project's conftest: the autouse guard must fail it."""
    from pathlib import Path

    here = Path(__file__).parent
    pytester.makeconftest((here / "conftest.py").read_text())
    pytester.makepyfile(hookcheck=(here / "hookcheck.py").read_text())
    pytester.makepyfile(
        test_leak="""
        import torch
        LEAKY, CLEAN = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)  # outlive the tests, like model fixtures
        def test_leaks():
            LEAKY.register_forward_hook(lambda *a: None)
        def test_clean():
            h = CLEAN.register_forward_pre_hook(lambda *a: None)
            h.remove()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # isolated from this run's guard
    result.assert_outcomes(passed=2, errors=1)  # the leaking test passes, then its teardown fails
    result.stdout.fnmatch_lines(["*hooks left on modules after the test*Linear*"])
