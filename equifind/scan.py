"""``scan``: probe → families → scores for every layer and transform, then circuits.

What a scan does with a transform comes from the transform itself
(:mod:`equifind.transforms`): every registered transform can be scanned; the grid is
``ScanConfig.steps`` capped at ``Transform.scan_max_steps``; families are scored where
``Transform.scores`` holds; circuits are checked for ``Transform.circuits``; a transform's
families are checked against those of ``Transform.pairs_explained_by`` (flip pairs against
rotation families).

With ``out``, every stage's result is written as soon as it finishes (atomic writes,
:mod:`equifind.store`), so an interrupted scan resumes where it stopped:

    out/scan.json                                   settings, model, layers, transforms, timings, finished stages
    out/stages/<layer>/<transform>/responses.npz    probe
    out/stages/<layer>/<transform>/families.json    find_families, each family with its score
    out/stages/<layer>/<transform>/heldout.json     held-out validation (with ``validate_sources``)
    out/stages/<layer>/<transform>/heldout.npz      its units' held-out images (uint8)
    out/stages/circuits/<transform>.json + .npz     circuits between consecutive layers

``families.json`` is :meth:`FamilyList.to_dict` plus ``"format": "equifind.ScanStage/2"``;
each family's score (``Family.equivariance``, :class:`~equifind.FamilyScore`) is inside it
(null where the family was not scored). It is written after ``responses.npz``, once the
families are scored, so its presence marks the stage finished. Stage directories written
before the scores moved into the families (no ``format`` key) hold the scores in
``scores.json``, one per family in the same order (none for an unscored transform); they
are still read (the stage is finished only when ``scores.json`` exists), the scores are
given to the families by position, and :meth:`ScanResult.save` rewrites such a stage in the
new layout (and removes its ``scores.json``).

``scan.json`` is rewritten (atomically) each time a stage finishes, after the stage's files:
its ``"finished"`` list (:func:`equifind.store.stage_to_json`: families of a layer and transform,
their held-out validation, the circuits of a transform) and its ``"timings"`` say what is done and
how long it took. A stage counts as finished only when it is recorded there, so a scan killed
between a stage's files and the record computes that stage again (to the same result); a resumed
scan keeps the timings of the stages it reads back. :meth:`ScanResult.load` reads only recorded
stages and says what is missing (:attr:`ScanResult.missing`). A ``scan.json`` without the list
(written before it existed) trusts every stage whose files are there, as before. A stage file that
cannot be parsed is named in a warning, moved aside (``<name>.corrupt``) and computed again by the
next scan (left out, with the warning, by ``load``); a ``scan.json`` that cannot be parsed is an
error naming it on ``load``, and is moved aside by ``scan`` with the stages (whose settings can
then not be checked), which are all computed again. Stale temporary files of killed writers are
removed when a scan starts (:func:`equifind.store.clean_temporaries`).

A family whose scoring raises ``NotImplementedError`` (a transform
whose score is not written yet), or with more members than grid steps, is not scored: it gets a
score of NaN whose ``meta["unscored"]`` says why, and the scan goes on (with a warning).

Held-out validation (``ScanConfig.validate_sources`` non-empty; transforms whose families are
scored): once a layer's transforms are scored, the best ``validate_top`` families of each
(:func:`_pick_for_validation`) are tested by one :func:`~equifind.heldout.validate_families`
call per transform; the held-out images are made once per layer, for every transform's
families and null pool together (one batch, so that a resumed scan whose other transforms
were already validated makes exactly the same images). ``heldout.json`` holds each validated
family's results (``{"families": [{"units": Family.units, "heldout": {source: ...}}]}``) and
``heldout.npz`` the images (key ``<source>/<unit>``, ``uint8 [k, 3, H, W]``) the report draws.
The held-out q-values are Benjamini–Hochberg over every validated family of the scan, one list
per source key ("feature_vis", "patches", "combined"), computed whenever a scan is run,
resumed or loaded (the q saved in ``heldout.json`` is not read).

After the circuits, every family gets its weight verdict (``Family.weight_support``,
``Family.weight_checked``), computed from the circuits whenever a scan is run,
resumed or loaded: the verdicts saved in ``families.json`` are never trusted, since
that stage file is written before the circuits are checked. Likewise every flip pair
of a layer that also holds rotation families (a transform's families against those of
its ``pairs_explained_by``) is checked against them
(:func:`~equifind.families.explain_flip_pairs`, ``Family.explained_by``) whenever a
scan is run, resumed or loaded; explained pairs stay in the data but are left out of
the summary's counts and family list.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ._evidence import null_size, q_and_p
from ._progress import progress_bar
from ._stats import DEFAULT_Q, bh_q
from .config import ScanConfig, load_config
from .families import (Family, FamilyList, best_weight_support, explain_flip_pairs, find_families, rank_families,
                       weight_verdict_text)
from .heldout import HeldoutSource, HeldoutStimuli, _pool_sample, validate_families
from .heldout import supports as heldout_supports
from .models.base import Model
from .probe import probe
from .responses import Responses
from .score import FamilyScore, score_responses
from .store import (STAGE_KINDS, Stage, UnreadableFile, circuit_files, circuits_dir, clean_temporaries, describe_stage,
                    manifest_path, move_aside, read_guarded, read_json, stage_dir, stage_files, stage_from_json,
                    stage_to_json, stages_dir, write_atomic, write_json)
from .transforms import Transform, as_transform
from .unitref import format_unit_ref

__all__ = ["scan", "ScanResult", "load_labels", "OtherSettingsError"]

T = TypeVar("T")
_FORMAT = "equifind.ScanResult/1"
_LABELLED_MODEL = "inceptionv1"  # the model whose unit numbers the default labels use
SUMMARY_CIRCUITS = 20  # circuits listed in summary(); the report shows all
SUMMARY_FAMILIES = 20  # families listed in summary(), confirmed by weights first; the report shows all
_STAGE_FORMAT = "equifind.ScanStage/2"  # families.json with each family's score inside (see the module doc)
_OLD_SCORES = "scores.json"  # the scores of a stage written before they moved into families.json


def load_labels(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Hand-labelled families: the Circuits thread's, for Lucid's InceptionV1, by default.

    Args:
        path: a JSON file with a ``families`` list of ``{name, layer, transform, units}``
            (default: ``equifind/data/circuits_families.json``).
    """
    if path is None:
        text = resources.files("equifind").joinpath("data/circuits_families.json").read_text()
    else:
        text = Path(path).read_text()
    families = json.loads(text)["families"]
    for fam in families:  # hue_rotation grids list their units row by row
        if "units" not in fam and "grid" in fam:
            fam["units"] = [u for row in fam["grid"] for u in row if u is not None]
    return [f for f in families if "layer" in f and "units" in f]


