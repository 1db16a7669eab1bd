"""What the daemon did, per (group, policy), for `memcgctl export`.

Written atomically (a temporary file renamed over the old one) into the
journal directory as daemon-counters.json:

    {"pid": 1234, "started": 1764150000.0, "root": "/sys/fs/cgroup/memory",
     "rows": [{"group": "batch/a", "policy": "watermark", "reclaimed_bytes": 0,
               "actions": 0, "backoffs": 0, "errors": 0}]}

A row of a policy that estimates the group's working set (pressure) also has
"working_set_bytes" and "working_set_updated" (unix seconds of its last change).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

COUNTERS_FILE = "daemon-counters.json"
COUNTER_NAMES = ("reclaimed_bytes", "actions", "backoffs", "errors")
# Written after each pass that changed a counter, and at least this often.
MAX_WRITE_INTERVAL = 10.0


class Counters:
    """Counts since the daemon started; rows stay when their group goes (the
    counts are monotonic, as Prometheus expects)."""

    def __init__(self, root: Path):
        self.root = str(root)
        self.started = time.time()
        self.rows: dict[tuple[str, str], dict] = {}
        self.changed = True
        self.written_at = float("-inf")  # monotonic
        self._encoded_rows: dict = {}  # (group, policy) -> its row as JSON, until it changes

    def add(self, group: str, policy: str, **amounts: int) -> None:
        row = self.rows.setdefault((group, policy), dict.fromkeys(COUNTER_NAMES, 0))
        for name, amount in amounts.items():
            row[name] += amount
        self._encoded_rows.pop((group, policy), None)
        self.changed = True

    def set_working_set(self, group: str, policy: str, size: int, updated: float) -> None:
        """The policy's working-set estimate of GROUP: SIZE bytes, last changed at UPDATED (unix time)."""
        row = self.rows.setdefault((group, policy), dict.fromkeys(COUNTER_NAMES, 0))
        if (row.get("working_set_bytes"), row.get("working_set_updated")) == (size, updated):
            return
        row["working_set_bytes"], row["working_set_updated"] = size, updated
        self._encoded_rows.pop((group, policy), None)
        self.changed = True

    def get(self, group: str, policy: str) -> dict:
        return dict(self.rows.get((group, policy), dict.fromkeys(COUNTER_NAMES, 0)))

    def due(self, now: float) -> bool:
        return self.changed or now - self.written_at >= MAX_WRITE_INTERVAL

    def document(self) -> dict:
        rows = [{"group": group, "policy": policy, **row} for (group, policy), row in sorted(self.rows.items())]
        return {"pid": os.getpid(), "started": self.started, "root": self.root, "rows": rows}

    def encode(self) -> bytes:
        """document() as JSON, encoding again only the rows that changed: with
        1,000 groups the file is rewritten after every step."""
        rows = []
        for key in sorted(self.rows):
            encoded = self._encoded_rows.get(key)
            if encoded is None:
                group, policy = key
                encoded = self._encoded_rows[key] = json.dumps({"group": group, "policy": policy, **self.rows[key]})
            rows.append(encoded)
        head = json.dumps({"pid": os.getpid(), "started": self.started, "root": self.root})
        return f"{head[:-1]}, \"rows\": [{', '.join(rows)}]}}".encode()

    def write(self, journal, now: float) -> None:
        """Replace daemon-counters.json in JOURNAL's directory (a Journal: the
        directory is checked and used through its fd).  Not fsynced: it is
        rewritten every few seconds, and /run does not outlive a reboot anyway."""
        journal.replace_file(COUNTERS_FILE, self.encode(), "write daemon counters", mode=0o644, durable=False)
        self.changed = False
        self.written_at = now
