"""memcgctl: manage Linux memory cgroups (v1 and v2) from the shell or Python.

    from memcgctl import open_hierarchy, shrink, parse_target
    backend = open_hierarchy()             # this host's memory hierarchy
    web = backend.group("web")
    result = shrink(backend, web, parse_target("400M"))
"""

from .errors import MemcgError
from .kernel.discovery import open_hierarchy
from .operations.shrink import ShrinkResult, shrink
from .operations.stats import read_stats, select_groups
from .sizes import format_size, parse_size, parse_target

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
