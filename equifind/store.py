"""Files on disk: atomic writes, temporaries, unreadable files, and where a scan keeps its stages.

Every file equifind writes goes through :func:`write_atomic`: the content is written
to a temporary file beside the destination and renamed into place (``os.replace``),
so a reader (or a resumed scan) never sees half a file, and a failure leaves neither
the file nor the temporary file behind. One mode for everything written: a file gets
the mode a plain ``open(path, "w")`` would give it (``0o666`` less the umask), a
directory that of a plain ``mkdir`` (``0o777`` less the umask), never ``mkstemp``'s or
``mkdtemp``'s private ``0o600``/``0o700``.

A process killed outright (SIGKILL, power loss) cannot remove its temporaries. Their
names carry the writer's process id (``.<name>.<pid>-<random>.tmp``, directories
``<prefix><pid>-<random>``), so the next run removes those of processes that are gone
(:func:`clean_temporaries`, :func:`clean_temporary_dirs`) and leaves those of a process
still running alone.

A file that cannot be parsed is never deleted: :func:`move_aside` renames it to
``<name>.corrupt`` (``.corrupt-2``, … when taken), and :class:`UnreadableFile` is the
error that names it.

The stage layout of a scan (see :mod:`equifind.scan`) is spelled here once::

    <root>/scan.json                                  manifest, with the stages finished
    <root>/stages/<layer>/<transform>/<file>          one layer and transform
    <root>/stages/circuits/<transform>.json + .npz    circuits of a transform

A :data:`Stage` is ``("families", layer, transform)`` (probe, discovery, scores),
``("heldout", layer, transform)`` (held-out validation) or ``("circuits", None,
transform)``; ``scan.json`` lists those finished under ``"finished"``, one
``{"stage", "layer", "transform"}`` object each (:func:`stage_to_json`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .transforms import Transform, as_transform

__all__ = [
    "write_atomic", "write_bytes", "write_text", "write_json", "read_json",
    "UnreadableFile", "read_guarded", "move_aside", "pid_alive",
    "clean_temporaries", "make_temporary_dir", "clean_temporary_dirs",
    "MANIFEST", "manifest_path", "stages_dir", "stage_dir", "circuits_dir", "circuit_files",
    "Stage", "STAGE_KINDS", "stage_files", "stage_to_json", "stage_from_json", "describe_stage",
]  # fmt: skip

_TRIES = 100  # temporary names tried before giving up (each is 48 random bits)
_TMP_FILE = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[0-9a-f]{12}\.tmp$")  # legacy names have no pid
_LEGACY_AGE = 3600.0  # seconds after which a temporary without a pid in its name counts as stale
#: What parsing a truncated or damaged file raises (JSON, npz: zip and zlib).
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file through ``write(file)`` atomically: a temporary file beside ``path``, then ``os.replace``.

    The parent directory is created if missing. The temporary file is created with mode
    ``0o666`` (the kernel takes the umask off, as for ``open()``), so the result is as
    readable by others as a plainly opened file would be.

    Args:
        path: the destination; replaced if it exists.
        write: writes the whole content into the binary file object it is given (not closing it).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        Whatever ``write`` or the file system raises; then neither ``path`` (if it did not
        exist; else its old content stays) nor a temporary file is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new file ``.<name>.<pid>-<random>.tmp`` beside ``path`` (mode 0o666 & ~umask) and its open descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {str(path)!r} after {_TRIES} tries")


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`write_atomic`)."""
    return write_atomic(path, lambda fh: fh.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (:func:`write_atomic`)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically; NaN and infinities are written as JSON's ``NaN``/``Infinity``."""
    return write_text(path, json.dumps(data, indent=1, allow_nan=True))


def read_json(path: str | os.PathLike) -> Any:
    """The JSON content of ``path``.

    Raises:
        FileNotFoundError: no file. ValueError: the file is not valid JSON (the message names it).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from err


# -- unreadable files ---------------------------------------------------------------------


class UnreadableFile(ValueError):
    """A file that exists but cannot be parsed (truncated, damaged); ``path`` names it, ``reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{str(self.path)!r} cannot be read ({reason})")


def read_guarded(path: str | os.PathLike, read: Callable[[Path], Any]) -> Any:
    """``read(path)``, turning what a damaged file raises (:data:`PARSE_ERRORS`) into :class:`UnreadableFile`.

    Raises:
        FileNotFoundError: no file at ``path`` (a missing file is not a damaged one).
        UnreadableFile: ``read`` raised one of :data:`PARSE_ERRORS`; the message names ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {str(path)!r}")
    try:
        return read(path)
    except UnreadableFile:
        raise
    except PARSE_ERRORS as err:
        raise UnreadableFile(path, f"{type(err).__name__}: {err}") from err


def move_aside(path: str | os.PathLike) -> Path:
    """Rename ``path`` to ``<name>.corrupt`` beside it (``<name>.corrupt-2``, … when taken); never deletes.

    Returns:
        The new path.
    """
    path = Path(path)
    for i in range(1, _TRIES + 1):
        target = path.with_name(f"{path.name}.corrupt" + (f"-{i}" if i > 1 else ""))
        if not target.exists():
            os.rename(path, target)
            return target
    raise FileExistsError(f"no free name to move {str(path)!r} aside after {_TRIES} tries")


# -- temporaries of killed processes ------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(pid: str | None, newest_mtime: float) -> bool:
    """A temporary is stale when its writer (``pid``) is gone; without a pid, when untouched for an hour."""
    if pid is not None:
        return int(pid) != os.getpid() and not pid_alive(int(pid))
    return time.time() - newest_mtime > _LEGACY_AGE


def clean_temporaries(root: str | os.PathLike) -> list[Path]:
    """Remove the stale temporary files of :func:`write_atomic` under ``root`` (recursively).

    A temporary is stale when the process named in it is gone (one written before names
    carried a pid: when an hour old). Those of running processes stay.

    Returns:
        The files removed.
    """
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for dirpath, _, files in os.walk(root):
        for name in files:
            match = _TMP_FILE.match(name)
            path = Path(dirpath) / name
            try:
                if match and _stale(match["pid"], path.lstat().st_mtime):
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # removed meanwhile by its writer
                continue
    return removed


def make_temporary_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new directory ``<parent>/<prefix><pid>-<random>`` with a plain ``mkdir``'s mode (0o777 & ~umask).

    Raises:
        OSError: ``parent`` is not writable (the error names it), or no free name.
    """
    parent = Path(parent)
    for _ in range(_TRIES):
        path = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}"
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary directory name in {str(parent)!r} after {_TRIES} tries")


