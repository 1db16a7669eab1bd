"""memcgctl: manage Linux memory cgroups (v1 and v2) from the shell or Python.

    from memcgctl import open_hierarchy, shrink, parse_target
    backend = open_hierarchy()             # this host's memory hierarchy
    web = backend.group("web")
    result = shrink(backend, web, parse_target("400M"))
"""

from typing import TYPE_CHECKING

# The names below are imported when first used (PEP 562 __getattr__): the
# command line imports this package before every command, and a command
# needs only some of these modules (`stat --json` never loads shrink).
_MODULE_OF = {
    "MemcgError": "errors",
    "ShrinkResult": "operations.shrink",
    "format_size": "sizes",
    "open_hierarchy": "kernel.discovery",
    "parse_size": "sizes",
    "parse_target": "sizes",
    "read_stats": "operations.stats",
    "select_groups": "operations.stats",
    "shrink": "operations.shrink",
}

__all__ = [
    "MemcgError",
    "ShrinkResult",
    "format_size",
    "open_hierarchy",
    "parse_size",
    "parse_target",
    "read_stats",
    "select_groups",
    "shrink",
]

if TYPE_CHECKING:  # for type checkers and editors; never at run time
    from .errors import MemcgError
    from .kernel.discovery import open_hierarchy
    from .operations.shrink import ShrinkResult, shrink
    from .operations.stats import read_stats, select_groups
    from .sizes import format_size, parse_size, parse_target


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # __import__, not importlib.import_module: the import statement's own path,
    # which `python -X importtime` (tests/test_fast_paths.py) sees.
    module = __import__(f"{__name__}.{_MODULE_OF[name]}", fromlist=[name])
    value = getattr(module, name)
    globals()[name] = value  # once: later lookups do not come here
    return value