@dataclass
class ScanResult:
    """Families, their scores and the circuits between them, for a model's layers.

    Attributes:
        model: the model's name.
        layers: layers scanned, in forward order.
        transforms: names of the transforms probed.
        config: the settings (``ScanConfig.to_dict()``).
        families: layer -> transform name -> :class:`FamilyList`; each family carries its
            score in ``Family.equivariance`` (None for a transform whose families are not
            scored, ``Transform.scores`` False).
        responses: layer -> transform -> :class:`Responses`.
        circuits: significant circuits (q ≤ alpha, BH over the checks of each transform) between
            families of consecutive layers.
        circuits_checked: the transforms whose circuits between consecutive layers were checked
            (none with circuits off or a single layer). The families of these transforms in
            every layer but the first get a weight verdict ("confirmed by weights" or "not
            confirmed"); the others' weights were not checked.
        matches: filled by :meth:`compare`.
        timings: seconds per stage, keyed "layer/transform/stage" and "circuits/transform"; a
            stage read back when resuming keeps the time it took when it ran (saved in
            ``scan.json``); the held-out images of a layer are "layer/heldout/images".
        heldout_images: layer -> transform -> source -> unit -> ``uint8 ndarray [k, 3, H, W]``:
            the held-out images of the units of the validated families (``FamilyScore.heldout``
            of their ``Family.equivariance``).
    """

    model: str
    layers: list[str]
    transforms: list[str]
    config: dict[str, Any]
    families: dict[str, dict[str, FamilyList]] = field(default_factory=dict)
    responses: dict[str, dict[str, Responses]] = field(default_factory=dict)
    circuits: list[Any] = field(default_factory=list)
    circuits_checked: list[str] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    heldout_images: dict[str, dict[str, dict[str, dict[int, np.ndarray]]]] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Short: the model, layers, transforms and counts (``summary()`` is the readable table)."""
        n_fams = sum(len(f) for by_t in self.families.values() for f in by_t.values())
        return (
            f"ScanResult({self.model!r}, layers {self.layers}, transforms {self.transforms}, "
            f"{n_fams} families, {len(self.circuits)} circuits)"
        )

    @property
    def missing(self) -> list[str]:
        """The stages this scan should have but does not (empty for a finished scan), in words, e.g.
        ``["layer 3 · flip: probe, families and scores", "circuits of rotation"]``: a scan that was
        interrupted, loaded before it finished (:meth:`load`), or whose stage files could not be read."""
        return [describe_stage(stage) for stage in self._missing_stages()]

    @property
    def complete(self) -> bool:
        """Whether every stage of the scan finished (:attr:`missing` is empty)."""
        return not self._missing_stages()

    def expected_stages(self) -> list[Stage]:
        """Every stage the settings ask for, in the order a scan runs them: per layer each transform's
        families, then its held-out validation (where :meth:`validated`); then the circuits of every
        transform with ``Transform.circuits`` (config ``circuits`` and more than one layer)."""
        stages: list[Stage] = []
        for layer in self.layers:
            stages += [("families", layer, t) for t in self.transforms]
            stages += [("heldout", layer, t) for t in self.transforms if self.validated(t)]
        if self.config.get("circuits") and len(self.layers) > 1:
            stages += [("circuits", None, t) for t in self.transforms if as_transform(t).circuits]
        return stages

    def _missing_stages(self) -> list[Stage]:
        """The expected stages (:meth:`expected_stages`) whose results this object does not hold."""
        def held(stage: Stage) -> bool:
            kind, layer, t = stage
            if kind == "circuits":
                return t in self.circuits_checked
            return t in (self.families if kind == "families" else self.heldout_images).get(layer, {})  # type: ignore[arg-type]

        return [stage for stage in self.expected_stages() if not held(stage)]

    def _incomplete_rows(self) -> list[str]:
        """The summary's first lines for a scan that did not finish (none for a finished one)."""
        missing = self.missing
        if not missing:
            return []
        return [f"INCOMPLETE SCAN: {len(missing)} of {len(self.expected_stages())} stages did not finish: "
                + "; ".join(missing) + ". Run the scan again with the same out directory and settings to finish it.", ""]

    @property
    def invariant(self) -> dict[str, dict[str, list[int]]]:
        """layer -> transform -> units that respond but do not change with the transform."""
        return {l: {t: list(f.invariant) for t, f in by_t.items()} for l, by_t in self.families.items()}

    def validated(self, transform: str) -> bool:
        """Whether the scan validates ``transform``'s best families on held-out stimuli (config
        ``validate_sources`` set and a transform :mod:`~equifind.heldout` validates: scored, on a circle
        or a pair, :func:`~equifind.heldout.supports`).

        Raises:
            KeyError: an unknown transform.
        """
        return bool(self.config.get("validate_sources")) and heldout_supports(as_transform(transform))

    def weights_checked(self, layer: str, transform: str) -> bool:
        """Whether the weights into ``layer``'s ``transform`` families were checked: circuits of the
        transform were checked and ``layer`` is not the first scanned layer (it has a layer below)."""
        return transform in self.circuits_checked and layer in self.layers[1:]

    def summary(self) -> str:
        """A readable table: one row per layer and transform, then the families, then the circuits.

        Each row counts the families, those with discovery q ≤ alpha (the config's) and
        those confirmed by weights ("by wts"; "-" where the weights were not checked), and
        for flip the pairs a rotation family of the layer explains ("by rot"; "-" for the
        other transforms and where the layer has no rotation families scanned), which the
        other counts and the family list leave out (``Family.explained_by``); and
        shows the best family (confirmed by weights, then significant, then largest, then
        most equivariant: :func:`~equifind.families.rank_families`) with its discovery q
        and p and its equivariance score, q and p. The families follow in that order
        over all layers (the first :data:`SUMMARY_FAMILIES`), each with its weight
        verdict: "confirmed by weights (...)", "not confirmed" or "weights not checked".
        """
        alpha = float(self.config.get("alpha", DEFAULT_Q))
        sig = f"q≤{alpha:g}"
        held = f" {'held out':>8}" if self._validating() else ""
        head = (f"{'layer':<10} {'transform':<12} {'units':>5} {'select.':>7} {'invar.':>6} {'fams':>4} {sig:>7} "
                f"{'by wts':>6} {'in fams':>7} {'by rot':>6}{held}  best family")
        rows = [f"equifind scan of {self.model}; significant: discovery q ≤ {alpha:g} "
                "(Benjamini–Hochberg over the families of each layer and transform); by wts: families "
                "confirmed by weights (-: weights not checked); by rot: flip pairs explained by a rotation "
                "family (mirrored members of it), not counted as families"
                + (f"; held out: validated families whose held-out equivariance has q ≤ {alpha:g} (BH over every "
                   "validated family of the scan), of those validated (-: not validated)" if held else ""),
                head, "-" * len(head)]  # fmt: skip
        for layer in self.layers:
            for t in self.transforms:
                fams = self.families.get(layer, {}).get(t)
                if fams is not None:
                    rows.append(self._summary_row(layer, t, fams, alpha, sig))
        rows += self._family_rows(alpha)
        rows += self._circuit_rows(alpha)
        return "\n".join(self._incomplete_rows() + rows)

    def explaining(self, layer: str, transform: str) -> str | None:
        """The transform whose families ``layer``'s ``transform`` families were checked against
        (``Transform.pairs_explained_by``: rotation for flip) when the layer has both; else None.

        Raises:
            KeyError: an unknown transform.
        """
        other = as_transform(transform).pairs_explained_by
        by_t = self.families.get(layer, {})
        return other if other is not None and transform in by_t and other in by_t else None

    def _summary_row(self, layer: str, t: str, all_fams: FamilyList, alpha: float, sig: str) -> str:
        resp = self.responses.get(layer, {}).get(t)
        n_units = len(resp.units) if resp is not None else 0
        fams = [f for f in all_fams if f.explained_by is None]
        best = ""
        if fams:
            i = rank_families(fams, [_equivariance(f) for f in fams], alpha=alpha)[0]
            best = self._describe(fams[i])
        n_sig = sum(f.q_value <= alpha for f in fams)
        by_wts = str(sum(f.weight_support is not None for f in fams)) if self.weights_checked(layer, t) else "-"
        by_rot = str(len(all_fams) - len(fams)) if self.explaining(layer, t) is not None else "-"
        in_fams = sum(len(f) for f in fams)
        held = f" {self._held_out_count(all_fams, alpha, t):>8}" if self._validating() else ""
        return (f"{layer:<10} {t:<12} {n_units:>5} {len(all_fams.selective):>7} {len(all_fams.invariant):>6} "
                f"{len(fams):>4} {n_sig:>{len(sig)}} {by_wts:>6} {in_fams:>7} {by_rot:>6}{held}  {best}")

    def _validating(self) -> bool:
        """Whether the scan validated families on held-out stimuli (the summary's "held out" column)."""
        return bool(self.config.get("validate_sources"))

    def _held_out_count(self, fams: Sequence[Family], alpha: float, t: str) -> str:
        """``"2/3"``: of a layer and transform's validated families, those that held out; "-" if not validated."""
        verdicts = [sc.held_out(alpha) for sc in _validated(fams)]
        return f"{sum(bool(v) for v in verdicts)}/{len(verdicts)}" if self.validated(t) else "-"

    def _family_rows(self, alpha: float) -> list[str]:
        """Every layer's families, ranked together (confirmed by weights first), with their weight verdicts."""
        listed = [f for layer in self.layers for t in self.transforms
                  for f in self.families.get(layer, {}).get(t) or [] if f.explained_by is None]  # fmt: skip
        if not listed:
            return []
        order = rank_families(listed, [_equivariance(f) for f in listed], alpha=alpha)
        shown = min(len(listed), SUMMARY_FAMILIES)
        rows = ["", f"families ({len(listed)}; confirmed by weights first, then q ≤ {alpha:g}, larger, more "
                    f"equivariant; the {shown} best):"]  # fmt: skip
        n_null = self.config.get("circuit_n_null")
        for i in order[:SUMMARY_FAMILIES]:
            f = listed[i]
            rows.append(f"  {f.layer} {f.transform}: {self._describe(f)}; {weight_verdict_text(f, n_null)}")
        if len(listed) > SUMMARY_FAMILIES:
            rows.append(f"  … {len(listed) - SUMMARY_FAMILIES} more in the report")
        return rows

    def _describe(self, f: Family) -> str:
        """A family's size, units, period, discovery q (p) and, where scored (``Family.equivariance``),
        equivariance q (p) and any held-out verdict."""
        fallback = self.config.get("n_null")
        period = f.transform.format_period(f.period)
        text = (f"{len(f)} units {f.units[:8]}{'…' if len(f) > 8 else ''} period {period}, "
                f"discovery {q_and_p(f.q_value, f.p_value, null_size(f, fallback))}")
        if f.colour_index is not None:
            text += f", colour index {f.colour_index:.2f}"
        score = f.equivariance
        if score is not None:
            text += (f", equivariance {score.equivariance:.2f} "
                     f"{q_and_p(score.q_value, score.p_value, null_size(score, fallback))}")
            text += _heldout_text(score, float(self.config.get("alpha", DEFAULT_Q)))
        return text

    def _circuit_rows(self, alpha: float) -> list[str]:
        not_run = [t for kind, _, t in self._missing_stages() if kind == "circuits"]
        if not_run:
            return ["", f"circuits of {', '.join(not_run)}: not run (the scan stopped before them)"]
        if not self.circuits:
            return []
        floor = self.config.get("circuit_min_score")
        shown = min(len(self.circuits), SUMMARY_CIRCUITS)
        rows = ["", f"circuits ({len(self.circuits)} with q ≤ {alpha:g}, BH over the checks of each transform, "
                    "and a rotation gain above 2 null SDs" + (f", and score ≥ {floor:g}" if floor is not None else "")
                    + f"; the {shown} best):"]
        for c in sorted(self.circuits, key=lambda c: -c.score)[:SUMMARY_CIRCUITS]:
            rows.append(
                f"  {format_unit_ref(c.source_layer, c.source_units, limit=6)} → "
                f"{format_unit_ref(c.target_layer, c.target_units, limit=6)} "
                f"{c.transform} {c.kind}: score {c.score:.2f}, {_gain_text(c)}, "
                f"{q_and_p(c.q_value, c.p_value, null_size(c, self.config.get('circuit_n_null')))}"
            )
        if len(self.circuits) > SUMMARY_CIRCUITS:
            rows.append(f"  … {len(self.circuits) - SUMMARY_CIRCUITS} more in stages/circuits/ and the report")
        return rows

    def compare(self, labels: Sequence[dict[str, Any]] | str | os.PathLike | None = None) -> list[dict[str, Any]]:
        """Match found families against hand-labelled ones (default: the Circuits thread's).

        The default labels number the units of Lucid's InceptionV1 (``inceptionv1``);
        for another model they mean nothing, so nothing is compared (with a warning).

        For each label, the found family of the same layer and transform with the largest
        overlap. Returns (and stores in ``matches``) dicts with ``label``, ``layer``,
        ``transform``, ``label_units``, ``found_units`` and ``overlap`` (shared / labelled).
        """
        if labels is None and self.model != _LABELLED_MODEL:
            warnings.warn(
                f"the Circuits thread's labels number the units of {_LABELLED_MODEL!r}, not of {self.model!r}; "
                "nothing compared (pass labels= for this model's own table)", stacklevel=2,
            )  # fmt: skip
            self.matches = []
            return []
        table = load_labels(labels) if labels is None or isinstance(labels, (str, os.PathLike)) else list(labels)
        out = []
        for lab in table:
            fams = self.families.get(lab["layer"], {}).get(lab["transform"])
            if fams is None:
                continue
            want = set(lab["units"])
            best = max(fams, key=lambda f: len(want & set(f.units)), default=None)
            shared = len(want & set(best.units)) if best is not None else 0
            out.append({
                "label": lab.get("name", ""), "layer": lab["layer"], "transform": lab["transform"],
                "label_units": list(lab["units"]), "found_units": list(best.units) if best and shared else [],
                "overlap": shared / len(want) if want else 0.0,
            })  # fmt: skip
        self.matches = out
        return out

    # -- persistence --------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the scan (the stage layout of the module docstring) into ``directory``; ``scan.json``
        records the stages this object holds as finished (the others stay :attr:`missing`). Stale
        temporary files of killed writers in ``directory`` are removed first."""
        out = Path(directory)
        clean_temporaries(out)
        for layer, by_t in self.families.items():
            for t, fams in by_t.items():
                _save_stage(out, layer, t, self.responses[layer][t], fams)
                if self.validated(t):
                    _save_heldout(out, layer, t, fams, self.heldout_images.get(layer, {}).get(t, {}))
        _save_circuits(out, self.circuits, self.circuits_checked)
        missing = set(self._missing_stages())
        write_json(manifest_path(out), self._manifest([s for s in self.expected_stages() if s not in missing]))
        return out

    def _manifest(self, finished: Sequence[Stage]) -> dict[str, Any]:
        """``scan.json``: the settings, the timings and the stages ``finished`` (see the module doc)."""
        return {
            "format": _FORMAT, "model": self.model, "layers": self.layers, "transforms": self.transforms,
            "config": self.config, "matches": self.matches, "timings": self.timings,
            "finished": [stage_to_json(s) for s in finished],
        }  # fmt: skip

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ScanResult:
        """Read a scan written by :meth:`save` or by ``scan(..., out=directory)``, finished or not.

        Only the stages ``scan.json`` records as finished are read (a scan saved before that record
        existed: those whose files are there). A scan that did not finish loads what it has, and says
        what it lacks: :attr:`missing`, :attr:`complete`, the first line of :meth:`summary`, and a
        warning. A stage file that cannot be read is named in a warning and left out (missing); the
        next ``scan`` with this ``out`` moves it aside and recomputes the stage. Nothing is written.

        Raises:
            FileNotFoundError: no ``scan.json`` in ``directory``.
            ValueError: ``scan.json`` cannot be read (truncated, not a scan manifest); the message names it.
        """
        root = Path(directory)
        path = manifest_path(root)
        if not path.is_file():
            raise FileNotFoundError(f"no scan at {str(root)!r}: {path.name} is missing")
        try:
            manifest = _read_manifest(path)
            finished, legacy = _finished_stages(root, manifest)
        except UnreadableFile as err:
            raise ValueError(f"{err}; the scan in {str(root)!r} cannot be loaded. Running the scan again with "
                             "this out directory moves it aside and recomputes the scan") from err
        result = cls(manifest["model"], manifest["layers"], manifest["transforms"], manifest["config"])
        result.matches = manifest.get("matches", [])
        result.timings = manifest.get("timings", {})
        record = _Record(root, manifest, finished, repair=False, legacy=legacy)
        for layer in result.layers:
            for t in result.transforms:
                stage = record.read(("families", layer, t))
                if stage is not None:
                    resp, fams = stage
                    result.responses.setdefault(layer, {})[t] = resp
                    result.families.setdefault(layer, {})[t] = fams
                    held = record.read(("heldout", layer, t)) if result.validated(t) else None
                    if held is not None:
                        _attach_heldout(result, layer, t, *held)
        _set_heldout_q_values(result)
        for t in result.transforms:
            loaded = record.read(("circuits", None, t))
            if loaded is not None:
                result.circuits += loaded
                result.circuits_checked.append(t)
        if result.missing:
            warnings.warn(f"the scan in {str(root)!r} did not finish; missing: {'; '.join(result.missing)} "
                          "(run the scan again with this out directory and settings to finish it)", stacklevel=2)
        _set_weight_support(result)
        _explain_flips(result)
        return result


# -- stage files ------------------------------------------------------------------------


def _heldout_text(score: FamilyScore, alpha: float) -> str:
    """``", held-out equivariance 0.97 q ≤ 0.032 (p ≤ 0.032): held out"`` ("did not hold out" when q > alpha
    or the statistic is ≤ 0, with the reason); empty for a family not validated."""
    main = score.heldout_test
    if main is None or math.isnan(main.q_value):
        return ""
    evidence = q_and_p(main.q_value, main.p_value, main.n_null or None)
    return f", held-out equivariance {main.equivariance:.2f} {evidence}: {main.verdict(alpha)}"


def _gain_text(circuit: Any) -> str:
    """``"gain +0.31"`` (``"gain n/a"`` for circuits saved before the rotation gain existed), and a
    warning when most of the weights come through 1×1 paths, which cannot show a rotation."""
    gain = float(getattr(circuit, "rotation_gain", math.nan))
    text = f"gain {gain:+.2f}" if math.isfinite(gain) else "gain n/a"
    share = float(getattr(circuit, "pointwise_share", math.nan))
    if math.isfinite(share) and share > 0.5:
        text += f" (mostly 1×1 paths: {share:.0%} of the weights, which cannot show a rotation)"
    return text


def _equivariance(family: Family) -> float | None:
    """The family's equivariance score (``Family.equivariance``), None when it was not scored."""
    return None if family.equivariance is None else family.equivariance.equivariance


