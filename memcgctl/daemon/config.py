"""The daemon's configuration: a TOML file (tomllib, Python 3.11+).

    interval = 1.0            # seconds between passes of the polling rules
    rescan_interval = 10.0    # seconds between full looks for groups (inotify sees most)
    max_cpu_percent = 10      # of one core, the daemon's own and its reclaim

    [[group]]                 # a rule: one policy over the groups MATCH names
    match = "batch/*"
    policy = "watermark"
    high = "900M"             # a size, or a percentage of the hard limit
    low = "800M"

    [[pool]]                  # user-space soft limits over several groups
    groups = ["a", "b", "c"]
    budget = "8G"
    share = { a = 2 }         # weights; 1 for a group not named

Both kinds of table also take the keys of COMMON_KEYS.  Every error names
the line and key at fault (ConfigError, exit 78), so that `--check` and a
SIGHUP reload can say what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import ConfigError
from . import values

DEFAULT_INTERVAL = 1.0
DEFAULT_RESCAN_INTERVAL = 10.0

TOP_LEVEL_KEYS = {"interval": values.interval_seconds, "rescan_interval": values.interval_seconds,
                  "max_cpu_percent": values.percent_of_a_core}
DEFAULT_MAX_CPU_PERCENT = 10.0
# Keys every [[group]] and [[pool]] takes, with their defaults (as written in
# the file).
COMMON_KEYS = {
    # Reclaim at most this many bytes per second from one group, in bursts of
    # at most one second's worth: writeback storms hurt more than the memory saved.
    "max_bytes_per_second": (values.size, "1G"),
    # Never shrink a group below this (v2 memory.min/low are a floor anyway).
    "min": (values.size, 0),
    # The most one step may take (the v1 limit dip is restored at the latest then).
    "step_seconds": (values.seconds, 5.0),
    # The longest pause after steps that make no progress (doubling from 1 s).
    "backoff_max": (values.seconds, 300.0),
}


# Dataclasses, not NamedTuples: a field named `index` would hide tuple.index.
@dataclass(frozen=True)
class Rule:
    """One [[group]] table: its POLICY class over the groups MATCH names."""

    index: int  # 1 for the first [[group]]
    line: int
    match: str
    policy: type
    settings: dict  # every key's parsed value, defaults filled in

    @property
    def label(self) -> str:
        return f"[[group]] {self.index} (line {self.line})"


@dataclass(frozen=True)
class PoolRule:
    index: int
    line: int
    groups: tuple
    settings: dict

    @property
    def label(self) -> str:
        return f"[[pool]] {self.index} (line {self.line})"


class Config(NamedTuple):
    path: Path
    interval: float
    rescan_interval: float
    rules: tuple
    pools: tuple
    max_cpu_percent: float = DEFAULT_MAX_CPU_PERCENT


def load_config(path: Path | str) -> Config:
    """The configuration in PATH, or ConfigError saying where it is wrong.
    The daemon runs as root on what the file says: one that someone else
    could write (it, or a directory above it), a link, a FIFO or a device is
    PermissionDenied (77), not read (files.read_trusted_file)."""
    from ..errors import MemcgError, PermissionDenied
    from ..files import read_trusted_file

    path = Path(path)
    try:
        data = read_trusted_file(path, "read configuration")
    except PermissionDenied:
        raise
    except MemcgError as error:  # missing, unreadable: a configuration error, as --check reports
        raise ConfigError(error.what, error.why, error.path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:  # TOML is UTF-8 text
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError("read configuration", f"not UTF-8 text (as TOML must be): byte 0x{data[err.start]:02x} "
                          f"at offset {err.start} (line {line})", str(path)) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    import tomllib

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("configuration", f"not valid TOML: {err}", str(path)) from None
    locator = KeyLocator(text)
    unknown = set(document) - set(TOP_LEVEL_KEYS) - {"group", "pool"}
    if unknown:
        key = sorted(unknown)[0]
        raise _error(path, locator.line(None, 0, key), key,
                     f"unknown key (known: {', '.join([*TOP_LEVEL_KEYS, '[[group]]', '[[pool]]'])})")
    top = {key: _parse(path, locator.line(None, 0, key), key, parser, document[key])
           for key, parser in TOP_LEVEL_KEYS.items() if key in document}
    rules = tuple(_rule(path, locator, index, table)
                  for index, table in enumerate(_tables(path, locator, document, "group"), start=1))
    pools = tuple(_pool(path, locator, index, table)
                  for index, table in enumerate(_tables(path, locator, document, "pool"), start=1))
    if not rules and not pools:
        # An empty /etc/memcgctl/daemon.toml would run a daemon that does nothing, quietly.
        raise ConfigError("configuration", f"{'empty' if not text.strip() else 'no [[group]] or [[pool]] table'}: "
                                           "nothing for the daemon to do", str(path))
    _refuse_a_second_rule_on_one_match(path, locator, rules)
    _refuse_a_group_in_two_pools(path, locator, pools)
    return Config(path, top.get("interval", DEFAULT_INTERVAL), top.get("rescan_interval", DEFAULT_RESCAN_INTERVAL),
                  rules, pools, top.get("max_cpu_percent", DEFAULT_MAX_CPU_PERCENT))


def _refuse_a_second_rule_on_one_match(path: Path, locator: KeyLocator, rules: tuple) -> None:
    """Two [[group]] tables with the same match would both act on each of its
    groups (two watermarks: the lower `low` wins at every crossing).  Globs
    that overlap are only known against the groups: see daemon.checks."""
    first: dict[str, Rule] = {}
    for rule in rules:
        if rule.match in first:
            raise _error(path, locator.line("group", rule.index, "match"), "match",
                         f"'{rule.match}' is matched by {first[rule.match].label} already: one rule per group")
        first[rule.match] = rule


def _refuse_a_group_in_two_pools(path: Path, locator: KeyLocator, pools: tuple) -> None:
    """A group in two [[pool]] tables would be shrunk for both budgets, each
    pool counting it as its own.  Names, and globs that surely cover a name
    of the other pool, are refused; other globs that overlap are only known
    against the groups (daemon.checks warns)."""
    from fnmatch import fnmatchcase

    for later_index, later in enumerate(pools):
        for earlier in pools[:later_index]:
            for name in later.groups:
                shared = next((other for other in earlier.groups
                               if fnmatchcase(name, other) or fnmatchcase(other, name)), None)
                if shared is not None:
                    through = "" if shared == name else f" (as '{shared}')"
                    raise _error(path, locator.line("pool", later.index, "groups"), "groups",
                                 f"'{name}' is in {earlier.label} already{through}: a group in two pools "
                                 "would be shrunk for both budgets; one pool per group")


def _tables(path: Path, locator: KeyLocator, document: dict, name: str) -> list:
    tables = document.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise _error(path, locator.line(None, 0, name), name, f"write each one as a [[{name}]] table")
    return tables


def _rule(path: Path, locator: KeyLocator, index: int, table: dict) -> Rule:
    from .policies import POLICIES

    line = locator.header("group", index)
    policy_name = _required(path, locator, "group", index, table, "policy")
    if policy_name not in POLICIES:
        raise _error(path, locator.line("group", index, "policy"), "policy",
                     f"unknown policy {policy_name!r} (known: {', '.join(sorted(POLICIES))})")
    policy = POLICIES[policy_name]
    _required(path, locator, "group", index, table, "match")
    own_keys = {"match": (values.group_pattern, None), "policy": (str, None),
                **{key: (parser, None) for key, parser in policy.keys.items()}}
    settings = _settings(path, locator, "group", index, table, own_keys, policy)
    return Rule(index, line, settings["match"], policy, settings)


def _pool(path: Path, locator: KeyLocator, index: int, table: dict) -> PoolRule:
    from .policies import PoolPolicy

    own_keys = {key: (parser, None) for key, parser in PoolPolicy.keys.items()}
    settings = _settings(path, locator, "pool", index, table, own_keys, PoolPolicy)
    return PoolRule(index, locator.header("pool", index), settings["groups"], settings)


def _settings(path: Path, locator: KeyLocator, kind: str, index: int, table: dict, own_keys: dict,
              policy) -> dict:
    """The parsed values of TABLE: its policy's keys and COMMON_KEYS, defaults filled in."""
    known = {**own_keys, **COMMON_KEYS}
    for key in table:
        if key not in known:
            raise _error(path, locator.line(kind, index, key), key,
                         f"unknown key in [[{kind}]] with policy {policy.name!r} (known: {', '.join(known)})")
    for key in policy.required:
        _required(path, locator, kind, index, table, key)
    settings = {}
    for key, (parser, default) in known.items():
        if key in table:
            settings[key] = _parse(path, locator.line(kind, index, key), key, parser, table[key])
        elif default is not None:
            settings[key] = parser(default)
    problem = _check_common(settings) or policy.check(settings)
    if problem:
        key, why = problem
        raise _error(path, locator.line(kind, index, key), key, why)
    return settings


