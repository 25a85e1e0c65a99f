"""Files on disk: atomic writes, and where a scan keeps its stages.

Every file equifind writes goes through :func:`write_atomic`: the content is written
to a temporary file beside the destination and renamed into place (``os.replace``),
so a reader (or a resumed scan) never sees half a file, and a failure leaves neither
the file nor the temporary file behind. The file gets the mode a plain ``open(path,
"w")`` would give it (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.

The stage layout of a scan (see :mod:`equifind.scan`) is spelled here once::

    <root>/scan.json                                  manifest
    <root>/stages/<layer>/<transform>/<file>          one layer and transform
    <root>/stages/circuits/<transform>.json + .npz    circuits of a transform
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .transforms import Transform, as_transform

__all__ = [
    "write_atomic", "write_bytes", "write_text", "write_json", "read_json",
    "MANIFEST", "manifest_path", "stages_dir", "stage_dir", "circuits_dir", "circuit_files",
]  # fmt: skip

_TRIES = 100  # temporary names tried before giving up (each is 48 random bits)


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
    """A new file ``.<name>.<random>.tmp`` beside ``path`` (mode 0o666 & ~umask) and its open descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
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
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from err


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