def _validated(fams: Sequence[Family]) -> list[FamilyScore]:
    """The scores of the families of ``fams`` that were validated on held-out stimuli (``FamilyScore.heldout``)."""
    return [f.equivariance for f in fams if f.equivariance is not None and f.equivariance.heldout]


def _score_families(resp: Responses, fams: FamilyList, cfg: ScanConfig) -> None:
    """Give each family its equivariance score (``Family.equivariance``) with its BH q-value over the
    families of this layer and transform; nothing for a transform whose families are not scored
    (``Transform.scores``). A family the score cannot handle gets a NaN score saying why (:func:`_score`)."""
    if not resp.transform.scores:
        return
    scores = _set_q_values([_score(resp, f, cfg) for f in fams], cfg.n_null)
    for fam, sc in zip(fams, scores):
        fam.equivariance = sc
    failed = [sc.meta["unscored"] for sc in scores if "error" in sc.meta]
    if failed:
        warnings.warn(
            f"{resp.layer} {resp.transform}: {len(failed)} of {len(fams)} families not scored ({failed[0]})",
            stacklevel=3,
        )


def _score(resp: Responses, family: Family, cfg: ScanConfig) -> FamilyScore:
    """The family's equivariance score.

    A family with more members than the grid has steps cannot be scored (``score_responses``
    refuses), and neither can one whose scoring raises ``NotImplementedError``
    (a transform whose score is not supported): those get NaN scores, saying why in
    ``meta["unscored"]`` (and, for a raised error, its type in ``meta["error"]``).
    """
    steps = resp.values.shape[2]
    if len(family.units) > steps:
        return _unscored(resp, family, f"{len(family.units)} members on a {steps}-step grid; probe with more steps")
    try:
        return score_responses(resp, family.units, n_null=cfg.n_null, seed=cfg.seed, period=family.period)
    except NotImplementedError as err:  # a ValueError is a bug or bad input: it propagates
        return _unscored(resp, family, f"not scored: {err}", error=type(err).__name__)


