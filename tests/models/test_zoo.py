"""load_model: the zoo, weight lookup, any nn.Module, bad input."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import equifind as ef
from equifind.models.zoo import INCEPTION_LAYERS
from nets import tiny_net

IMAGENET_CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def chelsea() -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float().div(255)[None]
    return F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["googlenet", "squeezenet", "efficientnet"])
def test_real_models_see_a_cat_in_chelsea(fixture, chelsea, request):
    model = request.getfixturevalue(fixture)
    with torch.no_grad():
        logits = model(chelsea)
    top5 = set(logits.topk(5, dim=1).indices[0].tolist())
    assert top5 & IMAGENET_CATS, f"{model.name} top-5 {sorted(top5)} has no cat class"


def test_unknown_model_name_lists_closest():
    with pytest.raises(KeyError, match="googlenet_bvlc"):
        ef.load_model("googlenet_bvcl")


def test_bad_model_argument():
    with pytest.raises(ValueError, match="model name or an nn.Module"):
        ef.load_model(42)


def test_missing_weights_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUIFIND_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(ef.WeightsNotFoundError) as err:
        ef.load_model("googlenet_bvlc")
    msg = str(err.value)
    assert str(tmp_path / "bvlc_googlenet.pth") in msg
    assert "EQUIFIND_WEIGHTS_DIR" in msg and "weights=" in msg


def test_explicit_missing_weights_are_not_replaced_by_the_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUIFIND_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "bvlc_googlenet.pth").write_bytes(b"")  # would be found through the env
    with pytest.raises(ef.WeightsNotFoundError, match="nope.pth"):
        ef.load_model("googlenet_bvlc", weights=tmp_path / "nope.pth")


@pytest.fixture
def no_inception_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv("EQUIFIND_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path


def test_inceptionv1_offline_raises_weights_not_found(no_inception_anywhere, monkeypatch):
    monkeypatch.setenv("EQUIFIND_OFFLINE", "1")
    with pytest.raises(ef.WeightsNotFoundError) as err:
        ef.load_model("inceptionv1", device="cpu")
    msg = str(err.value)
    assert "EQUIFIND_WEIGHTS_DIR" in msg
    assert str(no_inception_anywhere / "torch_home" / "hub" / "checkpoints" / "inception5h.pth") in msg
    assert "download" in msg and "weights=" in msg


def test_inceptionv1_failed_download_raises_weights_not_found(no_inception_anywhere, monkeypatch):
    monkeypatch.delenv("EQUIFIND_OFFLINE", raising=False)

    def no_network(url, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(ef.WeightsNotFoundError, match="inception5h.pth"):
        ef.load_model("inceptionv1", device="cpu")


@pytest.fixture(scope="module")
def inception_state(tmp_path_factory):
    from lucent.modelzoo.inceptionv1.InceptionV1 import InceptionV1

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "inception5h.pth"
    torch.save(InceptionV1().state_dict(), path)
    return path


@pytest.mark.parametrize("where", ["weights", "env", "hub_cache"])
def test_inceptionv1_loads_from_local_file(where, inception_state, no_inception_anywhere, monkeypatch):
    monkeypatch.setenv("EQUIFIND_OFFLINE", "1")
    kwargs = {}
    if where == "weights":
        kwargs["weights"] = inception_state
    elif where == "env":
        monkeypatch.setenv("EQUIFIND_WEIGHTS_DIR", str(inception_state.parent))
    else:
        cache = no_inception_anywhere / "torch_home" / "hub" / "checkpoints"
        cache.mkdir(parents=True)
        (cache / "inception5h.pth").write_bytes(inception_state.read_bytes())
    m = ef.load_model("inceptionv1", device="cpu", **kwargs)
    assert m.layers == INCEPTION_LAYERS
    assert m.num_units("mixed3b") == 480 and m.num_units("mixed4a") == 508
    expected = torch.load(inception_state)["conv2d0_pre_relu_conv.weight"]
    assert torch.equal(m.module.conv2d0_pre_relu_conv.weight, expected)
    with torch.no_grad(), ef.record(m, ["conv2d2"]) as rec:
        m(torch.rand(2, 3, 64, 64))
    assert rec["conv2d2"].shape == (2, 192)
    # Lucent's rendering convention: RGB, 0..255, minus 117.
    assert torch.allclose(m.preprocess(torch.ones(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 138.0))


def test_any_module_uses_named_module_paths():
    m = ef.load_model(tiny_net(), name="tiny", device="cpu")
    assert m.name == "tiny"
    assert m.layers == ["0", "1", "2", "3", "4", "5", "6"]
    assert m.num_units("2") == 6
    assert isinstance(m.module, nn.Sequential) and not m.module.training


def test_any_module_default_name_and_weights_file(tmp_path):
    net = tiny_net(seed=1)
    path = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), path)
    m = ef.load_model(tiny_net(seed=2), weights=path, device="cpu")
    assert m.name == "Sequential"
    assert torch.equal(m.module[0].weight, net[0].weight)


def test_efficientnet_layers_offline(efficientnet):
    assert efficientnet.layers[:3] == ["_conv_stem.static_padding", "_conv_stem", "_bn0"]
    assert efficientnet.num_units("_conv_stem") == 32


def test_bad_device():
    with pytest.raises(ValueError, match="not a valid torch device"):
        ef.load_model(tiny_net(), device="gpu0")
