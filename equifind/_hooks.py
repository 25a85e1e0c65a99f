"""The one place where equifind registers and removes forward hooks.

Every temporary hook goes through :func:`forward_hooks`; its ``finally`` block
removes exactly the handles it added, whatever happens inside the block.
No public function hands a live hook handle to its caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from torch import nn

__all__ = ["forward_hooks", "StopForward"]

ForwardHook = Callable[[nn.Module, tuple, object], object]


class StopForward(Exception):
    """Raised by a hook after the deepest recorded layer to skip the rest of the network."""


@contextmanager
def forward_hooks(hooks: Mapping[nn.Module, ForwardHook]) -> Iterator[None]:
    """Register forward hooks for the duration of a ``with`` block.

    Args:
        hooks: module -> hook ``fn(module, inputs, output)``.
    """
    handles = []
    try:
        for module, fn in hooks.items():
            handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for h in handles:
            h.remove()