def _unscored(resp: Responses, family: Family, why: str, error: str | None = None) -> FamilyScore:
    """A NaN score of ``family`` that says ``why`` in ``meta["unscored"]``."""
    nan = math.nan
    meta = {"unscored": why} if error is None else {"unscored": why, "error": error}
    return FamilyScore(
        layer=resp.layer, transform=resp.transform, units=list(family.units), order=list(family.units),
        preferred=dict(zip(family.units, family.preferred)), period=family.period, equivariance=nan,
        invariance=nan, per_shift=[], coverage=nan, holes=list(family.holes), p_value=nan, null_mean=nan, meta=meta,
    )  # fmt: skip


def _set_q_values(scores: list[FamilyScore], n_null: int) -> list[FamilyScore]:
    """Each score's equivariance q-value: Benjamini–Hochberg over the p-values of ``scores`` (one layer and
    transform); ``n_null`` where a score with a p-value does not say its own."""
    for sc, q in zip(scores, bh_q([sc.p_value for sc in scores])):
        sc.q_value = q
        if not sc.n_null and math.isfinite(sc.p_value):
            sc.n_null = n_null
    return scores


def _save_stage(root: Path, layer: str, t: str, resp: Responses, fams: FamilyList) -> None:
    """``responses.npz``, then ``families.json`` with the scores inside (written last: the stage is done);
    a ``scores.json`` of the previous layout goes."""
    d = stage_dir(root, layer, t)
    resp.save(d / "responses.npz")
    write_json(d / "families.json", {"format": _STAGE_FORMAT, **fams.to_dict()})
    (d / _OLD_SCORES).unlink(missing_ok=True)


