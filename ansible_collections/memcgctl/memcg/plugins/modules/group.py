#!/usr/bin/python
# Copyright: memcgctl developers
# MIT License (see the memcgctl repository)
"""memcgctl.memcg.group: make a memory group and its limits match a description."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: group
short_description: Make a Linux memory cgroup and its limits match a description
version_added: "0.1.0"
description:
  - Creates or removes a memory group (cgroup v1 or v2) on the managed host and sets its limits,
    by running C(memcgctl) there. Whatever memcgctl would refuse, the task fails with memcgctl's
    own message and exit code (C(rc)).
  - Limits are read back from the kernel after they are set; C(changed) is true only if the group
    or a limit the kernel holds is different afterwards, so a second run of the same play changes nothing.
  - Limits not given are left as they are.
  - In check mode memcgctl's dry run (C(memcgctl -n)) validates the change and tells what would be
    written; nothing is changed.
  - In diff mode the group's state and limits before and after are shown (bytes; C(null) is unlimited).
requirements:
  - memcgctl on the managed host (C(pip install memcgctl)), run as root or on a delegated subtree.
options:
  name:
    description:
      - The group, as a path under the root of the memory hierarchy (C(web), C(batch/job1)).
    type: str
    required: true
  state:
    description:
      - C(present) creates the group and its missing parents, then sets the limits given.
      - C(absent) removes the group. A group with processes or child groups is left as it is and
        the task fails (memcgctl never kills or moves a process).
    type: str
    choices: [present, absent]
    default: present
  root:
    description:
      - Use this directory as the cgroup root (a delegated subtree, or a fake tree), like
        C(memcgctl --root). By default memcgctl finds the memory hierarchy itself.
    type: path
  limit:
    description:
      - Hard limit (v1 C(memory.limit_in_bytes), v2 C(memory.max)).
      - A size as memcgctl takes it, in bytes or with K, M, G, T, P, E (powers of 1024), such as C(400M),
        C(1.5G), C(4096); C(max) or C(-1) for unlimited.
      - On cgroup v2 a limit below the group's usage is reached by shrinking first; if that fails, the
        limit is left as it was and the task fails (rc 75).
    type: raw
  soft_limit:
    description: Soft limit, cgroup v1 only (C(memory.soft_limit_in_bytes)). A size, as for O(limit).
    type: raw
  high:
    description: Throttle point, cgroup v2 only (C(memory.high)). A size, as for O(limit).
    type: raw
  low:
    description: Best-effort protection, cgroup v2 only (C(memory.low)). A size, as for O(limit).
    type: raw
  min:
    description: Hard protection, cgroup v2 only (C(memory.min)). A size, as for O(limit).
    type: raw
  swap_limit:
    description:
      - Swap allowed, alone (v1 writes C(memory.memsw.limit_in_bytes) as limit plus swap, v2 C(memory.swap.max)).
        A size, as for O(limit).
    type: raw
  executable:
    description: The memcgctl to run; by default the first C(memcgctl) on the managed host's PATH.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - A limit unavailable on the host's cgroup version (O(soft_limit) on v2, O(high) on v1) fails the task (rc 69).
  - The kernel stores limits in whole pages; the values returned are what it holds.
  - The manual page memcgctl(1) on the managed host says what each memcgctl command does.
seealso:
  - module: memcgctl.memcg.shrink
  - name: Memory Resource Controller (cgroup v1)
    description: The kernel's documentation of the v1 memory files.
    link: https://docs.kernel.org/admin-guide/cgroup-v1/memory.html
  - name: Control Group v2, memory
    description: The kernel's documentation of the v2 memory files.
    link: https://docs.kernel.org/admin-guide/cgroup-v2.html#memory
author:
  - memcgctl developers
"""

EXAMPLES = r"""
- name: A group for the web server, limited to 1 GiB
  memcgctl.memcg.group:
    name: web
    limit: 1G

- name: A nested group with a soft limit (cgroup v1)
  memcgctl.memcg.group:
    name: batch/job1
    limit: 2G
    soft_limit: 1536M

- name: Throttle and protect on cgroup v2
  memcgctl.memcg.group:
    name: db
    limit: 8G
    high: 7G
    low: 2G

- name: Lift the limit
  memcgctl.memcg.group:
    name: web
    limit: max

- name: Remove a group (it must have no processes)
  memcgctl.memcg.group:
    name: batch/job1
    state: absent
"""

