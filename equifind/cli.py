"""The ``equifind`` command.

Exit codes: 0 success; 2 bad usage (an unknown model, layer, unit or transform, bad steps, a bad
config, device, ``--top``/``--all``, ``--workers``, ``--formats`` or path), found before any computation
and told in one line that names the bad value; 1 a failure, with a one-line cause (the traceback only with ``--debug``, which is
accepted anywhere on the line); 130 interrupted (Ctrl-C).

This module imports nothing heavy at import time (no torch), so ``equifind --help`` is quick;
the choices it offers are static lists that ``tests/test_cli.py`` checks against the registries.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .unitref import UNIT_REF_FORM, format_unit_ref, one_layer, parse_unit_refs

__all__ = ["main", "UsageError"]

#: The zoo's model names (``equifind.models.MODELS``), for help texts without importing torch.
MODEL_NAMES: tuple[str, ...] = ("inceptionv1", "googlenet_bvlc", "squeezenet1_0", "efficientnet_lite0")
#: Registered transforms (``equifind.transforms.names()``), for ``--transforms`` choices.
TRANSFORM_NAMES: tuple[str, ...] = ("rotation", "hue", "flip", "scale", "hue_rotation")
#: Those ``score_family`` handles (``names(scores=True)``).
SCORE_TRANSFORMS: tuple[str, ...] = ("rotation", "hue", "flip", "scale")
#: What a scan probes without ``--transforms`` or a config (``equifind.config.DEFAULT_TRANSFORMS``).
DEFAULT_TRANSFORMS: tuple[str, ...] = ("rotation", "hue", "flip")
#: Report formats (``equifind.report.REPORT_FORMATS``): the page, and figure files.
FORMATS: tuple[str, ...] = ("png", "svg", "pdf", "html")
#: The default report: the page only (``equifind.report._files.DEFAULT_FORMATS``).
DEFAULT_FORMATS: tuple[str, ...] = ("html",)
#: Families and circuits that get figure files without ``--top``/``--all`` (``equifind.report.build.DEFAULT_TOP``).
DEFAULT_TOP = 20
#: Exit status of an interrupted command (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad usage found after parsing (exit 2): the message is one line naming the bad value."""


# -- checks made before any computation ---------------------------------------------------------


def _closest(name: str, valid: Sequence[str]) -> str:
    """`` did you mean 'x'?`` for the closest of ``valid``, or ``""``."""
    near = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def _check_model_name(name: str) -> None:
    """A zoo name (``equifind.models.MODELS``), else UsageError with the closest and the valid names."""
    from .models import MODELS

    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}{_closest(name, list(MODELS))}; valid: {', '.join(MODELS)}")


def _check_device(text: str | None) -> None:
    """``--device``: None (automatic), cpu, cuda[:N] with that GPU present, or mps where available.

    Raises:
        UsageError: a device torch does not know, or one this machine does not have.
    """
    if text is None:
        return
    import torch

    try:
        dev = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r} is not a device; valid: cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {text!r}: no CUDA GPU is available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"--device {text!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"--device {text!r}: MPS is not available on this machine; use --device cpu")
    elif dev.type != "cpu":
        raise UsageError(f"--device {text!r} is not supported; valid: cpu, cuda, cuda:N, mps")


def _check_file(path: str | None, flag: str) -> None:
    """``path`` (when given) names an existing file, else UsageError naming ``flag`` and the path."""
    if path is not None and not Path(path).is_file():
        what = "a directory, not a file" if Path(path).is_dir() else "no such file"
        raise UsageError(f"{flag} {path!r}: {what}")