def _load_stage(root: Path, layer: str, t: str) -> tuple[Responses, FamilyList] | None:
    """The finished stage of ``layer`` and ``t`` (either layout of the module doc), or None.

    The held-out results inside the families' scores are dropped: they are read from ``heldout.json``.

    Raises:
        ValueError: an unknown stage format, or a ``scores.json`` that does not match its families.
        UnreadableFile: a stage file that cannot be parsed (named in the message).
    """
    d = stage_dir(root, layer, t)
    if not ((d / "responses.npz").is_file() and (d / "families.json").is_file()):
        return None
    data = read_guarded(d / "families.json", _read_json_object)
    fmt = data.get("format")
    if fmt is None and not (d / _OLD_SCORES).is_file():
        return None  # the previous layout, stopped before its scores were written
    if fmt is not None and fmt != _STAGE_FORMAT:
        raise ValueError(f"{str(d / 'families.json')!r} has stage format {fmt!r}; "
                         f"this equifind reads {_STAGE_FORMAT!r}")
    fams = read_guarded(d / "families.json", lambda _: FamilyList.from_dict(data))
    if fmt is None:
        _attach_old_scores(fams, d / _OLD_SCORES)
    for fam in fams:
        if fam.equivariance is not None:
            fam.equivariance.heldout = {}
    return read_guarded(d / "responses.npz", Responses.load), fams


def _attach_old_scores(fams: FamilyList, path: Path) -> None:
    """Give ``fams`` the scores of a previous-layout ``scores.json`` (one per family, same order; none: unscored).

    Raises:
        ValueError: a number of scores other than 0 or one per family, or a score of other units than its family.
    """
    scores = read_guarded(path, lambda p: [FamilyScore.from_dict(s) for s in read_json(p)])
    if not scores:
        return
    if len(scores) != len(fams):
        raise ValueError(f"{str(path)!r} holds {len(scores)} scores for {len(fams)} families; expected one per family")
    for i, (fam, sc) in enumerate(zip(fams, scores)):
        if sorted(sc.units) != sorted(fam.units):
            raise ValueError(f"{str(path)!r}: score {i} is of units {sc.units}, its family {i} of units {fam.units}")
        fam.equivariance = sc


def _save_circuits(root: Path, circuits: list[Any], transforms: Sequence[str] = ()) -> None:
    """Write the circuits of each transform; ``transforms`` were checked, so they get a file even with no circuit."""
    by_t: dict[str, list[Any]] = {as_transform(t).name: [] for t in transforms}
    for c in circuits:
        by_t.setdefault(as_transform(c.transform).name, []).append(c)
    for t, items in by_t.items():
        arrays = {}
        for i, c in enumerate(items):
            arrays[f"weights_{i}"] = c.weights.cpu().numpy()
            arrays[f"cosines_{i}"] = c.cosines.cpu().numpy()
        json_path, npz_path = circuit_files(root, t)
        write_atomic(npz_path, lambda fh, arrays=arrays: np.savez_compressed(fh, **arrays))
        write_json(json_path, [c.to_dict(max_weights=0) for c in items])


def _load_circuits(root: Path, transform: str) -> list[Any] | None:
    from .circuits import CircuitScore

    json_path, npz_path = circuit_files(root, transform)
    if not (json_path.is_file() and npz_path.is_file()):
        return None
    items = read_guarded(json_path, read_json)

    def circuits_of(path: Path) -> list[Any]:
        out = []
        with np.load(path, allow_pickle=False) as arrays:
            for i, c in enumerate(items):
                c = {k: v for k, v in c.items() if k not in ("weights_shape", "weights", "cosines")}
                out.append(CircuitScore(**c, weights=torch.from_numpy(arrays[f"weights_{i}"]),
                                        cosines=torch.from_numpy(arrays[f"cosines_{i}"])))  # fmt: skip
        return out

    return read_guarded(npz_path, circuits_of)


def _read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        ValueError: not valid JSON, or not an object (the message names the file).
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} holds a JSON {type(data).__name__}, not an object")  # noqa: TRY004 - bad content
    return data


def _read_manifest(path: Path) -> dict[str, Any]:
    """The content of ``scan.json``.

    Raises:
        UnreadableFile: truncated or damaged, or not a scan manifest (no model, layers, transforms, config).
    """
    data = read_guarded(path, _read_json_object)
    lacking = [k for k in ("model", "layers", "transforms", "config") if k not in data]
    if lacking:
        raise UnreadableFile(path, f"not an equifind scan manifest: no {', '.join(map(repr, lacking))}")
    return data


def _finished_stages(root: Path, manifest: dict[str, Any]) -> tuple[set[Stage], bool]:
    """The stages ``scan.json`` records as finished, and whether the manifest predates that record
    (``"finished"`` absent: then the stages of its layers and transforms whose files are all there).

    Raises:
        UnreadableFile: a ``"finished"`` entry that is not a stage.
    """
    if "finished" not in manifest:
        layers, transforms = list(manifest["layers"]), list(manifest["transforms"])
        stages: list[Stage] = [(kind, layer, t) for kind in ("families", "heldout") for layer in layers for t in transforms]
        stages += [("circuits", None, t) for t in transforms]
        return {s for s in stages if all(p.is_file() for p in stage_files(root, s))}, True
    try:
        return {stage_from_json(entry, manifest_path(root)) for entry in manifest["finished"]}, False
    except (TypeError, ValueError) as err:
        raise UnreadableFile(manifest_path(root), str(err)) from err


