"""Fault injection for tests/test_scan_faults.py: scans and reports that die by SIGKILL at a chosen point.

Run as ``python scan_faults_driver.py JOBS`` with ``JOBS`` a JSON list of jobs::

    {"mode": "scan", "out": DIR, "hook": HOOK, "n": N}
    {"mode": "report", "scan": DIR, "out": DIR, "hook": HOOK, "n": N}

Each job runs in a child forked from this process (which imported torch and equifind once
but ran nothing, so forking is safe and cheap); the child replaces ``HOOK`` with a wrapper
that kills the child with SIGKILL on its ``N``-th call, before the real call, then runs the
scan (or the report of the scan saved in ``scan``) into ``out``. Hooks:

* ``replace``: ``os.replace``, i.e. every file :func:`equifind.store.write_atomic` commits
  (a stage boundary after each file; the dying write leaves its temporary file behind);
* ``find_families``, ``validate_families``, ``find_circuits``, ``save_figure``: in the middle
  of a families, held-out, circuits stage or a report.

Prints one JSON line: a list of ``"killed"``, ``"finished"`` (the hook was called fewer than
N times) or ``"failed <code>"``, one per job. The hooks live here, never in equifind.
The settings of the scans are :func:`model` and :data:`CONFIG` (shared with the tests).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

LAYERS = ["2", "3"]
TRANSFORMS = ["rotation", "flip"]
#: Small and quick, with every kind of stage: families, held-out validation (patches only) and circuits.
CONFIG: dict[str, Any] = {
    "steps": 12, "n_null": 20, "circuit_n_null": 20, "validate_sources": ["patches"], "validate_top": 1,
    "validate_steps": 8, "validate_pool": 4, "validate_patches": 16,
}  # fmt: skip


def model() -> Any:
    """The planted eq→eq rotation circuit of tests/planted_circuits.py (layers "2" and "3"), as an equifind model."""
    from planted import centred
    from planted_circuits import planted

    import equifind as ef

    p = planted("eq→eq", "rotation", n=4, exact=True, seed=0)
    return ef.load_model(p.net, preprocess=centred, name="planted-circuit", device="cpu")


def _kill_on(owner: Any, name: str, n: int) -> None:
    """Replace ``owner.name`` by a wrapper that SIGKILLs this process on its ``n``-th call."""
    real = getattr(owner, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


def _hook_owner(hook: str) -> Any:
    import importlib

    owners = {
        "replace": os, "find_families": importlib.import_module("equifind.scan"),
        "validate_families": importlib.import_module("equifind.scan"),
        "find_circuits": importlib.import_module("equifind.circuits"),
        "save_figure": importlib.import_module("equifind.report.build"),
    }  # fmt: skip
    if hook not in owners:
        raise ValueError(f"unknown hook {hook!r}; valid: {sorted(owners)}")
    return owners[hook]


def _child(job: dict[str, Any]) -> None:
    """Run one job in this (forked) process and leave with ``os._exit``."""
    try:
        import torch

        import equifind as ef

        torch.set_num_threads(1)
        torch.manual_seed(0)
        _kill_on(_hook_owner(job["hook"]), job["hook"], int(job["n"]))
        if job["mode"] == "scan":
            ef.scan(model(), LAYERS, TRANSFORMS, config=CONFIG, out=job["out"], progress=False)
        else:
            ef.report(ef.ScanResult.load(job["scan"]), job["out"], formats=("png", "html"), families=1, workers=1)  # in-process: the kill hook is here
    except BaseException:  # noqa: BLE001 - report any failure to the parent through the exit code
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def run(jobs: list[dict[str, Any]]) -> list[str]:
    """Run every job in a forked child, one after the other; what became of each."""
    import equifind  # noqa: F401 - imported once here, before the forks

    statuses = []
    for job in jobs:
        pid = os.fork()
        if pid == 0:
            _child(job)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            statuses.append("killed")
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            statuses.append("finished")
        else:
            statuses.append(f"failed {status}")
    return statuses


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
