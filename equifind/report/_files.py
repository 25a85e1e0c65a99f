"""Files of a report: saving figures atomically, safe file names, staging a report directory.

Every file is written to a temporary name beside its destination and renamed into
place (``os.replace``), so a reader never sees half a file. A whole report is first
written into a staging directory beside ``out_dir`` (``.<name>.report-<pid>-<random>``)
and moved into place at the end; on an exception the staging directory is removed and
``out_dir`` is left as it was. A report killed outright (SIGKILL) cannot remove its
staging directory: the next report into the same ``out_dir`` removes those of processes
that are gone, and stale temporary files inside ``out_dir``
(:func:`equifind.store.clean_temporaries`). Files and directories get the modes of a
plain ``open``/``mkdir`` (``0o644``/``0o755`` under the usual umask).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import matplotlib
from matplotlib.figure import Figure

from ..store import (
    clean_temporaries,
    clean_temporary_dirs,
    make_temporary_dir,
    write_atomic,
)

__all__ = [
    "ImageFormat", "ReportFormat", "IMAGE_FORMATS", "REPORT_FORMATS", "DEFAULT_FORMATS",
    "save_figure", "check_formats", "write_text", "slug", "staged_report", "check_writable",
]  # fmt: skip

ImageFormat = Literal["png", "svg", "pdf"]
ReportFormat = Literal["png", "svg", "pdf", "html"]

#: Image formats that :func:`save_figure` writes.
IMAGE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
#: Formats that :func:`equifind.report.report` accepts.
REPORT_FORMATS: tuple[str, ...] = (*IMAGE_FORMATS, "html")
#: What :func:`equifind.report.report` writes by default: the page only (figure files on request).
DEFAULT_FORMATS: tuple[ReportFormat, ...] = ("html",)
#: Name of the report's figure folder inside ``out_dir``.
FIGURES_DIR = "figures"
INDEX = "index.html"

# Metadata that would otherwise carry the date or vary between runs.
_METADATA: dict[str, dict[str, None]] = {
    "png": {"Software": None},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None},
}


def check_formats(formats: Sequence[str] | str, valid: Sequence[str]) -> tuple[str, ...]:
    """Validate a sequence of format names (lower-cased, duplicates dropped, order kept).

    Args:
        formats: e.g. ``("png", "svg")``; a single string is one format.
        valid: the accepted names.

    Returns:
        The formats as a tuple.

    Raises:
        ValueError: an unknown format, or none at all.
        TypeError: ``formats`` is not a string or a sequence of strings.
    """
    if isinstance(formats, str):
        formats = (formats,)
    try:
        items = list(formats)
    except TypeError:
        raise TypeError(f"formats must be a sequence of strings from {list(valid)}, got {type(formats).__name__}") from None
    out: list[str] = []
    for fmt in items:
        if not isinstance(fmt, str):
            raise TypeError(f"formats must be strings from {list(valid)}, got {fmt!r}")
        name = fmt.lower().lstrip(".")
        if name not in valid:
            raise ValueError(f"unknown format {fmt!r}; valid formats: {list(valid)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"formats is empty; give at least one of {list(valid)}")
    return tuple(out)


def _replace_into(path: Path, data_writer: Callable[[BinaryIO], None]) -> None:
    """Write through ``data_writer(file)`` into a temporary file, then rename it to ``path``
    (:func:`equifind.store.write_atomic`: the mode of a plainly opened file)."""
    write_atomic(path, data_writer)


def save_figure(
    fig: Figure, stem: str | os.PathLike, formats: Sequence[ImageFormat] | ImageFormat = IMAGE_FORMATS, *, dpi: int = 120
) -> list[Path]:
    """Save a figure in each format, atomically and reproducibly.

    Output is byte-for-byte the same for the same figure (no dates in the files,
    fixed SVG ids). The figure is left as it is; the figures of
    :mod:`equifind.report` are not registered with pyplot, so there is nothing to close.

    Args:
        fig: a matplotlib figure.
        stem: the path without extension, e.g. ``out/figures/mixed3b_rotation``;
            ``stem.png``, ``stem.svg``, ... are written (folders created).
        formats: any of ``"png"``, ``"svg"``, ``"pdf"`` (default all three).
        dpi: resolution of the PNG (and of images embedded in SVG/PDF).

    Returns:
        The paths written, in the order of ``formats``.

    Raises:
        ValueError: an unknown format, or a ``dpi`` that is not positive.
        TypeError: ``fig`` is not a matplotlib Figure.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib.figure.Figure, got {type(fig).__name__}")
    if not isinstance(dpi, int) or dpi <= 0:
        raise ValueError(f"dpi must be a positive int, got {dpi!r}")
    fmts = check_formats(formats, IMAGE_FORMATS)
    base = Path(stem)
    written: list[Path] = []
    with matplotlib.rc_context({"svg.hashsalt": "equifind", "svg.fonttype": "path", "pdf.compression": 6}):
        for fmt in fmts:
            path = base.with_name(f"{base.name}.{fmt}")

            def write(f: BinaryIO, fmt: str = fmt) -> None:
                fig.savefig(f, format=fmt, dpi=dpi, metadata=_METADATA[fmt], facecolor="white")

            _replace_into(path, write)
            written.append(path)
    return written


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    data = text.encode("utf-8")

    def write(f: BinaryIO) -> None:
        f.write(data)

    _replace_into(path, write)
    return path