class _Record:
    """The stages of a scan directory that finished, read back through :meth:`read`, added through :meth:`done`.

    ``legacy``: ``finished`` was read from the files there (a manifest written before the record existed),
    so a stage that turns out incomplete is not worth a warning. With ``repair``, a stage file that cannot be read is moved aside (:func:`~equifind.store.move_aside`) so
    the stage is recomputed; without (loading), it is only named in a warning. ``root`` None: nothing is
    read or written (a scan without ``out``).
    """

    def __init__(self, root: Path | None, manifest: dict[str, Any], finished: set[Stage], *, repair: bool,
                 legacy: bool = False) -> None:  # fmt: skip
        self.root, self.manifest, self.repair, self.legacy = root, manifest, repair, legacy
        self.finished: set[Stage] = set(finished)

    def read(self, stage: Stage) -> Any:
        """The results of ``stage`` read back, or None when it did not finish or its files cannot be used."""
        if self.root is None or stage not in self.finished:
            return None
        kind, layer, t = stage
        what = describe_stage(stage)
        try:
            if kind == "circuits":
                got = _load_circuits(self.root, t)
            else:
                got = (_load_stage if kind == "families" else _load_heldout)(self.root, layer, t)  # type: ignore[arg-type]
        except UnreadableFile as err:
            self.finished.discard(stage)
            if self.repair:
                moved = move_aside(err.path)
                warnings.warn(f"{err}; moved aside to {moved.name!r}, and {what} is computed again", stacklevel=3)
            else:
                warnings.warn(f"{err}; {what} is left out (a scan with this out directory computes it again)",
                              stacklevel=3)  # fmt: skip
            return None
        if got is None and not self.legacy:
            files = ", ".join(repr(str(p)) for p in stage_files(self.root, stage))
            warnings.warn(f"{str(manifest_path(self.root))!r} records {what} as finished, but its files ({files}) "
                          "are missing or incomplete; " + ("it is computed again" if self.repair else "left out"),
                          stacklevel=3)  # fmt: skip
        if got is None:
            self.finished.discard(stage)
        return got

    def done(self, stage: Stage, timings: dict[str, float]) -> None:
        """Record ``stage`` as finished (its files are written) in ``scan.json``, with the ``timings`` so far."""
        self.finished.add(stage)
        self.write(timings)

    def write(self, timings: dict[str, float]) -> None:
        """Rewrite ``scan.json`` (atomically): the manifest, ``timings`` and the stages finished."""
        if self.root is None:
            return
        order = {kind: i for i, kind in enumerate(STAGE_KINDS)}
        finished = sorted(self.finished, key=lambda s: (order[s[0]], s[1] or "", s[2]))
        write_json(manifest_path(self.root), {**self.manifest, "timings": timings,
                                              "finished": [stage_to_json(s) for s in finished]})  # fmt: skip


# -- the scan ---------------------------------------------------------------------------


def _open_out(out: Path, model: Model, config: ScanConfig, resume: bool, layers: Sequence[str]) -> tuple[set[Stage], bool, dict[str, float]]:
    """Get ``out`` ready for a scan: the stages finished there that can be reused, and their timings.

    Stale temporary files of killed writers are removed. Resuming refuses a scan of another
    model or with other settings. Resuming with another layer list keeps the per-layer stages
    but drops the circuit stages: circuits pair consecutive layers, and their q-values are BH
    over all the checks of a transform, so circuits read back from another layer list (and the
    weight verdicts drawn from them) would be wrong. A ``scan.json`` that cannot be read is moved
    aside with the stages it described (their settings cannot be checked), with a warning.

    Returns:
        ``(finished, legacy, timings)``: the stages recorded as finished (``legacy``: a manifest written
        before the record existed, those whose files are there) and their timings; none without ``resume``.

    Raises:
        ValueError: resuming a scan of another model or with other settings; the message says which
            differ (old → new) and how to start again.
    """
    import shutil

    clean_temporaries(out)
    manifest = manifest_path(out)
    if not manifest.is_file():
        if stages_dir(out).is_dir() and any(stages_dir(out).iterdir()):
            moved = move_aside(stages_dir(out))
            warnings.warn(f"{str(out)!r} holds stages but no {manifest.name}: their settings cannot be checked; "
                          f"moved aside to {moved.name!r} and computed again", stacklevel=3)  # fmt: skip
        return set(), False, {}
    if not resume:
        shutil.rmtree(stages_dir(out), ignore_errors=True)
        return set(), False, {}
    try:
        old = _read_manifest(manifest)
        finished, legacy = _finished_stages(out, old)
    except UnreadableFile as err:
        moved = [move_aside(p).name for p in (manifest, stages_dir(out)) if p.exists()]
        warnings.warn(f"{err}; moved aside ({', '.join(map(repr, moved))}): the stages it described cannot be "
                      "checked against these settings, so the whole scan is computed again", stacklevel=3)  # fmt: skip
        return set(), False, {}
    _check_same_settings(out, old, model, config)
    timings = {k: float(v) for k, v in (old.get("timings") or {}).items()}
    if old.get("layers") != list(layers):
        shutil.rmtree(circuits_dir(out), ignore_errors=True)
        finished = {s for s in finished if s[0] != "circuits"}
        timings = {k: v for k, v in timings.items() if not k.startswith("circuits/")}
    return finished, legacy, timings


class OtherSettingsError(ValueError):
    """Resuming into an ``out`` directory that holds a scan of another model or with other settings."""


def _check_same_settings(out: Path, old: dict[str, Any], model: Model, config: ScanConfig) -> None:
    """Refuse to resume the scan in ``out`` (manifest ``old``) with another model or other settings.

    Raises:
        OtherSettingsError: naming each setting that differs (``key: old → new``), and both ways to start again.
    """
    old_cfg = ScanConfig.from_dict(dict(old["config"]))
    changed = [f"model: {old.get('model')!r} → {model.name!r}"] if old.get("model") != model.name else []
    if old_cfg.fingerprint() != config.fingerprint():
        before, after = old_cfg.to_dict(), config.to_dict()
        changed += [f"{k}: {before.get(k)!r} → {after.get(k)!r}" for k in sorted(set(before) | set(after))
                    if k not in ("model", "layers", "transforms") and before.get(k) != after.get(k)]  # fmt: skip
    if changed:
        raise OtherSettingsError(
            f"{str(out)!r} holds a scan of {old.get('model')!r} with other settings ({'; '.join(changed)}); "
            "pass another out directory, or start again: resume=False in Python, --no-resume on the command line"
        )


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - start


