"""A dry run's plan as data (`-n --plan-json`): one JSON document, for
scripts and the Ansible collection, which must not parse shell lines (a name
with a quote and a control character is quoted the bash way, $'...').

    {"plan": [{"action": "mkdir", "path": "/sys/fs/cgroup/memory/batch"},
              {"action": "write", "path": ".../memory.limit_in_bytes", "value": "1073741824"},
              {"action": "reclaim", "group": "web", "target": 104857600,
               "writes": [{"action": "write", ...}], "notes": ["..."]},
              {"action": "attach_self", "path": ".../cgroup.procs"},
              {"action": "exec", "argv": ["make", "-j2"]}]}
"""

from __future__ import annotations


def step_data(step) -> dict:
    """One step of a plan (an fs Action, a Reclaim, MakeFakeFile) as a dict."""
    from ..kernel.actions import MakeDir, MakeFakeFile, RemoveDir, Write, WriteOwnPid
    from ..kernel.backend import Reclaim

    if isinstance(step, Reclaim):
        return {"action": "reclaim", "group": step.group.name, "target": step.target,
                "writes": [step_data(write) for write in step.writes],
                "notes": [step.comments[index] for index in sorted(step.comments)]}
    if isinstance(step, WriteOwnPid):  # the process carrying the plan out writes its own pid
        return {"action": "attach_self", "path": str(step.path)}
    if isinstance(step, Write):
        return {"action": "write", "path": str(step.path), "value": step.value}
    if isinstance(step, MakeFakeFile):
        return {"action": "write", "path": str(step.path), "value": step.content}
    if isinstance(step, MakeDir):
        return {"action": "mkdir", "path": str(step.path)}
    if isinstance(step, RemoveDir):
        return {"action": "rmdir", "path": str(step.path)}
    raise TypeError(f"not a plan step: {step!r}")


def plan_text(steps: list) -> str:
    """STEPS (dicts of step_data) as the one JSON document, valid UTF-8 as
    every JSON memcgctl writes (a byte of a name that is not UTF-8 is the
    four characters \\xNN, not a lone surrogate)."""
    from .json_text import dumps_utf8

    return dumps_utf8({"plan": steps}, indent=2)
