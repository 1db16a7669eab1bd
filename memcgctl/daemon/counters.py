"""What the daemon did, per (group, policy), for `memcgctl export`.

Written atomically (a temporary file renamed over the old one) into the
journal directory, one file per root (counters_file_name): daemons on
different roots may share a journal directory.

    {"pid": 1234, "started": 1764150000.0, "root": "/sys/fs/cgroup/memory",
     "root_device": 35, "root_inode": 1,
     "rows": [{"group": "batch/a", "policy": "watermark", "reclaimed_bytes": 0,
               "actions": 0, "backoffs": 0, "errors": 0}]}

The root's path and the device and inode of its directory name the root
the rows are about: export checks them against the root it exports.

A row stays while its group exists and FORGET_AFTER_SECONDS after it goes
(so the last counts are scraped), and at most MAX_GONE_ROWS rows of vanished
groups are kept: a glob over short-lived groups does not grow the file and
the exported series without bound.

A row of a policy that estimates the group's working set (pressure) also has
"working_set_bytes" and "working_set_updated" (unix seconds of its last change).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .lock import root_key

COUNTER_NAMES = ("reclaimed_bytes", "actions", "backoffs", "errors")
# Written after each pass that changed a counter, and at least this often.
MAX_WRITE_INTERVAL = 10.0
# Rows of vanished groups: kept this long (Prometheus scrapes every 15 s to
# a minute), and no more than this many (the oldest vanished go first).
FORGET_AFTER_SECONDS = 600.0
MAX_GONE_ROWS = 256


def counters_file_name(root: Path | str) -> str:
    """The counters file of the daemon on ROOT, in the journal directory."""
    return f"daemon-counters-{root_key(root)}.json"


class Counters:
    """Counts since the daemon started, of ROOT (its directory's device and
    inode: ROOT_IDENTITY); monotonic while the group exists, as Prometheus
    expects, and forgotten a while after it goes."""

    def __init__(self, root: Path, root_identity: tuple[int, int]):
        self.root = str(root)
        self.root_device, self.root_inode = root_identity
        self.file_name = counters_file_name(root)
        self.started = time.time()
        self.rows: dict[tuple[str, str], dict] = {}
        self.gone_since: dict[str, float] = {}  # group -> monotonic seconds it vanished
        self.changed = True
        self.written_at = float("-inf")  # monotonic
        self._encoded_rows: dict = {}  # (group, policy) -> its row as JSON, until it changes

    def add(self, group: str, policy: str, **amounts: int) -> None:
        row = self.rows.setdefault((group, policy), dict.fromkeys(COUNTER_NAMES, 0))
        self.gone_since.pop(group, None)  # back, or never gone
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

    def gone(self, group: str, now: float) -> None:
        """GROUP vanished at NOW (monotonic): its rows go later (forget_expired)."""
        if any(key[0] == group for key in self.rows):
            self.gone_since.setdefault(group, now)
            self.forget_expired(now)

    def forget_expired(self, now: float) -> None:
        """Drop the rows of groups gone FORGET_AFTER_SECONDS ago, and the
        oldest gone beyond MAX_GONE_ROWS groups."""
        by_age = sorted(self.gone_since, key=self.gone_since.__getitem__)
        expired = [group for group in by_age if now - self.gone_since[group] >= FORGET_AFTER_SECONDS]
        expired += [group for group in by_age[:max(0, len(by_age) - MAX_GONE_ROWS)] if group not in expired]
        if not expired:
            return
        forgotten = set(expired)
        for key in [key for key in self.rows if key[0] in forgotten]:
            del self.rows[key]
            self._encoded_rows.pop(key, None)
        for group in forgotten:
            del self.gone_since[group]
        self.changed = True

    def due(self, now: float) -> bool:
        return self.changed or now - self.written_at >= MAX_WRITE_INTERVAL

    def document(self) -> dict:
        rows = [{"group": group, "policy": policy, **row} for (group, policy), row in sorted(self.rows.items())]
        return {**self._head(), "rows": rows}

    def _head(self) -> dict:
        return {"pid": os.getpid(), "started": self.started, "root": self.root, "root_device": self.root_device,
                "root_inode": self.root_inode}

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
        head = json.dumps(self._head())
        return f"{head[:-1]}, \"rows\": [{', '.join(rows)}]}}".encode()

    def write(self, journal, now: float) -> None:
        """Replace the counters file in JOURNAL's directory (a Journal: the
        directory is checked and used through its fd).  Not fsynced: it is
        rewritten every few seconds, and /run does not outlive a reboot anyway."""
        self.forget_expired(now)
        journal.replace_file(self.file_name, self.encode(), "write daemon counters", mode=0o644, durable=False)
        self.changed = False
        self.written_at = now