RETURN = r"""
group:
  description: The group's name under the root.
  returned: always
  type: str
  sample: batch/job1
state:
  description: Whether the group exists after the task (in check mode, would exist).
  returned: always
  type: str
  sample: present
limits:
  description:
    - The group's limits after the task, in bytes as the kernel holds them; C(null) is unlimited
      or not available on this cgroup version. Keys as in C(memcgctl stat --json).
    - In check mode, for a group that does not exist yet, the sizes as given.
  returned: when state is present
  type: dict
  sample: {"limit": 1073741824, "soft_limit": null, "high": null, "low": null, "min": null, "swap_limit": null}
cgroup_version:
  description: The cgroup version of the hierarchy (1 or 2), when the group exists.
  returned: when the group exists after the task
  type: int
  sample: 1
rc:
  description: memcgctl's exit code, when the task failed (2 bad size, 65 rejected by the kernel, 66 no such
    group, 69 not available, 75 busy, 77 permission denied).
  returned: failed
  type: int
  sample: 2
"""

import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.memcgctl.memcg.plugins.module_utils.memcgctl import (  # noqa: E402
    COMMON_ARGUMENTS,
    LIMIT_BY_FILE,
    LIMIT_OPTIONS,
    Memcgctl,
    kernel_bytes,
    planned_steps,
    planned_writes,
    same_limit,
)


def requested_limits(params: dict) -> dict:
    """{limit name: size as given} of the limits the task sets."""
    return {name: str(params[name]) for name in LIMIT_OPTIONS if params.get(name) is not None}


def limit_arguments(name: str, requested: dict) -> list:
    """`memcgctl limit` with the REQUESTED sizes.  Options come first, then
    "--": neither NAME nor a SIZE of -1 can be taken for an option."""
    options = [part for key, size in requested.items() if key != "limit" for part in (LIMIT_OPTIONS[key], size)]
    size = [requested["limit"]] if "limit" in requested else []
    return ["limit", *options, "--", name, *size]


def limits_of(stat: dict | None) -> dict:
    return {name: stat.get(name) for name in LIMIT_OPTIONS} if stat else {}


def description(stat: dict | None) -> dict:
    """The group as the diff shows it."""
    return {"state": "absent"} if stat is None else {"state": "present", **limits_of(stat)}


def predicted_limits(current: dict, writes: list) -> dict:
    """CURRENT limits after the WRITES of a `memcgctl -n limit` plan."""
    after = dict(current)
    memsw, memsw_written = None, False
    for file_name, value in writes:
        name = LIMIT_BY_FILE.get(file_name)
        if name == "memsw":
            memsw, memsw_written = kernel_bytes(value), True
        elif name is not None:
            after[name] = kernel_bytes(value)
    if memsw_written:  # v1 holds memory+swap; memcgctl speaks of swap alone
        after["swap_limit"] = None if memsw is None or after["limit"] is None else memsw - after["limit"]
    return after


def would_change(before: dict, predicted: dict) -> bool:
    return any(not same_limit(predicted[name], before.get(name)) for name in predicted)


def ensure_present(memcgctl: Memcgctl, name: str, requested: dict, check_mode: bool) -> dict:
    before = memcgctl.stat(name)
    if before is None:
        return create(memcgctl, name, requested, check_mode)
    result = {"changed": False, "before": description(before), "stat": before}
    if not requested:
        return result
    _, planned, _ = memcgctl.run(limit_arguments(name, requested), dry_run=True)
    predicted = predicted_limits(limits_of(before), planned_writes(planned))
    if not would_change(limits_of(before), predicted):
        return result
    if check_mode:
        return {"changed": True, "before": description(before), "stat": {**before, **predicted}}
    memcgctl.run(limit_arguments(name, requested))
    after = memcgctl.stat(name)
    return {"changed": limits_of(after) != limits_of(before), "before": description(before), "stat": after}