def scan(
    model: Model,
    layers: Sequence[str] | None = None,
    transforms: Sequence[str | Transform] | None = None,
    config: str | os.PathLike | dict[str, Any] | ScanConfig | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    device: torch.device | str | None = None,
    seed: int | None = None,
    progress: bool = True,
    steps: int | None = None,
) -> ScanResult:
    """Scan layers for families and the circuits between them.

    Args:
        model: the model.
        layers: layer names (default: the config's, else every layer of the model), scanned
            in forward order.
        transforms: registered transforms, by name or object (:func:`equifind.transforms.names`:
            "rotation", "hue", "flip", "scale", "hue_rotation"; default: the config's, else
            :data:`~equifind.config.DEFAULT_TRANSFORMS`, rotation, hue and flip). Each is probed
            with ``steps`` grid steps, at most its ``scan_max_steps``; its families are scored
            where ``Transform.scores`` holds, and their circuits checked where ``Transform.circuits`` does.
        config: a TOML path, dict or :class:`ScanConfig` (steps, stimuli, thresholds);
            arguments given here override it.
        out: directory for the stage files; with ``resume`` finished stages are read back (with
            their timings). A stage file that cannot be read is named in a warning, moved aside
            (``<name>.corrupt``) and computed again; see the module doc.
        resume: reuse the finished stages in ``out`` (they must come from the same settings;
            the CLI's ``--no-resume`` is ``resume=False``).
        device: move the model there first (default: leave it where it is).
        seed: overrides the config's seed.
        progress: progress bars per layer and stage.
        steps: overrides the config's transform grid size (each transform's is capped at its
            ``scan_max_steps``).

    Returns:
        A :class:`ScanResult`.

    Raises:
        KeyError: an unknown layer. ValueError: bad settings (an unknown transform, too few
            steps for one), a config whose ``model`` is another model's, or ``out`` holds a scan
            with other settings (:class:`OtherSettingsError`).
    """
    cfg = load_config(config).replace(layers=layers, transforms=transforms, seed=seed, steps=steps)
    if cfg.model is not None and cfg.model != model.name:
        raise ValueError(f"the config is for model {cfg.model!r}, but the model scanned is {model.name!r}")
    if device is not None:
        model.to(device)
    names = list(cfg.layers) or model.layers
    for name in names:
        model.check_layer(name)
    names = sorted(dict.fromkeys(names), key=model.depth)
    root = Path(out) if out is not None else None
    finished, legacy, timings = _open_out(root, model, cfg, resume, names) if root is not None else (set(), False, {})
    result = ScanResult(model.name, names, list(cfg.transforms), cfg.to_dict(), timings=timings)
    record = _Record(root, {"format": _FORMAT, "model": model.name, "layers": names, "transforms": list(cfg.transforms),
                            "config": cfg.to_dict(), "matches": []}, finished, repair=True, legacy=legacy)  # fmt: skip
    record.write(result.timings)
    stimuli = cfg.stimuli if isinstance(cfg.stimuli, str) else list(cfg.stimuli)
    jobs = [(layer, t) for layer in names for t in cfg.transforms]
    bar = progress_bar(jobs, desc="scan", unit="stages", enabled=progress)
    for layer, t in bar:
        bar.set_postfix_str(f"{layer} {t}")
        stage = record.read(("families", layer, t))
        if stage is None:
            with _timed(result.timings, f"{layer}/{t}/probe"):
                resp = probe(model, layer, t, stimuli=stimuli, steps=cfg.steps_for(t), seed=cfg.seed, progress=progress)
            with _timed(result.timings, f"{layer}/{t}/families"):
                fams = find_families(
                    resp, min_size=cfg.min_size, min_selectivity=cfg.min_selectivity,
                    min_similarity=cfg.min_similarity, n_null=cfg.n_null, seed=cfg.seed,
                    min_colour_index=cfg.min_colour_index,
                )  # fmt: skip
            with _timed(result.timings, f"{layer}/{t}/scores"):
                _score_families(resp, fams, cfg)
            if root is not None:
                _save_stage(root, layer, t, resp, fams)
                record.done(("families", layer, t), result.timings)
        else:
            resp, fams = stage
        bar.line(_stage_line(result, layer, t, resp, fams, computed=stage is None))
        result.responses.setdefault(layer, {})[t] = resp
        result.families.setdefault(layer, {})[t] = fams
        if cfg.validate_sources and t == cfg.transforms[-1]:  # the layer's last stage: validate its families
            start = time.perf_counter()
            _scan_heldout(model, result, cfg, layer, record, progress)
            bar.line(f"{layer} held-out validation in {time.perf_counter() - start:.1f} s")
    _set_heldout_q_values(result)
    if cfg.circuits and len(names) > 1:
        result.circuits_checked = [t for t in result.transforms if as_transform(t).circuits]
        result.circuits = _scan_circuits(model, result, cfg, record, progress)
    _set_weight_support(result)
    _explain_flips(result)
    return result


def _stage_line(result: ScanResult, layer: str, t: str, resp: Responses, fams: FamilyList, computed: bool) -> str:
    """A quiet log's line for a finished layer × transform stage: units, families, significant ones, time."""
    alpha = float(result.config.get("alpha", DEFAULT_Q))
    significant = sum(f.q_value <= alpha for f in fams)
    seconds = sum(result.timings.get(f"{layer}/{t}/{part}", 0.0) for part in ("probe", "families", "scores"))
    how = f"in {seconds:.1f} s" if computed else "(read back)"
    return f"{layer} {t}: {len(resp.units)} units, {len(fams)} families ({significant} with q ≤ {alpha:g}) {how}"


def _scan_circuits(model: Model, result: ScanResult, cfg: ScanConfig, record: _Record, progress: bool) -> list[Any]:
    """The significant circuits of every transform in ``result.circuits_checked``, read back or found."""
    from .circuits import find_circuits

    found: list[Any] = []
    bar = progress_bar(result.circuits_checked, desc="circuits", unit="transforms", enabled=progress)
    for t in bar:
        loaded = record.read(("circuits", None, t))
        start = time.perf_counter()
        computed = loaded is None
        if computed:
            by_layer = {layer: list(result.families[layer][t]) for layer in result.layers}
            invariant = {layer: list(result.families[layer][t].invariant) for layer in result.layers}
            loaded = find_circuits(
                model, by_layer, invariant, transform=t, alpha=cfg.alpha, n_null=cfg.circuit_n_null, seed=cfg.seed,
                min_score=cfg.circuit_min_score,
            )
            result.timings[f"circuits/{t}"] = time.perf_counter() - start
            if record.root is not None:
                _save_circuits(record.root, loaded, [t])
                record.done(("circuits", None, t), result.timings)
        how = f"in {time.perf_counter() - start:.1f} s" if computed else "(read back)"
        bar.line(f"{t}: {len(loaded)} significant circuits {how}")
        found += loaded
    return sorted(found, key=lambda c: -c.score)


# -- held-out validation ----------------------------------------------------------------


Heldout = dict[str, HeldoutSource]  # source -> a family's held-out test
HeldoutImages = dict[str, dict[int, np.ndarray]]  # source -> unit -> uint8 [k, 3, H, W]


