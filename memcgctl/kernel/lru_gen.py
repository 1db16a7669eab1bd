"""The multi-gen LRU's page generations of a group: a second working-set estimate.

On kernels with the multi-gen LRU (6.1+) switched on (bit 0 of
/sys/kernel/mm/lru_gen/enabled; Debian 13's 6.12 has it on, Debian 12's 6.1
has it built but off), debugfs's lru_gen lists, per memory cgroup and node,
its generations, youngest last:

    memcg    42 /work
     node     0
             10      12345      25600      12800
             11       2301       1024        512

(the generation's number, its age in milliseconds, its anonymous and file
pages).  Reading it changes nothing (writing it would age or evict); it is
root's alone, and only where debugfs is mounted.  A page sits in a young
generation when the kernel found it used since that generation was born, so
the pages of the generations born within the last WINDOW_SECONDS estimate
what the group used in that time.  The kernel makes new generations only as
it reclaims: with no reclaim the youngest one may be old, and the estimate
says how old (its age).  Generations follow pages found used through page
tables (anonymous memory, mapped files); page cache used through read() and
write() is aged by tiers within the old generations, so the estimate misses
it: a rough second opinion, never the daemon's estimate.

Probed once per process: no MGLRU, switched off, no debugfs, not root: None,
and nothing is said (what stat shows without it is the kernel's other figures).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ..errors import MemcgError
from ..files import read_optional_system_text

LRU_GEN_FILE = Path("/sys/kernel/debug/lru_gen")
ENABLED_FILE = Path("/sys/kernel/mm/lru_gen/enabled")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# The generations born this recently count as used.
WINDOW_SECONDS = 30.0


class Generation(NamedTuple):
    number: int
    age_ms: int
    anon_bytes: int
    file_bytes: int


class GenerationEstimate(NamedTuple):
    """The pages of the generations born in the last WINDOW_SECONDS (the
    youngest always counts), and the age of the youngest in seconds."""

    size: int
    anon_bytes: int
    file_bytes: int
    youngest_age: float
    window: float


_enabled: bool | None = None  # the probe, once per process


def multigen_lru_on() -> bool:
    """Whether the multi-gen LRU is switched on (read once; never written)."""
    global _enabled
    if _enabled is None:
        try:
            text = read_optional_system_text(ENABLED_FILE, "read lru_gen/enabled")
            _enabled = text is not None and bool(int(text.strip(), 16) & 1)
        except (MemcgError, ValueError):
            _enabled = False
    return _enabled


def parse_generations(text: str, cgroup_path: str) -> list[Generation] | None:
    """The generations of CGROUP_PATH ("/work": as lru_gen names it, from the
    hierarchy's root), summed over nodes; None when it is not listed."""
    found: dict[int, list[int]] = {}
    listed = current = False
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "memcg":
            # "memcg %5hu %s": the path is the rest of the line, spaces and all
            named = line.split(None, 2)
            current = len(named) == 3 and named[2] == cgroup_path
            listed = listed or current
        elif current and fields[0] != "node" and len(fields) >= 4:
            try:
                number, age, anon, file = (int(field) for field in fields[:4])
            except ValueError:
                continue
            totals = found.setdefault(number, [age, 0, 0])
            totals[0] = min(totals[0], age)
            totals[1] += max(0, anon)
            totals[2] += max(0, file)
    if not listed:
        return None
    return [Generation(number, age, anon * PAGE_SIZE, file * PAGE_SIZE)
            for number, (age, anon, file) in sorted(found.items())]


def estimate(generations: list[Generation], window: float = WINDOW_SECONDS) -> GenerationEstimate | None:
    """What the generations born within WINDOW seconds hold (the youngest always)."""
    if not generations:
        return None
    youngest = max(generations, key=lambda generation: generation.number)
    counted = [generation for generation in generations
               if generation is youngest or generation.age_ms <= window * 1000]
    anon = sum(generation.anon_bytes for generation in counted)
    file = sum(generation.file_bytes for generation in counted)
    return GenerationEstimate(anon + file, anon, file, youngest.age_ms / 1000, window)


def read_estimate(cgroup_path: str) -> GenerationEstimate | None:
    """The estimate of the group CGROUP_PATH (see parse_generations), or None
    where the kernel cannot say (see the module's docstring)."""
    if not multigen_lru_on():
        return None
    try:
        text = read_optional_system_text(LRU_GEN_FILE, "read lru_gen")
    except MemcgError:
        return None  # not root, or debugfs refuses: nothing to say
    if text is None:
        return None
    generations = parse_generations(text, cgroup_path)
    return None if generations is None else estimate(generations)


def estimate_of(group_path: Path) -> GenerationEstimate | None:
    """read_estimate() of the cgroup v2 group at GROUP_PATH (a directory of
    a cgroup2 mount), or None (see the module's docstring)."""
    if not multigen_lru_on():
        return None
    from .discovery import read_cgroup_mounts

    try:
        mounts = [mount.mount_point for mount in read_cgroup_mounts() if mount.fstype == "cgroup2"]
    except MemcgError:
        return None
    containing = [point for point in mounts if group_path == point or point in group_path.parents]
    if not containing:
        return None
    return read_estimate(lru_gen_path(group_path, max(containing, key=lambda point: len(point.parts))))


def lru_gen_path(group_path: Path, mount_point: Path) -> str:
    """How lru_gen names the group at GROUP_PATH of the cgroup2 hierarchy
    mounted at MOUNT_POINT ("/" for its root; a hierarchy mounted from its
    root, as usual, outside a cgroup namespace)."""
    relative = group_path.relative_to(mount_point)
    return "/" + str(relative) if str(relative) != "." else "/"
