"""The words of the family browser: the significance legend, the incomplete-scan banner, and the label/value
fields of a family's and a circuit's view (the wording of the report's cards).

Plain text only; the page writes every string with ``textContent``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._evidence import null_size, q_and_p
from ..families import Family, weight_verdict_text
from ..score import FamilyScore
from ..transforms import as_transform

__all__ = [
    "legend", "incomplete_banner", "not_scanned", "circuit_summary", "family_fields", "circuit_fields", "num", "unit_list",
]

Field = tuple[str, str]  # (label, value)

_NULLS = {"angles": "random member angles", "kernels": "rearranged kernels", "orders": "permuted member orders"}
_MAX_LISTED = 40  # units listed in a field before "…"


def num(x: Any, spec: str = ".3f") -> str:
    """``x`` formatted with ``spec``; "n/a" for None, NaN or a non-number."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(v) else format(v, spec)


def unit_list(layer: str, units: Sequence[int], limit: int | None = None) -> str:
    """``"layer:3, layer:7"``; past ``limit`` units ``", … (n in all)"``."""
    shown = list(units) if limit is None else list(units)[:limit]
    text = ", ".join(f"{layer}:{int(u)}" for u in shown)
    return text + (f", … ({len(units)} in all)" if limit is not None and len(units) > limit else "")


def legend(alpha: float) -> str:
    """What the q and p of the views mean, and the significance rule."""
    return (
        f"Significant means q ≤ {alpha:g}. Discovery q / p: the test that found the family (its null re-runs "
        "the discovery on surrogate responses), q by Benjamini–Hochberg over the families of one layer and "
        "transform. Equivariance q / p: the family's equivariance score against random unit sets of the layer, "
        "q over the same families. Circuit q / p: the symmetry score against rearranged kernels, q over the "
        "checks of one transform. A p at its floor prints as p ≤ 1/(1 + n_null), n_null the null draws. "
        "Weights: \"confirmed by weights\" when a significant circuit from the layer below enters exactly the "
        "family's units (the best such circuit is named), \"not confirmed\" when the weights were checked and "
        "none does, \"weights not checked\" with circuits off, in the first scanned layer, or for a transform "
        "circuits do not cover (hue_rotation). Families confirmed by weights are listed first. A flip pair whose "
        "two units are members of one rotation family at mirrored angles is \"explained by rotation\": the "
        "rotation family already holds it, so it is listed last and not counted as a family. Held-out: the best "
        "families of a layer and transform, tested on stimuli never used for discovery (each member's feature "
        "visualization, its top natural patches) against random unit sets scored the same way; q by "
        "Benjamini–Hochberg over every validated family of the scan, per source; \"held out\" when the "
        f"combined (or only) source's q ≤ {alpha:g}, \"did not hold out\" otherwise."
    )


def incomplete_banner(res: Any) -> list[str]:
    """The warning for a scan that did not finish: headline, what is missing, advice (none when finished)."""
    missing = list(getattr(res, "missing", None) or [])
    if not missing:
        return []
    n = len(missing)
    return [f"Incomplete scan: {n} stage{'' if n == 1 else 's'} did not finish", "Missing: " + "; ".join(missing) + ".",
            "Counts and verdicts below cover only the stages that finished. Run the scan again with the same out "
            "directory and settings to finish it, then report again."]  # fmt: skip


def _missing_stages(res: Any) -> list[tuple[str, str | None, str]]:
    """The stages a scan result lacks (``ScanResult._missing_stages``; none for other objects)."""
    fn = getattr(res, "_missing_stages", None)
    return list(fn()) if callable(fn) else []


def not_scanned(res: Any) -> list[str]:
    """One line per layer and transform whose families the scan did not reach."""
    return [f"{layer} · {t}: not scanned; the scan stopped before this stage."
            for kind, layer, t in _missing_stages(res) if kind == "families"]  # fmt: skip


def circuit_summary(res: Any, n_circuits: int, alpha: float) -> list[str]:
    """What the circuits table holds: the transforms whose circuits were not run, and the significance rule."""
    config = getattr(res, "config", None) or {}
    min_score = config.get("circuit_min_score")
    rule = (f"q ≤ {alpha:g} (Benjamini–Hochberg over the checks of each transform)"
            + (f" and symmetry score ≥ {min_score:g}" if min_score is not None else ""))  # fmt: skip
    not_run = [t for kind, _, t in _missing_stages(res) if kind == "circuits"]
    lines = []
    if not_run:
        lines.append(f"Circuits of {', '.join(not_run)} not run: the scan stopped before them "
                     "(run it again with the same out directory to finish it).")  # fmt: skip
    if n_circuits or not not_run:
        lines.append(f"{n_circuits} circuit{'' if n_circuits == 1 else 's'} with {rule}." if n_circuits
                     else f"No circuits with {rule}.")  # fmt: skip
    return lines


def _matched(matches: Sequence[dict[str, Any]], layer: str, transform: str, units: Sequence[int]) -> str:
    found = [f"{m.get('label', '?')} (overlap {num(100 * float(m.get('overlap', math.nan)), '.0f')}%)"
             for m in matches if m.get("layer") == layer and m.get("transform") == transform
             and set(m.get("found_units", [])) & set(units)]  # fmt: skip
    return "; ".join(found) if found else "none"


def _heldout_fields(score: FamilyScore, alpha: float) -> list[Field]:
    """Each held-out source's equivariance, q (p) and null mean, and the verdict; none when not validated."""
    main = score.heldout_test
    if main is None:
        return []
    per = "; ".join(
        f"{key} {num(test.equivariance)} {q_and_p(test.q_value, test.p_value, test.n_null or None)}, random sets "
        f"{num(test.null_mean)}" for key, test in score.heldout.items()
    )
    return [("held-out equivariance", per), ("held-out verdict", main.verdict(alpha))]


