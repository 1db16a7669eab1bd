#!/usr/bin/python
# Copyright: memcgctl developers
# MIT License (see the memcgctl repository)
"""memcgctl.memcg.shrink: bring a memory group's usage to a target size."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: shrink
short_description: Bring a Linux memory cgroup's usage to a target size
version_added: "0.1.0"
description:
  - Runs C(memcgctl shrink) on the managed host, which makes the kernel reclaim the group's memory until
    its usage is at or below O(target), and reports the usage before and after.
  - On cgroup v1 memcgctl lowers C(memory.limit_in_bytes) for a moment and always restores it; on v2 it
    writes C(memory.reclaim) and never touches C(memory.max). Nothing is ever killed.
  - C(changed) is true when the group was above the target, so memory was reclaimed; a group already at or
    below it is left alone.
  - If the target cannot be reached (the rest is in use, or O(timeout) passed), the task fails with
    memcgctl's message and C(rc=75), and still reports the usage before and after.
  - In check mode memcgctl's dry run (C(memcgctl -n shrink)) tells whether a shrink would run; nothing is changed.
requirements:
  - memcgctl on the managed host (C(pip install memcgctl)), run as root or on a delegated subtree.
options:
  name:
    description: The group, as a path under the root of the memory hierarchy (C(web), C(batch/job1)).
    type: str
    required: true
  target:
    description:
      - The usage to reach, a size as memcgctl takes it (C(400M), C(1.5G), C(4096)), or a percentage of the
        current usage (C(80%)).
    type: raw
    required: true
  timeout:
    description: Give up after this many seconds (the task fails with rc 75). By default no time limit.
    type: float
  root:
    description:
      - Use this directory as the cgroup root (a delegated subtree, or a fake tree), like C(memcgctl --root).
    type: path
  executable:
    description: The memcgctl to run; by default the first C(memcgctl) on the managed host's PATH.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
seealso:
  - module: memcgctl.memcg.group
author:
  - memcgctl developers
"""

EXAMPLES = r"""
- name: Bring the batch group down to 80% of its usage, within 30 seconds
  memcgctl.memcg.shrink:
    name: batch
    target: 80%
    timeout: 30

- name: Shrink web to 400 MiB and show what was reclaimed
  memcgctl.memcg.shrink:
    name: web
    target: 400M
  register: shrunk

- ansible.builtin.debug:
    msg: "web: {{ shrunk.before }} -> {{ shrunk.after }} bytes"
"""

RETURN = r"""
group:
  description: The group's name under the root.
  returned: always
  type: str
  sample: web
before:
  description: The group's usage before the task, in bytes.
  returned: always
  type: int
  sample: 524288000
after:
  description: The group's usage after the task, in bytes (in check mode, the usage now).
  returned: always
  type: int
  sample: 415236096
reclaimed:
  description: C(before) minus C(after), in bytes (other processes may have charged memory meanwhile).
  returned: always
  type: int
  sample: 109051904
rc:
  description: memcgctl's exit code, when the task failed (2 bad target, 66 no such group, 75 target not
    reached or busy, 77 permission denied).
  returned: failed
  type: int
  sample: 75
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.memcgctl.memcg.plugins.module_utils.memcgctl import (  # noqa: E402
    COMMON_ARGUMENTS,
    Memcgctl,
    planned_writes,
)

V1_LIMIT = "memory.limit_in_bytes"
V2_RECLAIM = "memory.reclaim"


def shrink_needed(usage: int, writes: list) -> bool:
    """Whether the dry run's plan reclaims anything: on v2 it writes
    memory.reclaim only above the target; on v1 its first write lowers the
    limit to the target, which reclaims only if usage is above it."""
    for file_name, value in writes:
        if file_name == V2_RECLAIM:
            return True
        if file_name == V1_LIMIT:
            return usage > int(value)
    return False


def main():
    module = AnsibleModule(
        argument_spec={**COMMON_ARGUMENTS, "target": {"type": "raw", "required": True},
                       "timeout": {"type": "float"}},
        supports_check_mode=True,
    )
    memcgctl = Memcgctl(module)
    name, target, timeout = module.params["name"], str(module.params["target"]), module.params["timeout"]
    args = ["shrink", *(["--timeout", str(timeout)] if timeout is not None else []), "--", name, target]
    _, planned, _ = memcgctl.run(args, dry_run=True)
    before = memcgctl.stat(name)
    if before is None:
        module.fail_json(msg=f"memcgctl: group {name}: no such group", rc=66)
    usage = before["usage"]
    if module.check_mode or not shrink_needed(usage, planned_writes(planned)):
        changed = module.check_mode and shrink_needed(usage, planned_writes(planned))
        module.exit_json(changed=changed, group=name, before=usage, after=usage, reclaimed=0)
    argv = memcgctl.argv(args)
    rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C.UTF-8"})
    after = memcgctl.stat(name)
    after_usage = after["usage"] if after else None
    figures = {"group": name, "before": usage, "after": after_usage,
               "reclaimed": None if after_usage is None else usage - after_usage}
    if rc != 0:
        memcgctl.fail(argv, rc, out, err, **figures)
    module.exit_json(changed=True, **figures)


if __name__ == "__main__":
    main()