def _pick_for_validation(fams: Sequence[Family], top: int, alpha: float) -> list[int]:
    """Indices of the (at most ``top``) families of one layer and transform to validate on held-out stimuli.

    Significant families (discovery q ≤ ``alpha``) first, then larger ones, then smaller discovery q, then
    smaller equivariance q (``Family.equivariance``), then the given order. Families without a finite
    equivariance score (unscored) and flip pairs explained by a rotation family (``Family.explained_by``,
    as far as it is set) are skipped.
    """
    def key(i: int) -> tuple[bool, int, float, float, int]:
        f = fams[i]
        q = f.q_value if math.isfinite(f.q_value) else math.inf
        eq_q = f.equivariance.q_value if math.isfinite(f.equivariance.q_value) else math.inf  # type: ignore[union-attr]
        return (not f.q_value <= alpha, -len(f.units), q, eq_q, i)

    ok = [i for i, f in enumerate(fams) if math.isfinite(_equivariance(f) or math.nan) and f.explained_by is None]
    return sorted(ok, key=key)[:top]


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """``Tensor[k, 3, H, W]`` in [0, 1] -> ``uint8 ndarray [k, 3, H, W]``."""
    return (images.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()


def _scan_heldout(model: Model, result: ScanResult, cfg: ScanConfig, layer: str, record: _Record,
                  progress: bool) -> None:  # fmt: skip
    """Validate the best families of ``layer``'s transforms (stage ``heldout``), read back where finished.

    The images of every transform's families and null pool are made in one batch (see the module doc),
    whenever any transform's stage is missing, so the images never depend on which stages were finished.
    """
    by_t = result.families.get(layer, {})
    ts = [t for t in result.transforms if result.validated(t) and t in by_t]
    for t in ts:
        other = result.explaining(layer, t)
        if other is not None:
            explain_flip_pairs(by_t[t], by_t[other])  # skip the pairs a rotation family explains
    picks = {t: [by_t[t][i] for i in _pick_for_validation(by_t[t], cfg.validate_top, cfg.alpha)] for t in ts}
    done = {t: record.read(("heldout", layer, t)) for t in ts}
    todo = [t for t in ts if done[t] is None]
    stimuli = HeldoutStimuli(model, layer, seed=cfg.seed, patches=cfg.validate_patches, fv_steps=cfg.validate_fv_steps,
                             progress=progress)  # fmt: skip
    if any(picks[t] for t in todo):
        units: set[int] = set()
        for t in ts:
            if picks[t]:
                units |= {u for f in picks[t] for u in f.units}
                units |= set(_pool_sample(result.responses[layer][t], cfg.validate_pool, cfg.seed))
        with _timed(result.timings, f"{layer}/heldout/images"):
            stimuli.ensure(sorted(units), cfg.validate_sources)
    for t in todo:
        fams = picks[t]
        tests: list[Heldout] = []
        if fams:
            with _timed(result.timings, f"{layer}/{t}/heldout"):
                tests = validate_families(
                    model, result.responses[layer][t], [f.units for f in fams], periods=[f.period for f in fams],
                    sources=cfg.validate_sources, steps=cfg.validate_steps, n_null=cfg.n_null, pool=cfg.validate_pool,
                    seed=cfg.seed, stimuli=stimuli, progress=progress,
                )  # fmt: skip
        members = sorted({u for f in fams for u in f.units})
        images = {s: {u: _to_uint8(stimuli.images[s][u]) for u in members} for s in cfg.validate_sources}
        entries = [(list(f.units), test) for f, test in zip(fams, tests)]
        if record.root is not None:
            _save_heldout_stage(record.root, layer, t, entries, images)
            record.done(("heldout", layer, t), result.timings)
        done[t] = (entries, images)
    for t in ts:
        _attach_heldout(result, layer, t, *done[t])  # type: ignore[misc]


def _attach_heldout(result: ScanResult, layer: str, t: str, entries: list[tuple[list[int], Heldout]],
                    images: HeldoutImages) -> None:  # fmt: skip
    """Give each scored family's score its held-out tests (matched by units; none: not validated); keep the images."""
    by_units = {tuple(sorted(units)): test for units, test in entries}
    for fam in result.families.get(layer, {}).get(t, []):
        if fam.equivariance is not None:
            fam.equivariance.heldout = dict(by_units.get(tuple(sorted(fam.units)), {}))
    result.heldout_images.setdefault(layer, {})[t] = images


def _set_heldout_q_values(result: ScanResult) -> None:
    """Benjamini–Hochberg q of every validated family's held-out p, over all validated families of the scan,
    one list per source key ("feature_vis", "patches", "combined")."""
    by_key: dict[str, list[HeldoutSource]] = {}
    for layer in result.layers:
        for t in result.transforms:
            for fam in result.families.get(layer, {}).get(t, []):
                for key, test in (fam.equivariance.heldout if fam.equivariance is not None else {}).items():
                    by_key.setdefault(key, []).append(test)
    for tests in by_key.values():
        for test, q in zip(tests, bh_q([test.p_value for test in tests])):
            test.q_value = q


def _save_heldout(root: Path, layer: str, t: str, fams: Sequence[Family], images: HeldoutImages) -> None:
    """Write the held-out stage of the validated families of ``fams`` (:meth:`ScanResult.save`)."""
    entries = [(list(sc.units), sc.heldout) for sc in _validated(fams)]
    _save_heldout_stage(root, layer, t, entries, images)


def _save_heldout_stage(root: Path, layer: str, t: str, entries: list[tuple[list[int], Heldout]],
                        images: HeldoutImages) -> None:  # fmt: skip
    """``heldout.npz`` (the images), then ``heldout.json`` (the results; written last, it marks the stage done)."""
    d = stage_dir(root, layer, t)
    arrays = {f"{source}_{u}": img for source, by_unit in images.items() for u, img in by_unit.items()}
    write_atomic(d / "heldout.npz", lambda fh: np.savez_compressed(fh, **arrays))
    write_json(d / "heldout.json", {"families": [
        {"units": [int(u) for u in units], "heldout": {k: v.to_dict() for k, v in test.items()}} for units, test in entries
    ]})  # fmt: skip


def _load_heldout(root: Path, layer: str, t: str) -> tuple[list[tuple[list[int], Heldout]], HeldoutImages] | None:
    """The held-out stage of ``layer`` and ``t``: ``(entries, images)``, or None when it is not finished."""
    d = stage_dir(root, layer, t)
    if not ((d / "heldout.json").is_file() and (d / "heldout.npz").is_file()):
        return None

    def entries_of(path: Path) -> list[tuple[list[int], Heldout]]:
        return [([int(u) for u in e["units"]], {k: HeldoutSource.from_dict(v) for k, v in e["heldout"].items()})
                for e in read_json(path)["families"]]  # fmt: skip

    def images_of(path: Path) -> HeldoutImages:
        images: HeldoutImages = {}
        with np.load(path, allow_pickle=False) as arrays:
            for key in arrays.files:
                source, unit = key.rsplit("_", 1)
                images.setdefault(source, {})[int(unit)] = arrays[key]
        return images

    return read_guarded(d / "heldout.json", entries_of), read_guarded(d / "heldout.npz", images_of)


# -- weight verdicts --------------------------------------------------------------------


def _set_weight_support(result: ScanResult) -> None:
    """Give every family its weight verdict from ``result.circuits`` (see ``Family.weight_support``).

    Families whose weights were checked (:meth:`ScanResult.weights_checked`) get
    ``weight_checked=True`` and the support of their best circuit, or None; the others
    ``weight_checked=False`` and None. Whatever the families held before is replaced.
    """
    for layer, by_t in result.families.items():
        for t, fams in by_t.items():
            checked = result.weights_checked(layer, t)
            for fam in fams:
                fam.weight_checked = checked
                fam.weight_support = best_weight_support(fam, result.circuits) if checked else None


def _explain_flips(result: ScanResult) -> None:
    """Set ``Family.explained_by`` of every flip pair (see :func:`~equifind.families.explain_flip_pairs`).

    The families of a transform with ``Transform.pairs_explained_by`` (flip) are checked against
    the families of that transform (rotation) in a layer holding both (:meth:`ScanResult.explaining`);
    elsewhere each of them gets None. Whatever the families held before is replaced (``families.json``
    of the flip stage may be written before the rotation stage exists).
    """
    for layer, by_t in result.families.items():
        for t, fams in by_t.items():
            if as_transform(t).pairs_explained_by is None:
                continue
            other = result.explaining(layer, t)
            explain_flip_pairs(fams, by_t[other] if other is not None else [])
