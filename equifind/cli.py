"""The ``equifind`` command.

Exit codes: 0 success, 2 bad usage (argparse), 1 failure with a one-line cause
(the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from .transforms import names
from .unitref import UNIT_REF_FORM, format_unit_ref, one_layer, parse_unit_refs

__all__ = ["main"]


def _load(args: argparse.Namespace):
    from .models import load_model

    return load_model(args.model, weights=args.weights, device=args.device)


def _cmd_layers(args: argparse.Namespace) -> None:
    model = _load(args)
    width = max(len(name) for name in model.layers)
    for name in model.layers:
        print(f"{name:<{width}}  {model.num_units(name):>5} units")


def _example_image(size: int):
    import torch
    import torch.nn.functional as F
    from skimage import data

    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float().div(255)[None]
    return F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _cmd_record(args: argparse.Namespace) -> None:
    import torch

    from .record import record

    model = _load(args)
    images = _example_image(model.input_size)
    with torch.no_grad(), record(model, [args.layer], at=args.at) as rec:
        model(images)
    act = rec[args.layer][0]
    rf = model.receptive_field(args.layer)
    print(f"{model.name} {args.layer}: {act.numel()} units, receptive field {rf.size} px at {rf.center}")
    top = act.topk(min(args.top, act.numel()))
    print(f"strongest units at {args.at!r} on scikit-image's 'chelsea':")
    for value, unit in zip(top.values.tolist(), top.indices.tolist()):
        print(f"  {format_unit_ref(args.layer, [unit]):<{len(args.layer) + 6}} {value:9.3f}")


def _cmd_scan(args: argparse.Namespace) -> None:
    from .config import load_config
    from .scan import scan

    cfg = load_config(args.config)
    cfg = cfg.replace(steps=args.steps, validate_sources=_sources(args.validate), validate_top=args.validate_top)
    model = _load(args)
    layers = args.layers or (list(cfg.layers) if cfg.layers else None)
    if not layers:
        raise ValueError("no layers to scan: give --layers or a --config that lists them")
    result = scan(
        model, layers=layers, transforms=args.transforms, config=cfg,
        out=args.out, resume=not args.no_resume, seed=args.seed, progress=not args.quiet,
    )  # fmt: skip
    if result.model == "inceptionv1":  # the Circuits thread's labels number its units
        result.compare()
    result.save(args.out)
    print(result.summary())
    if not args.no_report:
        from .report import report

        out = report(result, args.out, formats=tuple(args.formats), progress=not args.quiet)
        print(f"\nreport: {_page(out, args.formats)}")


def _sources(text: str | None) -> tuple[str, ...] | None:
    """``--validate``'s comma-separated sources (None: the config's; "" or "none": off); checked by ScanConfig."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(s.strip() for s in text.split(","))


def _cmd_score(args: argparse.Namespace) -> None:
    import json

    from .score import score_family

    model = _load(args)
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
    from .report import report
    from .scan import ScanResult

    result = ScanResult.load(args.dir)
    out = report(result, args.out or args.dir, formats=tuple(args.formats), progress=True)
    print(f"report: {_page(out, args.formats)}")


def _page(out: Path, formats: list[str]) -> Path:
    """The report's index.html, or its directory when no HTML was asked for."""
    return out / "index.html" if "html" in formats else out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="equifind", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="zoo name: inceptionv1, googlenet_bvlc, squeezenet1_0, efficientnet_lite0")
        p.add_argument("--weights", help="path to the weight file (default: $EQUIFIND_WEIGHTS_DIR)")
        p.add_argument("--device", help="cpu or cuda (default: cuda when available)")

    p = sub.add_parser("layers", help="list a model's probe-able layers and their widths")
    add_model_args(p)
    p.set_defaults(run=_cmd_layers)

    p = sub.add_parser("record", help="record one layer on an example photograph and show its strongest units")
    add_model_args(p)
    p.add_argument("layer")
    p.add_argument("--at", default="center", choices=["center", "max", "mean"])
    p.add_argument("--top", type=int, default=10)
    p.set_defaults(run=_cmd_record)

    formats = ["png", "svg", "pdf", "html"]
    p = sub.add_parser("scan", help="scan layers for equivariant families and circuits, and write a report")
    add_model_args(p)
    p.add_argument("--layers", nargs="+", help="layer names (default: the config's)")
    p.add_argument("--transforms", nargs="+", choices=names(),
                   help="default: the config's, else rotation hue flip (equifind.config.DEFAULT_TRANSFORMS)")
    p.add_argument("--out", required=True, help="output directory (stage files, report)")
    p.add_argument("--config", help="TOML file with layers, steps and thresholds (see configs/)")
    p.add_argument("--steps", type=int, help="transform grid size (default: the config's, 64)")
    p.add_argument("--seed", type=int)
    p.add_argument("--validate", metavar="SOURCES",
                   help="validate the best families of each layer and transform on held-out stimuli: comma-separated "
                        "feature_vis (each unit's feature visualization), patches (its top natural patches); "
                        "'none' turns it off (default: the config's [validate] sources)")
    p.add_argument("--validate-top", type=int, metavar="N",
                   help="families validated per layer and transform (default: the config's, 3)")
    p.add_argument("--no-resume", action="store_true", help="recompute stages already in --out")
    p.add_argument("--no-report", action="store_true", help="skip the figures and index.html")
    p.add_argument("--formats", nargs="+", choices=formats, default=["png", "svg", "html"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_cmd_scan)

    p = sub.add_parser("score", help="score how truly some units form one equivariant family")
    add_model_args(p)
    p.add_argument("refs", nargs="+", metavar="LAYER:UNITS",
                   help=f"the family's units as {UNIT_REF_FORM}, one or more of one layer; the older form "
                        "LAYER UNIT [UNIT ...] still works")
    p.add_argument("--transform", default="rotation", choices=names(scores=True))
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the FamilyScore as JSON")
    p.set_defaults(run=_cmd_score, check=functools.partial(_check_score, p))

    p = sub.add_parser("report", help="(re)write the figures and index.html of a saved scan")
    p.add_argument("dir", help="a scan's --out directory")
    p.add_argument("--out", help="where to write the report (default: DIR)")
    p.add_argument("--formats", nargs="+", choices=formats, default=["png", "svg", "html"])
    p.set_defaults(run=_cmd_report, command="report")
    return parser


def _check_score(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Read ``score``'s units into ``args.layer`` and ``args.units``; bad ones are bad usage (exit 2)."""
    try:
        args.layer, args.units = _unit_args(args.refs)
    except ValueError as err:
        parser.error(str(err))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    try:
        args.run(args)
    except Exception as err:  # one-line cause; the traceback on request
        if args.debug:
            raise
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        cause = " ".join(line.strip() for line in text.splitlines()) if text else type(err).__name__
        print(f"equifind {args.command}: error: {type(err).__name__}: {cause}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