def create(memcgctl: Memcgctl, name: str, requested: dict, check_mode: bool) -> dict:
    """Create NAME (and missing parents) with the REQUESTED limits.  Sizes are
    checked before anything is created; if the limits then fail, the groups
    this task created are removed again, so a failed task leaves nothing."""
    if requested:
        # On a group that does not exist yet, the dry run stops at "no such
        # group" (66), but only after the sizes were parsed (2 if bad).
        memcgctl.run(limit_arguments(name, requested), dry_run=True, allowed=(0, 66))
    _, plan, _ = memcgctl.run(["create", "-p", "--", name], dry_run=True)
    if check_mode:
        return {"changed": True, "before": description(None), "stat": new_group_stat(memcgctl, name, requested)}
    memcgctl.run(["create", "-p", "--", name])
    if requested:
        argv = memcgctl.argv(limit_arguments(name, requested))
        rc, out, err = memcgctl.module.run_command(argv, environ_update={"LC_ALL": "C.UTF-8"})
        if rc != 0:
            remove_created(memcgctl, name, plan)
            memcgctl.fail(argv, rc, out, err)
    return {"changed": True, "before": description(None), "stat": memcgctl.stat(name)}


def new_group_stat(memcgctl: Memcgctl, name: str, requested: dict) -> dict:
    """Check mode: the cgroup version and the limits a new group NAME would
    hold after the REQUESTED ones, in bytes as a real run returns them (not
    the sizes as given).  memcgctl itself turns the sizes into the writes:
    `memcgctl -n limit` on a group of that name in a fake tree of this host's
    cgroup version, made in the module's temporary directory."""
    root = memcgctl.stat("/")  # the root of a v2 hierarchy has no memory.current: stat of it is 66
    version = root["cgroup_version"] if root else 2
    with tempfile.TemporaryDirectory(dir=memcgctl.module.tmpdir) as directory:
        fake = Memcgctl(memcgctl.module, root=os.path.join(directory, "cgroup"))
        argv = [fake.executable, "init-fake", "--cgroup-version", str(version), fake.root]
        rc, out, err = memcgctl.module.run_command(argv, environ_update={"LC_ALL": "C.UTF-8"})
        if rc != 0:
            memcgctl.fail(argv, rc, out, err)
        fake.run(["create", "-p", "--", name])
        _, planned, _ = fake.run(limit_arguments(name, requested), dry_run=True)
        limits = predicted_limits(limits_of(fake.stat(name)), planned_writes(planned))
    return {"cgroup_version": version, **limits}


def remove_created(memcgctl: Memcgctl, name: str, create_plan: str) -> None:
    """Remove the groups a `create -p` with this PLAN made: the last k parts
    of NAME, where k is the number of groups the plan makes."""
    parts = [part for part in name.split("/") if part]
    created = sum(1 for step in planned_steps(create_plan) if step["action"] == "mkdir")
    if created:
        memcgctl.run(["delete", "-r", "--", "/".join(parts[:len(parts) - created + 1])], allowed=range(256))


def ensure_absent(memcgctl: Memcgctl, name: str, check_mode: bool) -> dict:
    before = memcgctl.stat(name)
    if before is None:
        return {"changed": False, "before": description(None), "stat": None}
    memcgctl.run(["delete", "--", name], dry_run=check_mode)
    return {"changed": True, "before": description(before), "stat": None}


def main():
    module = AnsibleModule(
        argument_spec={
            **COMMON_ARGUMENTS,
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            **{name: {"type": "raw"} for name in LIMIT_OPTIONS},
        },
        supports_check_mode=True,
    )
    memcgctl = Memcgctl(module)
    name = module.params["name"]
    if module.params["state"] == "absent":
        outcome = ensure_absent(memcgctl, name, module.check_mode)
    else:
        outcome = ensure_present(memcgctl, name, requested_limits(module.params), module.check_mode)
    stat = outcome["stat"]
    after = {"state": "absent"} if stat is None else {"state": "present", **limits_of(stat)}
    result = {"changed": outcome["changed"], "group": name, "state": after["state"]}
    if stat is not None:
        result["limits"] = limits_of(stat)
        if stat.get("cgroup_version"):
            result["cgroup_version"] = stat["cgroup_version"]
    if module._diff:
        result["diff"] = {"before": outcome["before"], "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