def _check_writable_dir(path: str | os.PathLike, flag: str) -> None:
    """``path`` is a writable directory, or can be created as one; nothing is created here.

    Raises:
        UsageError: ``path`` is a file, or it (or the nearest existing folder above it) is not
            writable; the message names the directory.
    """
    target = Path(path).expanduser().absolute()
    if target.exists():
        if not target.is_dir():
            raise UsageError(f"{flag} {str(path)!r} is a file, not a directory")
        if not os.access(target, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {str(path)!r}: the directory is not writable")
        return
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {str(path)!r} cannot be created: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {str(path)!r} cannot be created: {str(parent)!r} is not writable")


def _check_layer(model: Any, layer: str) -> None:
    """``layer`` is one of the model's layers, else UsageError (closest, and how to list them)."""
    if layer not in model.layers:
        raise UsageError(
            f"unknown layer {layer!r} of {model.name}{_closest(layer, model.layers)} "
            f"(list them with `equifind layers {model.name}`)"
        )


def _int_at_least(least: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number ≥ ``least``, else an error that quotes the text."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least:
            raise argparse.ArgumentTypeError(f"expected a whole number ≥ {least}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


# -- commands ------------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Any:
    """The model of ``args``, after checking its name, weights path and device (bad ones: UsageError)."""
    _check_model_name(args.model)
    _check_file(args.weights, "--weights")
    _check_device(args.device)
    from .models import load_model

    return load_model(args.model, weights=args.weights, device=args.device)


def _cmd_layers(args: argparse.Namespace) -> None:
    model = _load(args)
    width = max(len(name) for name in model.layers)
    for name in model.layers:
        print(f"{name:<{width}}  {model.num_units(name):>5} units")


def _read_image(path: str, size: int) -> Any:
    """``path`` as float RGB ``Tensor[1, 3, size, size]`` in [0, 1]: centre-cropped square, then resized.

    Raises:
        UsageError: no such file, or not an image Pillow can read.
    """
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    _check_file(path, "--image")
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise UsageError(f"--image {path!r} is not an image Pillow can read ({type(err).__name__})") from None
    return _square(torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255)[None], size)


def _square(img: Any, size: int) -> Any:
    """``img`` (``Tensor[1, 3, H, W]``) centre-cropped to a square and resized to ``size × size``."""
    import torch.nn.functional as F

    h, w = img.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[..., top : top + side, left : left + side]
    return F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _example_image(size: int) -> Any:
    """scikit-image's 'chelsea' photograph at ``size × size``."""
    import torch
    from skimage import data

    return _square(torch.from_numpy(data.chelsea()).permute(2, 0, 1).float().div(255)[None], size)


def _cmd_record(args: argparse.Namespace) -> None:
    for path in args.image or ():
        _check_file(path, "--image")
    model = _load(args)
    _check_layer(model, args.layer)
    import torch

    from .record import record

    size = model.input_size
    named = [(p, _read_image(p, size)) for p in args.image] if args.image else [("scikit-image's 'chelsea'", _example_image(size))]
    images = torch.cat([img for _, img in named])
    with torch.no_grad(), record(model, [args.layer], at=args.at) as rec:
        model(images)
    acts = rec[args.layer]
    rf = model.receptive_field(args.layer)
    print(f"{model.name} {args.layer}: {acts.shape[1]} units, receptive field {rf.size} px at {rf.center}")
    for (name, _), act in zip(named, acts):
        top = act.topk(min(args.top, act.numel()))
        print(f"strongest units at {args.at!r} on {name}:")
        for value, unit in zip(top.values.tolist(), top.indices.tolist()):
            print(f"  {format_unit_ref(args.layer, [unit]):<{len(args.layer) + 6}} {value:9.3f}")


def _scan_config(args: argparse.Namespace) -> Any:
    """The scan's settings: the config file with the command line's overrides, all checked.

    Raises:
        UsageError: a bad config file or value, or a config naming another model than MODEL.
    """
    from .config import load_config

    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(f"--config: {err}") from None
    if cfg.model is not None and cfg.model != args.model:
        raise UsageError(f"--config {args.config!r} is for model {cfg.model!r}, but the command line names {args.model!r}")
    try:
        cfg = cfg.replace(
            layers=args.layers, transforms=args.transforms, steps=args.steps, seed=args.seed,
            validate_sources=_sources(args.validate), validate_top=args.validate_top,
        )  # fmt: skip
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not cfg.layers:
        raise UsageError("no layers to scan: give --layers or a --config that lists them")
    return cfg


def _cmd_scan(args: argparse.Namespace) -> None:
    cfg = _scan_config(args)
    _check_writable_dir(args.out, "--out")
    model = _load(args)
    for layer in cfg.layers:
        _check_layer(model, layer)
    from .scan import OtherSettingsError, scan

    try:
        result = scan(model, config=cfg, out=args.out, resume=not args.no_resume, progress=not args.quiet)
    except OtherSettingsError as err:  # the settings given do not match the scan in --out: bad usage
        raise UsageError(str(err)) from None
    if result.model == "inceptionv1":  # the Circuits thread's labels number its units
        result.compare()
    result.save(args.out)
    print(result.summary())
    if not args.no_report:
        from .report import report

        out = report(result, args.out, progress=not args.quiet, **_report_args(args))
        print(f"\nreport: {out / 'index.html'}")


def _sources(text: str | None) -> tuple[str, ...] | None:
    """``--validate``'s comma-separated sources (None: the config's; "" or "none": off); checked by ScanConfig."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(s.strip() for s in text.split(","))


def _cmd_score(args: argparse.Namespace) -> None:
    import json

    model = _load(args)
    _check_layer(model, args.layer)
    n = model.num_units(args.layer)
    bad = [u for u in args.units if u >= n]
    if bad:
        raise UsageError(f"unit {bad[0]} is not in {args.layer}, which has {n} units (0 to {n - 1})")
    from .score import score_family

    fs = score_family(model, args.layer, list(args.units), transform=args.transform, steps=args.steps, seed=args.seed)
    print(json.dumps(_finite_or_none(fs.to_dict()), indent=1, allow_nan=False) if args.json else fs.summary())


def _unit_args(refs: Sequence[str]) -> tuple[str, tuple[int, ...]]:
    """``score``'s units: ``LAYER:UNIT[,UNIT...]`` (one or more, one layer), or the older ``LAYER UNIT...``.

    Raises:
        ValueError: neither form (the message quotes the bad text and shows both forms).
    """
    if refs and ":" not in refs[0]:  # the older form: LAYER UNIT...
        layer, units = refs[0], refs[1:]
        bad = [u for u in units if not (u.isascii() and u.isdigit())]
        if not units or bad:
            what = "no units" if not units else f"{bad[0]!r} is not a unit number (a whole number ≥ 0)"
            raise ValueError(f"{what} after layer {layer!r}; give units as {UNIT_REF_FORM} or as LAYER UNIT...")
        return layer, tuple(int(u) for u in units)
    ref = one_layer(parse_unit_refs(refs))
    return ref.layer, ref.units


def _finite_or_none(data: object) -> object:
    """``data`` with NaN and infinite floats (an unknown p or q) as None, so that ``--json`` prints strict JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite_or_none(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite_or_none(v) for v in data]
    return data


def _cmd_report(args: argparse.Namespace) -> None:
    if not Path(args.dir).is_dir():
        raise UsageError(f"DIR {args.dir!r}: no such directory (give a scan's --out directory)")
    _check_writable_dir(args.out or args.dir, "--out" if args.out else "DIR")
    from .report import report
    from .scan import ScanResult

    result = ScanResult.load(args.dir)
    out = report(result, args.out or args.dir, progress=True, **_report_args(args))
    print(f"report: {out / 'index.html'}")


def _report_args(args: argparse.Namespace) -> dict[str, Any]:
    """``report()``'s formats, selection (``--top N`` or ``--all``, for families and circuits alike) and workers.

    The page is always among the formats: a report replaces ``index.html`` and ``figures/`` together, so
    ``--formats png`` without it would delete the scan's page and leave figure files that nothing links."""
    formats = tuple(dict.fromkeys(("html", *args.formats)))
    return {"formats": formats, "families": args.top, "circuits": args.top, "workers": args.workers}


# -- the parser ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (exit 2) that points at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _Formats(argparse.Action):
    """``--formats``: format names separated by commas, spaces (several arguments) or both, each checked."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        names = [n.strip().lower() for v in values for n in v.split(",") if n.strip()]
        bad = [n for n in names if n not in FORMATS]
        if bad or not names:
            what = f"invalid choice: {bad[0]!r}" if bad else "no format given"
            parser.error(f"argument --formats: {what} (choose from {', '.join(FORMATS)})")
        setattr(namespace, self.dest, list(dict.fromkeys(names)))


def _add_report_args(p: argparse.ArgumentParser) -> None:
    """``--formats``, ``--top N`` | ``--all`` and ``--workers``, of ``scan`` and ``report``."""
    p.add_argument("--formats", nargs="+", action=_Formats, default=list(DEFAULT_FORMATS), metavar="FORMAT",
                   help="figure files to export besides the page (index.html, always written), comma- or space-separated: "
                        "png, svg, pdf (under figures/, linked from the page; html: the page only, the default)")
    top = p.add_mutually_exclusive_group()
    top.add_argument("--top", type=_non_negative_int, default=DEFAULT_TOP, metavar="N",
                     help=f"with png, svg or pdf: figure files for the N best families of the scan (confirmed by weights "
                          f"first, then significant, larger, more equivariant) and the N best circuits "
                          f"(default: {DEFAULT_TOP})")
    top.add_argument("--all", action="store_const", const="all", dest="top",
                     help="with png, svg or pdf: figure files for every family and circuit")
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help="processes drawing the figures (default: min(4, CPU cores), fewer for fewer than 8 figures "
                        "each; 1: no extra processes)")


def _add_common(p: argparse.ArgumentParser) -> None:
    """``--debug`` on a subcommand (so it works anywhere); SUPPRESS keeps the top level's value."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on failure")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help=f"zoo name: {', '.join(MODEL_NAMES)}")
    p.add_argument("--weights", metavar="PATH", help="path to the weight file (default: $EQUIFIND_WEIGHTS_DIR)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    _add_common(p)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="equifind", description=__doc__.splitlines()[0],
                     epilog="Exit codes: 0 success, 2 bad usage, 1 failure, 130 interrupted.")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure (accepted anywhere)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of:")

    p = sub.add_parser("layers", help="list a model's probe-able layers and their widths")
    _add_model_args(p)
    p.set_defaults(run=_cmd_layers)

    p = sub.add_parser("record", help="record one layer on photographs and show its strongest units")
    _add_model_args(p)
    p.add_argument("layer", help="the layer to record (see `equifind layers MODEL`)")
    p.add_argument("--image", nargs="+", metavar="PATH",
                   help="image files, centre-cropped to a square and resized to the model's input "
                        "(default: scikit-image's 'chelsea' photograph)")
    p.add_argument("--at", default="center", choices=["center", "max", "mean"],
                   help="which position of each unit's map: the centre, its maximum or its mean (default: center)")
    p.add_argument("--top", type=_positive_int, default=10, metavar="N", help="strongest units shown per image (default: 10)")
    p.set_defaults(run=_cmd_record)

    p = sub.add_parser("scan", help="scan layers for equivariant families and circuits, and write the report page")
    _add_model_args(p)
    p.add_argument("--layers", nargs="+", help="layer names (default: the config's)")
    p.add_argument("--transforms", nargs="+", choices=TRANSFORM_NAMES, metavar="TRANSFORM",
                   help=f"any of {', '.join(TRANSFORM_NAMES)} (default: the config's, else {' '.join(DEFAULT_TRANSFORMS)})")
    p.add_argument("--out", required=True, help="output directory (stage files, report); must be writable")
    p.add_argument("--config", help="TOML file with layers, steps and thresholds (see configs/); its model must be MODEL")
    p.add_argument("--steps", type=int, help="transform grid size, at least each transform's minimum (default: the config's, 64)")
    p.add_argument("--seed", type=_non_negative_int, help="seed of every random choice (default: the config's, 0)")
    p.add_argument("--validate", metavar="SOURCES",
                   help="validate the best families of each layer and transform on held-out stimuli: comma-separated "
                        "feature_vis (each unit's feature visualization), patches (its top natural patches); "
                        "'none' turns it off (default: the config's [validate] sources)")
    p.add_argument("--validate-top", type=int, metavar="N",
                   help="families validated per layer and transform (default: the config's, 3)")
    p.add_argument("--no-resume", action="store_true", help="recompute stages already in --out")
    p.add_argument("--no-report", action="store_true", help="write no report (no index.html, no figures)")
    _add_report_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_cmd_scan)

    p = sub.add_parser("score", help="score how truly some units form one equivariant family")
    _add_model_args(p)
    p.add_argument("refs", nargs="+", metavar="LAYER:UNITS",
                   help=f"the family's units as {UNIT_REF_FORM}, one or more of one layer; the older form "
                        "LAYER UNIT [UNIT ...] still works")
    p.add_argument("--transform", default="rotation", choices=SCORE_TRANSFORMS,
                   help=f"the group the units should be copies under: {', '.join(SCORE_TRANSFORMS)} (default: rotation)")
    p.add_argument("--steps", type=int, default=64,
                   help="transform grid size, at least the transform's minimum and the number of units (default: 64)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the stimuli and the null (default: 0)")
    p.add_argument("--json", action="store_true", help="print the FamilyScore as JSON")
    p.set_defaults(run=_cmd_score, check=_check_score)

    p = sub.add_parser("report", help="(re)write the index.html of a saved scan, and export figure files on request")
    p.add_argument("dir", metavar="DIR", help="a scan's --out directory")
    p.add_argument("--out", help="where to write the report (default: DIR); must be writable")
    _add_report_args(p)
    _add_common(p)
    p.set_defaults(run=_cmd_report)
    return parser


def _check_score(args: argparse.Namespace) -> None:
    """Read ``score``'s units into ``args.layer`` and ``args.units``, and check ``--steps`` against the transform.

    Raises:
        UsageError: bad unit references, or too few steps for the transform or the units.
    """
    try:
        args.layer, args.units = _unit_args(args.refs)
    except ValueError as err:
        raise UsageError(str(err)) from None
    from .transforms import as_transform

    tf = as_transform(args.transform)
    try:
        tf.check_steps(args.steps)
    except ValueError as err:
        raise UsageError(f"--steps: {err}") from None
    if args.steps < len(args.units):
        raise UsageError(f"--steps {args.steps} is fewer than the {len(args.units)} units scored; use --steps ≥ {len(args.units)}")


def _one_line(err: BaseException) -> str:
    """An exception's message on one line (a KeyError's without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(line.strip() for line in text.splitlines()) if text else type(err).__name__


def _interrupted(args: argparse.Namespace) -> str:
    """What an interrupted command says: a scan keeps its finished stages."""
    if args.command == "scan":
        return f"interrupted; finished stages are kept in {args.out} — rerun to resume"
    return "interrupted"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0, 1 failure, 2 bad usage, 130 interrupted)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or bad usage (2), already printed
        return done.code if isinstance(done.code, int) else 2
    debug = bool(getattr(args, "debug", False))
    try:
        check = getattr(args, "check", None)
        if check is not None:
            check(args)
        args.run(args)
    except UsageError as err:
        if debug:
            raise
        print(f"equifind {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"equifind {args.command}: {_interrupted(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # one-line cause; the traceback on request
        if debug:
            raise
        print(f"equifind {args.command}: error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