def _check_common(settings: dict) -> tuple[str, str] | None:
    """(key, why) when a value of COMMON_KEYS makes the rule pointless."""
    if settings["max_bytes_per_second"] == 0:
        return "max_bytes_per_second", "0 would never reclaim: to turn a rule off, remove or comment out its table"
    return None


def _required(path: Path, locator: KeyLocator, kind: str, index: int, table: dict, key: str):
    if key not in table:
        raise _error(path, locator.header(kind, index), key, f"[[{kind}]] {index} needs {key!r}")
    return table[key]


def _parse(path: Path, line: int, key: str, parser, value):
    try:
        return parser(value)
    except ValueError as err:
        raise _error(path, line, key, str(err)) from None


def _error(path: Path, line: int, key: str, why: str) -> ConfigError:
    return ConfigError(f"configuration line {line}, key {key!r}", why, str(path))


class KeyLocator:
    """Line numbers of keys in the TOML text, for error messages (tomllib
    gives values, not where they were)."""

    HEADER = re.compile(r"\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]")
    TABLE = re.compile(r"\s*\[")

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def header(self, kind: str, index: int) -> int:
        """The line of the INDEX-th [[KIND]] (1-based)."""
        seen = 0
        for number, line in enumerate(self.lines, start=1):
            match = self.HEADER.match(line)
            if match and match.group(1) == kind:
                seen += 1
                if seen == index:
                    return number
        return 1

    def line(self, kind: str | None, index: int, key: str) -> int:
        """The line where KEY is set in the INDEX-th [[KIND]] (KIND None: the
        top level); the table's own line if not found."""
        start = self.header(kind, index) if kind else 0
        key_pattern = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(start + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if self.TABLE.match(line):
                break  # the next table begins
            if key_pattern.match(line):
                return number
        return start or 1