def clean_temporary_dirs(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the stale directories of :func:`make_temporary_dir` named ``<prefix>…`` in ``parent``.

    Stale: the process named in it is gone; a legacy name without a pid (``mkdtemp``'s
    ``<prefix><8 characters>``): the directory and its subdirectories untouched for an hour.

    Returns:
        The directories removed.
    """
    parent = Path(parent)
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    pattern = re.compile(re.escape(prefix) + r"(?:(?P<pid>\d+)-[0-9a-f]{12}|[A-Za-z0-9_]{8})$")
    for path in parent.iterdir():
        match = pattern.match(path.name)
        if not match or not path.is_dir() or path.is_symlink():
            continue
        try:
            newest = max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.iterdir() if p.is_dir()])
        except FileNotFoundError:
            continue
        if _stale(match["pid"], newest):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# -- the scan's stage layout -------------------------------------------------------------

#: The manifest of a scan directory (settings, model, layers, transforms).
MANIFEST = "scan.json"


def manifest_path(root: str | os.PathLike) -> Path:
    """``<root>/scan.json``."""
    return Path(root) / MANIFEST


def stages_dir(root: str | os.PathLike) -> Path:
    """``<root>/stages``: every stage of a scan."""
    return Path(root) / "stages"


def stage_dir(root: str | os.PathLike, layer: str, transform: str | Transform) -> Path:
    """``<root>/stages/<layer>/<transform>``: one layer and transform (a ``/`` in the layer name becomes ``_``).

    Raises:
        KeyError: an unknown transform.
    """
    return stages_dir(root) / layer.replace("/", "_") / as_transform(transform).name


def circuits_dir(root: str | os.PathLike) -> Path:
    """``<root>/stages/circuits``: the circuits between consecutive layers."""
    return stages_dir(root) / "circuits"


def circuit_files(root: str | os.PathLike, transform: str | Transform) -> tuple[Path, Path]:
    """``(<transform>.json, <transform>.npz)`` in :func:`circuits_dir`: the circuits and their arrays.

    Raises:
        KeyError: an unknown transform.
    """
    name = as_transform(transform).name
    d = circuits_dir(root)
    return d / f"{name}.json", d / f"{name}.npz"


#: One stage of a scan: ``(kind, layer, transform)``, ``layer`` None for circuits.
Stage = tuple[str, "str | None", str]
#: The kinds of stage, in the order a scan runs them for a layer (circuits last).
STAGE_KINDS = ("families", "heldout", "circuits")


def stage_files(root: str | os.PathLike, stage: Stage) -> tuple[Path, Path]:
    """The two files of ``stage``: ``(arrays .npz, results .json)``; the .json is written last.

    Raises:
        ValueError: an unknown kind. KeyError: an unknown transform.
    """
    kind, layer, t = stage
    if kind == "circuits":
        json_path, npz_path = circuit_files(root, t)
        return npz_path, json_path
    if kind not in STAGE_KINDS or layer is None:
        raise ValueError(f"unknown stage {stage!r}; kinds: {list(STAGE_KINDS)} (a layer for all but circuits)")
    d = stage_dir(root, layer, t)
    return (d / "responses.npz", d / "families.json") if kind == "families" else (d / "heldout.npz", d / "heldout.json")


def stage_to_json(stage: Stage) -> dict[str, str]:
    """``{"stage": kind, "layer": layer, "transform": name}`` (no ``layer`` for circuits)."""
    kind, layer, t = stage
    return {"stage": kind, "transform": t} if layer is None else {"stage": kind, "layer": layer, "transform": t}


def stage_from_json(entry: Any, source: str | os.PathLike) -> Stage:
    """The :data:`Stage` of one ``"finished"`` entry of ``source`` (a manifest).

    Raises:
        ValueError: not a stage entry (the message names ``source`` and the entry).
    """
    ok = isinstance(entry, dict) and entry.get("stage") in STAGE_KINDS and isinstance(entry.get("transform"), str)
    if ok and (entry["stage"] == "circuits") != isinstance(entry.get("layer"), str):
        return entry["stage"], entry.get("layer"), entry["transform"]
    raise ValueError(f"{str(source)!r}: {entry!r} is not a finished stage; expected "
                     f'{{"stage": one of {list(STAGE_KINDS)}, "layer": ... (not for circuits), "transform": ...}}')


def describe_stage(stage: Stage) -> str:
    """``"layer 3 · rotation: families"``, ``"layer 3 · rotation: held-out validation"``, ``"circuits of rotation"``."""
    kind, layer, t = stage
    if kind == "circuits":
        return f"circuits of {t}"
    return f"layer {layer} · {t}: " + ("held-out validation" if kind == "heldout" else "probe, families and scores")
