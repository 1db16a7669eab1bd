"""memcgctl as a library: shrink(), set_limits() and read_stats() called from
Python, on fake roots and on the real kernel.  Each test checks the result the
caller gets AND the state the kernel (or the fake tree) is left in, and that
the library printed nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memcgctl import open_hierarchy, parse_target, read_stats, select_groups, shrink
from memcgctl.errors import NotFound
from memcgctl.kernel.v2 import RECLAIM_CHUNK
from memcgctl.operations.limits import set_limits
from memcgctl.operations.shrink import StopReason
from memcgctl.safety.deadline import Deadline
from memcgctl.safety.journal import Journal

MIB = 1024**2
GIB = 1024**3


def names(backend) -> dict:
    """The kernel file names of BACKEND's version."""
    if backend.version == 1:
        return {"usage": "memory.usage_in_bytes", "limit": "memory.limit_in_bytes"}
    return {"usage": "memory.current", "limit": "memory.max"}


def read(backend, group: str, what: str) -> str:
    return (backend.fs.root / group / names(backend)[what]).read_text().strip()


def with_group_web(backend):
    for action in backend.plan_create(backend.group("web", must_exist=False)):
        backend.fs.apply(action)
    return backend


@pytest.fixture
def fake_backend(fake_root, journal_directory):
    return with_group_web(open_hierarchy(fake_root, journal=Journal(journal_directory)))


@pytest.fixture
def kernel_backend(kernel_root, journal_directory):
    return with_group_web(open_hierarchy(kernel_root.path, journal=Journal(journal_directory)))


# --- shrink() ---------------------------------------------------------------------------


def test_shrink_of_a_group_under_its_target_writes_nothing(fake_backend, capfd):
    web = fake_backend.group("web")
    limit_before = read(fake_backend, "web", "limit")
    result = shrink(fake_backend, web, parse_target("100M"), Deadline(5))
    assert (result.group, result.before, result.after, result.target) == ("web", 0, 0, 100 * MIB)
    assert result.reached and result.stopped_because is None and result.left is None
    assert read(fake_backend, "web", "limit") == limit_before
    if fake_backend.version == 2:
        assert (fake_backend.fs.root / "web" / "memory.reclaim").read_text() == ""
    assert capfd.readouterr() == ("", "")


def test_shrink_of_a_fake_group_reports_what_did_not_happen(fake_backend, capfd):
    """Plain files do not reclaim: the result says the usage stayed."""
    web = fake_backend.group("web")
    (fake_backend.fs.root / "web" / names(fake_backend)["usage"]).write_text(str(300 * MIB))
    set_limits(fake_backend, web, {"limit": GIB})
    result = shrink(fake_backend, web, parse_target("50%"), Deadline(5))
    assert (result.before, result.after, result.target, result.reached) == (300 * MIB, 300 * MIB, 150 * MIB, False)
    assert read(fake_backend, "web", "limit") == str(GIB)  # v1 restored it; v2 never wrote it
    if fake_backend.version == 2:
        assert result.stopped_because is StopReason.NO_PROGRESS
        assert (fake_backend.fs.root / "web" / "memory.reclaim").read_text() == str(RECLAIM_CHUNK)
    assert capfd.readouterr() == ("", "")


def test_shrink_while_another_memcgctl_holds_the_group_is_locked(fake_backend, journal_directory):
    web = fake_backend.group("web")
    (fake_backend.fs.root / "web" / names(fake_backend)["usage"]).write_text(str(300 * MIB))
    limit_before = read(fake_backend, "web", "limit")
    with Journal(journal_directory).locked(web.path):
        result = shrink(fake_backend, web, parse_target("100M"), Deadline(0.2))
    assert result.stopped_because is StopReason.LOCKED
    assert result.detail == "another memcgctl is changing it"
    assert (result.before, result.after, result.reached) == (300 * MIB, 300 * MIB, False)
    assert 0.2 <= result.seconds < 2
    assert read(fake_backend, "web", "limit") == limit_before


