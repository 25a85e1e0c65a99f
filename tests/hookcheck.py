"""Hook-leak detection for the test suite (used by conftest's autouse fixture).

While a test runs, every ``register_*hook`` call on any ``nn.Module`` is
tracked; after the test, each tracked module must have no hook left.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

_REGISTER = (
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_full_backward_hook",
    "register_full_backward_pre_hook",
    "register_backward_hook",
)
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def leftover_hooks(module: nn.Module) -> dict[str, int]:
    """Hook dict name -> number of hooks left on ``module`` (only non-empty ones)."""
    return {d: len(getattr(module, d)) for d in _HOOK_DICTS if len(getattr(module, d, {}))}


@contextmanager
def track_hooks() -> Iterator[list[weakref.ref]]:
    """Track the modules that get a hook while the block runs; restores nn.Module after."""
    touched: list[weakref.ref] = []
    originals = {name: getattr(nn.Module, name) for name in _REGISTER}

    def wrap(name: str):
        original = originals[name]

        def register(self: nn.Module, *args, **kwargs):
            touched.append(weakref.ref(self))
            return original(self, *args, **kwargs)

        return register

    try:
        for name in _REGISTER:
            setattr(nn.Module, name, wrap(name))
        yield touched
    finally:
        for name, fn in originals.items():
            setattr(nn.Module, name, fn)


def leaks(touched: list[weakref.ref]) -> list[str]:
    """Descriptions of the tracked modules that still hold hooks."""
    found = []
    for ref in touched:
        module = ref()
        if module is not None and (left := leftover_hooks(module)):
            found.append(f"{type(module).__name__}: {left}")
    return sorted(set(found))