def _score_fields(score: FamilyScore | None, n_null: int | None, alpha: float) -> list[Field]:
    if score is None:
        return [("equivariance score", "not scored")]
    evidence = q_and_p(score.q_value, score.p_value, null_size(score, n_null))
    return [
        ("equivariance score", f"{num(score.equivariance)} (1.0 = exact f(g·x) = P_g f(x))"),
        ("equivariance q / p", f"{evidence}; null: random unit sets of the layer, mean {num(score.null_mean)}"),
        ("invariance score", num(score.invariance)),
        ("coverage", num(score.coverage, ".2f")),
        *_heldout_fields(score, alpha),
    ]


def _discovery_fields(family: Family, n_null: int | None, circuit_n_null: int | None) -> list[Field]:
    fields = [("discovery score", num(family.score)),
              ("discovery q / p", q_and_p(family.q_value, family.p_value, null_size(family, n_null)))]  # fmt: skip
    if family.colour_index is not None:
        fields.append(("colour index", f"{num(family.colour_index, '.2f')} (members' mean; colour / (colour + grey) "
                                       "drive: 1 colour-opponent, ≈ 0.37 colour-blind)"))  # fmt: skip
    fields.append(("weights", weight_verdict_text(family, circuit_n_null)))
    if family.explained_by is not None:
        e = family.explained_by
        by = as_transform(e["transform"])
        fields.append(("explained by", (
            f"the {by} family {unit_list(family.layer, e['units'], _MAX_LISTED)} (period {by.format_period(e['period'])}): "
            f"its members at {', '.join(by.format_param(a) for a in e['angles'])}, mirrored angles "
            f"(sum off 0 by {e['mismatch']:.1f}°); not counted as a finding")))  # fmt: skip
    return fields


def family_fields(
    family: Family | None, score: FamilyScore | None, matches: Sequence[dict[str, Any]], *, alpha: float,
    n_null: int | None = None, circuit_n_null: int | None = None,
) -> list[Field]:  # fmt: skip
    """A family's fields, in the report card's order and words.

    Args:
        family: the Family (None for a lone FamilyScore).
        score: its FamilyScore (None: not scored).
        matches: the scan's matched labels (``ScanResult.matches``).
        alpha: the significance threshold of the held-out verdict.
        n_null, circuit_n_null: the null draws of family and circuit tests whose result does not say its own.

    Raises:
        ValueError: neither a family nor a score.
    """
    main = family if family is not None else score
    if main is None:
        raise ValueError("family_fields needs a Family or a FamilyScore")
    layer, t = main.layer, main.transform
    units = list(family.units) if family is not None else list(score.order)  # type: ignore[union-attr]
    preferred = list(family.preferred) if family is not None else [float(score.preferred.get(u, math.nan))  # type: ignore[union-attr]
                                                                      for u in units]  # fmt: skip
    fields: list[Field] = [("units", unit_list(layer, units)), ("preferred", ", ".join(t.format_param(p) for p in preferred))]
    if family is not None and family.preferred_hue is not None:
        fields.append(("preferred hue", ", ".join(t.format_param(p) for p in family.preferred_hue)))
    fields.append(("period", t.format_period(main.period)))
    fields += _score_fields(score, n_null, alpha)
    if family is not None:
        fields += _discovery_fields(family, n_null, circuit_n_null)
    holes = score.holes if score is not None else family.holes  # type: ignore[union-attr]
    if t.period is None:
        fields.append(("holes", "n/a (no period)"))
    else:
        fields.append(("holes", ", ".join(t.format_param(h) for h in holes) if holes else "none"))
    if family is not None and family.duplicates:
        fields.append(("duplicates", ", ".join(f"{layer}:{a} (= {layer}:{b})" for a, b in family.duplicates)))
    fields.append(("matched labels", _matched(matches, layer, t, units)))
    return fields


def circuit_fields(c: Any, *, n_null: int | None = None) -> list[Field]:
    """A circuit's fields, in the report card's words (``c``: a CircuitScore or any object with ``weights``)."""
    src, tgt = str(getattr(c, "source_layer", "source")), str(getattr(c, "target_layer", "target"))
    shape = tuple(getattr(c.weights, "shape", ()))
    return [
        ("kind", str(c.kind)), ("transform", str(getattr(c, "transform", "")) or "n/a"),
        ("symmetry score", f"{num(getattr(c, 'score', None))} (mean cosine with the predicted kernels; 1.0 exact)"),
        ("q / p", f"{q_and_p(getattr(c, 'q_value', None), getattr(c, 'p_value', None), null_size(c, n_null))}; "
                  f"null: {_NULLS.get(getattr(c, 'null', ''), 'n/a')}, mean {num(getattr(c, 'null_mean', None))}"),
        ("rotation gain", f"{num(getattr(c, 'rotation_gain', None))} (score minus the score with the transform "
                          f"left out; significant above 2 × {num(getattr(c, 'gain_sd', None))}, its null SD)"),
        ("1×1-path share", f"{num(getattr(c, 'pointwise_share', None))} (weights' energy through 1×1 convolutions "
                           "and pools, which cannot show a rotation)"),
        ("ceiling", f"{num(getattr(c, 'ceiling', None))} (what exactly rotated smooth kernels of this size score)"),
        ("source units", unit_list(src, getattr(c, "source_units", None) or range(shape[1] if len(shape) > 1 else 0))),
        ("target units", unit_list(tgt, getattr(c, "target_units", None) or range(shape[0] if shape else 0))),
        ("weights", " × ".join(str(s) for s in shape) + " (target, source, kh, kw)"),
    ]  # fmt: skip