def slug(name: str) -> str:
    """A file-name-safe version of ``name``; names that had to change get a short hash.

    ``"mixed3b"`` stays ``"mixed3b"``; ``"block<1>/conv"`` becomes
    ``"block_1_conv-<6 hex>"``, so two names never share a slug.
    """
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:60]
    if safe == name and safe:
        return safe
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    return f"{safe or 'x'}-{digest}"


def _stage_prefix(out: Path) -> str:
    """The name prefix of ``out``'s staging directories (beside it)."""
    return f".{out.name}.report-"


def check_writable(out_dir: str | os.PathLike) -> Path:
    """Check, before any figure is drawn, that a report can be written into ``out_dir``.

    The report is staged beside ``out_dir`` and moved into it, so both the nearest existing
    folder at or above ``out_dir``'s parent and an existing ``out_dir`` must take new files;
    that is tried (a file created and removed), not guessed from permission bits.

    Returns:
        ``out_dir`` as an absolute path.

    Raises:
        NotADirectoryError: ``out_dir`` (or a folder above it) exists and is not a directory.
        PermissionError: a folder that would have to be written is not writable (named in the message).
    """
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {str(out)!r} exists and is not a directory")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot create the report folder {str(out)!r}: {str(parent)!r} is not a directory")
    for folder in [parent] + ([out] if out.is_dir() else []):
        _try_write(folder, out)
    return out


def _try_write(folder: Path, out: Path) -> None:
    """Create and remove a file in ``folder``.

    Raises:
        PermissionError: ``folder`` does not take new files (the message names it and ``out``).
    """
    probe = folder / f".equifind-write-check.{os.getpid()}-{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise PermissionError(err.errno, f"cannot write the report {str(out)!r}: the folder {str(folder)!r} is not "
                                         f"writable ({os.strerror(err.errno)}); choose another out_dir") from None
    os.close(fd)
    probe.unlink()


@contextlib.contextmanager
def staged_report(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Stage a report beside ``out_dir`` and move it into place when the block succeeds.

    The report consists of ``index.html`` and the ``figures/`` folder; both are
    replaced as a unit (a previous report's files are removed), and nothing else in
    an existing ``out_dir`` (such as a saved scan) is touched. A new ``out_dir`` is
    created by one rename of the staging directory. If the block raises, the staging
    directory is deleted and ``out_dir`` is unchanged (not created if it did not exist).
    Staging directories of earlier reports into ``out_dir`` whose process is gone (killed),
    and stale temporary files in ``out_dir``, are removed first.

    Yields:
        The staging directory to write ``index.html`` and ``figures/`` into.

    Raises:
        NotADirectoryError: ``out_dir`` exists and is not a directory.
        PermissionError: ``out_dir`` or the folder it is created in is not writable.
    """
    out = check_writable(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_temporary_dirs(out.parent, _stage_prefix(out))
    clean_temporaries(out)  # a scan saved in out_dir may have left some too
    stage = make_temporary_dir(out.parent, _stage_prefix(out))
    try:
        yield stage
        _install(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _install(stage: Path, out: Path) -> None:
    """Move the staged report into ``out`` (see :func:`staged_report`)."""
    if not out.exists():
        try:
            os.rename(stage, out)
            return
        except OSError:  # created meanwhile by someone else: merge below
            pass
    trash = stage / ".previous"
    trash.mkdir()
    for name in (FIGURES_DIR, INDEX):
        if (out / name).exists() or (out / name).is_symlink():
            os.replace(out / name, trash / name)
    if (stage / FIGURES_DIR).exists():
        os.replace(stage / FIGURES_DIR, out / FIGURES_DIR)
    if (stage / INDEX).exists():
        os.replace(stage / INDEX, out / INDEX)
