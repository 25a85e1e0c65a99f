"""Fixtures of the report tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from equifind.report import build


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What report() passes to ``write_page``: one ``{"obj", "responses", "exported"}`` per page written."""
    seen: list[dict[str, Any]] = []
    real = build.write_page

    def spy(obj: Any, path: Path, *, responses: Any = None, exported: Any = None) -> None:
        seen.append({"obj": obj, "responses": responses, "exported": exported})
        real(obj, path, responses=responses, exported=exported)

    monkeypatch.setattr(build, "write_page", spy)
    return seen
