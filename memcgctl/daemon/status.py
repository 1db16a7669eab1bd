"""What a running daemon is doing, for `memcgctl daemon status` and for
systemd's one-line STATUS=.

The engine replaces daemon-<root key>.status.json in the journal directory
(beside its lock, one per root) when its counters file is written, and
`daemon status` reads it back through the same checked directory:

    {"pid": 1234, "started": 1764150000.0, "written": 1764150060.0,
     "root": "/sys/fs/cgroup/memory", "version": 1, "config": "/etc/memcgctl/daemon.toml",
     "rules": [{"rule": "[[group]] 1 (line 10)", "policy": "watermark", "groups": 2}],
     "groups": [{"group": "batch/a", "rule": "[[group]] 1 (line 10)", "policy": "watermark",
                 "last_action": {"at": 1764150042.5, "why": "usage 950 MiB >= high 900 MiB",
                                 "before": 996147200, "after": 838860800},
                 "backed_off_until": null, "failures": 0, "reclaimed_bytes": 157286400}]}

Times are unix seconds.  The file outlives a daemon that was killed: it
speaks for a running daemon only while its pid is that daemon's.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MemcgError
from .lock import root_key

# A daemon watching thousands of groups writes a few hundred kilobytes.
MAX_STATUS_BYTES = 16 * 1024 * 1024


def status_file_name(root: Path) -> str:
    return f"daemon-{root_key(root)}.status.json"


def write_status(journal, root: Path, document: dict) -> None:
    """Replace ROOT's status file in JOURNAL's directory (not fsynced: it is
    rewritten every few seconds, like the counters)."""
    journal.replace_file(status_file_name(root), json.dumps(document).encode(), "write daemon status",
                         mode=0o600, durable=False)


def read_status(journal, root: Path) -> dict | None:
    """The last status the daemon of ROOT wrote, or None if none ever did.
    Whether that daemon still runs is for the caller to ask."""
    name = status_file_name(root)
    data = journal.read_file(name, "read daemon status", MAX_STATUS_BYTES)
    if data is None:
        return None
    try:
        document = json.loads(data.decode("utf-8"))
        _check_shape(document, HEAD_SHAPE)
        for row in document["groups"]:
            _check_shape(row, ROW_SHAPE)
            if row["last_action"] is not None:
                _check_shape(row["last_action"], ACTION_SHAPE)
    except (ValueError, KeyError, TypeError) as err:
        raise MemcgError("read daemon status", f"not in the daemon's format ({err})",
                         str(journal.directory / name)) from None
    return document


NUMBER = (int, float)
HEAD_SHAPE = {"pid": int, "started": NUMBER, "written": NUMBER, "root": str, "version": int, "config": str,
              "rules": list, "reclaimed_bytes": int, "steps": int, "groups": list}
ROW_SHAPE = {"group": str, "rule": str, "policy": str, "last_action": (dict, type(None)),
             "backed_off_until": (*NUMBER, type(None)), "failures": int, "reclaimed_bytes": int}
ACTION_SHAPE = {"at": NUMBER, "why": str, "before": int, "after": int}


def _check_shape(value, shape: dict) -> None:
    """ValueError unless VALUE is a dict with each key of SHAPE of its type
    (what the renderer reads: a hand-edited file never makes a traceback)."""
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, not {type(value).__name__}")
    for key, kind in shape.items():
        if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool):
            raise ValueError(f"{key!r} is missing or not a {getattr(kind, '__name__', 'number')}")