def test_shrink_page_cache_on_the_kernel(kernel_root, kernel_backend, tmp_path, capfd):
    web = kernel_backend.group("web")
    set_limits(kernel_backend, web, {"limit": GIB})
    kernel_root.fill_page_cache("web", tmp_path / "cache", 80)
    capfd.readouterr()
    result = shrink(kernel_backend, web, parse_target("20M"), Deadline(30))
    assert result.reached and result.stopped_because is None, result
    assert result.before > 70 * MIB and result.after <= 20 * MIB and result.target == 20 * MIB
    assert int(read(kernel_backend, "web", "usage")) <= 20 * MIB
    assert read(kernel_backend, "web", "limit") == str(GIB)
    assert list(Path(kernel_backend.journal.directory).glob("*.restore")) == []
    assert capfd.readouterr() == ("", "")


def test_shrink_of_anonymous_memory_on_the_kernel_stops_with_no_progress(kernel_root, kernel_backend):
    web = kernel_backend.group("web")
    holder = kernel_root.hold_anonymous_memory("web", 60 * MIB)
    limit_before = read(kernel_backend, "web", "limit")
    result = shrink(kernel_backend, web, parse_target("5M"), Deadline(30))
    assert result.stopped_because is StopReason.NO_PROGRESS and not result.reached
    assert result.left["anon"] >= 55 * MIB
    assert result.after > 55 * MIB
    assert holder.poll() is None
    assert read(kernel_backend, "web", "limit") == limit_before


# --- set_limits() -----------------------------------------------------------------------


def test_set_limits_returns_what_the_fake_tree_holds(fake_backend):
    web = fake_backend.group("web")
    outcome = set_limits(fake_backend, web, {"limit": 400 * MIB}, deadline=Deadline(5))
    assert outcome.limits["limit"] == 400 * MIB and outcome.shrink is None and outcome.oom_kills == 0
    assert read(fake_backend, "web", "limit") == str(400 * MIB)
    outcome = set_limits(fake_backend, web, {"limit": None}, deadline=Deadline(5))
    assert outcome.limits["limit"] is None
    assert read(fake_backend, "web", "limit") == ("-1" if fake_backend.version == 1 else "max")


def test_set_limits_on_the_kernel_reports_the_rounded_value(kernel_backend):
    web = kernel_backend.group("web")
    outcome = set_limits(kernel_backend, web, {"limit": 100 * MIB + 1}, deadline=Deadline(5))
    assert outcome.limits["limit"] == 100 * MIB  # pages, rounded down
    assert read(kernel_backend, "web", "limit") == str(100 * MIB)
    assert outcome.limits == kernel_backend.read_limits(web)


def test_set_limits_on_v2_below_page_cache_shrinks_first(kernel_root, kernel_backend, tmp_path):
    if kernel_backend.version != 2:
        pytest.skip("only cgroup v2 shrinks before lowering memory.max")
    web = kernel_backend.group("web")
    kernel_root.fill_page_cache("web", tmp_path / "cache", 80)
    outcome = set_limits(kernel_backend, web, {"limit": 30 * MIB}, deadline=Deadline(60))
    assert outcome.shrink is not None and outcome.shrink.reached and outcome.oom_kills == 0
    assert read(kernel_backend, "web", "limit") == str(30 * MIB)
    assert int(read(kernel_backend, "web", "usage")) <= 30 * MIB


# --- read_stats() -----------------------------------------------------------------------


def test_read_stats_of_a_fake_tree_is_what_its_files_say(fake_backend):
    root = fake_backend.fs.root
    (root / "web" / names(fake_backend)["usage"]).write_text(str(12 * MIB))
    (root / "web" / names(fake_backend)["limit"]).write_text(str(64 * MIB))
    [figures] = read_stats(fake_backend, select_groups(fake_backend, ["web"]))
    assert (figures.group, figures.usage, figures.limit, figures.pids) == ("web", 12 * MIB, 64 * MIB, 0)
    assert figures.cgroup_version == fake_backend.version
    text = (root / "web" / "memory.stat").read_text()
    assert figures.stat == {key: int(value) for key, value in (line.split() for line in text.splitlines())}


def test_read_stats_on_the_kernel_agrees_with_its_files(kernel_root, kernel_backend, tmp_path):
    kernel_root.fill_page_cache("web", tmp_path / "cache", 30)
    holder = kernel_root.hold_anonymous_memory("web", 10 * MIB)
    [figures] = read_stats(kernel_backend, select_groups(kernel_backend, ["web"]))
    assert abs(figures.usage - int(read(kernel_backend, "web", "usage"))) < 2 * MIB
    assert figures.usage >= 35 * MIB
    assert figures.pids == 1 and figures.limit is None
    kernel_keys = {line.split()[0] for line in (kernel_root.path / "web" / "memory.stat").read_text().splitlines()}
    assert set(figures.stat) == kernel_keys
    holder.kill()


def test_read_stats_of_a_group_removed_meanwhile(kernel_backend):
    groups = select_groups(kernel_backend, ["web"])
    os.rmdir(groups[0].path)
    with pytest.raises(NotFound):
        read_stats(kernel_backend, groups)
    assert read_stats(kernel_backend, groups, skip_vanished=True) == []


# --- memory.reclaim's swappiness= (6.11+), probed on first use ---------------------------------------------


class ReclaimingKernel:
    """Stands for v2's memory.reclaim on a fake tree: each write lowers
    memory.current by the amount asked; a kernel before 6.11 (TAKES_SWAPPINESS
    false) answers EINVAL to the swappiness= option, as the kernel does."""

    def __init__(self, backend, takes_swappiness: bool):
        self.backend, self.takes_swappiness, self.writes = backend, takes_swappiness, []
        self.apply = backend.fs.apply

    def __call__(self, action):
        if getattr(action, "path", None) is None or action.path.name != "memory.reclaim":
            return self.apply(action)
        self.writes.append(action.value)
        if "swappiness=" in action.value and not self.takes_swappiness:
            from memcgctl.errors import InvalidValue

            raise InvalidValue("write memory.reclaim", "invalid argument (EINVAL)", str(action.path))
        current = action.path.parent / "memory.current"
        current.write_text(str(int(current.read_text()) - int(action.value.split()[0])))
        return None


@pytest.mark.parametrize("takes_swappiness", [True, False], ids=["6.11+", "before 6.11"])
def test_reclaim_asks_for_swappiness_where_the_kernel_takes_it(fake_v2, journal_directory, monkeypatch,
                                                               takes_swappiness):
    from memcgctl.operations.shrink import shrink_locked
    from memcgctl.sizes import ShrinkTarget

    backend = with_group_web(open_hierarchy(fake_v2, journal=Journal(journal_directory)))
    kernel = ReclaimingKernel(backend, takes_swappiness)
    monkeypatch.setattr(backend.fs, "apply", kernel)
    (fake_v2 / "web" / "memory.current").write_text(str(300 * MIB))
    group = backend.group("web")
    first = shrink_locked(backend, group, ShrinkTarget(bytes=200 * MIB), swappiness=150)
    second = shrink_locked(backend, group, ShrinkTarget(bytes=150 * MIB), swappiness=20)
    assert (first.after, second.after) == (200 * MIB, 150 * MIB) and first.reached and second.reached
    assert backend.reclaim_takes_swappiness is takes_swappiness
    chunk = RECLAIM_CHUNK
    pieces = [chunk] * 12 + [4 * MIB]  # 100 MiB, then 50 MiB, at most RECLAIM_CHUNK a write
    if takes_swappiness:
        assert kernel.writes == [f"{size} swappiness=150" for size in pieces] + \
            [f"{size} swappiness=20" for size in [chunk] * 6 + [2 * MIB]]
    else:  # the first refusal is the probe: the step goes on without the option, and so do the next ones
        assert kernel.writes == [f"{chunk} swappiness=150"] + [str(size) for size in pieces + [chunk] * 6 + [2 * MIB]]
    # A step that asks for none leaves it out, and the dry run shows what the real run writes first.
    steps = backend.shrink_step(group, 100 * MIB, swappiness=20).writes
    assert [write.value for write in steps] == [f"{chunk} swappiness=20" if takes_swappiness else str(chunk)]
    assert [write.value for write in backend.shrink_step(group, 100 * MIB).writes] == [str(chunk)]


def test_v1_leaves_swappiness_out(fake_v1, journal_directory):
    backend = with_group_web(open_hierarchy(fake_v1, journal=Journal(journal_directory)))
    step = backend.shrink_step(backend.group("web"), 100 * MIB, swappiness=150)
    assert all("swappiness" not in write.value for write in step.writes)
    assert all(write.path.name != "memory.swappiness" for write in step.writes)
