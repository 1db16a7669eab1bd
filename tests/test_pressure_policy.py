"""The pressure policy on made-up readings: each pass the engine hands it one
Reading and the group's state, and it answers a Step (shrink to) or None.

The real-kernel proofs are tests/test_daemon_pressure_v1.py (refaults on this
machine's v1) and tests/test_daemon_pressure_vm.py (PSI on v2, in the VM).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memcgctl.daemon.config import parse_config
from memcgctl.daemon.policies import POLICIES, Reading, Step
from memcgctl.daemon.policies.pressure import PAGE_SIZE, PressurePolicy
from memcgctl.errors import ConfigError
from memcgctl.kernel.psi import MemoryPressure, StallFigures

MIB = 1 << 20


def toml_value(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower()


def pressure_policy(rule: dict | None = None) -> PressurePolicy:
    """The policy of a [[group]] written with the keys of RULE, parsed as the daemon does."""
    lines = ['[[group]]', 'match = "web"', 'policy = "pressure"',
             *(f"{key} = {toml_value(value)}" for key, value in (rule or {}).items())]
    config = parse_config("\n".join(lines) + "\n", Path("daemon.toml"))
    return config.rules[0].policy(config.rules[0].settings)


def group_pressure(total_us: int, avg10: float = 0.0) -> MemoryPressure:
    return MemoryPressure(StallFigures(avg10, 0.0, 0.0, total_us), None, "group", "web/memory.pressure")


def host_pressure(total_us: int) -> MemoryPressure:
    return MemoryPressure(StallFigures(0.0, 0.0, 0.0, total_us), None, "host", "/proc/pressure/memory")


def reading(time: float, usage: int, pressure=None, refaults: int = 0, protected: int = 0) -> Reading:
    stat = {"workingset_refault_anon": 0, "workingset_refault_file": refaults}
    return Reading("web", time, usage, None, protected, stat, None, pressure)


def run_passes(policy, usages_and_stalls, state=None):
    """Feed (usage, stalled µs this pass) one second apart; the Steps returned."""
    state = {} if state is None else state
    total, steps = 0, []
    for second, (usage, stalled) in enumerate(usages_and_stalls):
        total += stalled
        steps.append(policy.plan(reading(float(second), usage, group_pressure(total)), state))
    return steps, state


def test_registered_under_its_name():
    assert POLICIES["pressure"] is PressurePolicy
    assert pressure_policy({}).name == "pressure"


def test_first_pass_on_v2_reads_avg10():
    # No earlier sample (the first pass, --once): avg10 is all there is.
    state = {}
    step = pressure_policy({"max_step": "8M"}).plan(reading(0.0, 800 * MIB, group_pressure(0, avg10=0.0)), state)
    assert step == Step(798 * MIB, "pressure avg10 0.00% at a first look (target 0.1%): reclaim 2 MiB")
    assert state["sample"][0] == 0.0
    assert pressure_policy().plan(reading(0.0, 800 * MIB, group_pressure(0, avg10=0.5)), {}) is None


def test_first_pass_on_v1_only_samples():
    state = {}
    assert pressure_policy().plan(reading(0.0, 800 * MIB, host_pressure(0), refaults=5), state) is None
    assert state["idle_why"] == "measuring: no refault rate before a second pass"
    assert state["sample"] == (0.0, host_pressure(0), 5)


def test_calm_group_gets_growing_steps_up_to_max_step():
    policy = pressure_policy({"target": 0.1, "max_step": "4%"})
    usage = 1000 * MIB
    steps, state = run_passes(policy, [(usage, 0)] * 6)
    taken = [usage - step.target for step in steps]
    largest = int(usage * 0.04)
    # 1/8 of max_step doubled: 1/4, 1/2, then max_step from there on.
    assert taken == [largest // 4, largest // 2, largest, largest, largest, largest]
    assert steps[-1].why == ("pressure 0.000% over 5 s, 0.000% over 1.0 s (target 0.1%), refaults 0.000%/s: "
                             "reclaim 40 MiB")
    assert state["step"] == largest


def test_step_shrinks_as_pressure_approaches_target():
    policy = pressure_policy({"target": 1.0, "max_step": "100M"})
    # Calm until the step is 100M, then 25 ms (2.5%) stalled in one pass: half
    # of PASS_SPIKE (5) times the target, half the room left.
    steps, state = run_passes(policy, [(1000 * MIB, 0)] * 5 + [(1000 * MIB, 25_000)])
    assert 1000 * MIB - steps[-2].target == 100 * MIB
    assert 1000 * MIB - steps[-1].target == 50 * MIB
    assert "2.500% over 1.0 s" in steps[-1].why and state["step"] == 50 * MIB


def test_a_steady_low_pressure_gives_a_steady_share_of_the_largest_step():
    """0.03% stalled a second against a 0.1% target, pass after pass (6.1's
    window after a blip): the step shrank by 30% each pass down to 1 MiB,
    and the group crawled.  It now grows to 70% of max_step and stays."""
    policy = pressure_policy({"target": 0.1, "max_step": "100M"})
    steps, state = run_passes(policy, [(1000 * MIB, 0)] + [(1000 * MIB, 300)] * 12)
    taken = [1000 * MIB - step.target for step in steps[1:]]
    assert taken[-1] == int(100 * MIB * 0.7) and min(taken[3:]) >= taken[2] >= MIB, taken
    assert "pressure 0.030% over 10 s" in steps[-1].why


def test_a_blip_within_a_calm_window_does_not_stop_it():
    # 2 ms stalled in one second (a swap-in or two) is 0.2% of that pass but
    # 0.04% of the last five seconds: under the 0.1% target, reclaim goes on.
    policy = pressure_policy({"target": 0.1, "max_step": "100M"})
    steps, state = run_passes(policy, [(1000 * MIB, 0)] * 4 + [(1000 * MIB, 2000)])
    assert steps[-1] is not None and "pressure 0.050% over 4 s, 0.200% over 1.0 s" in steps[-1].why
    assert "hold_until" not in state


def test_stall_over_the_window_backs_off():
    # 0.3 ms a second for ten seconds: no pass is a spike, the window is at 0.3%.
    policy = pressure_policy({"target": 0.1, "hold": 5})
    steps, state = run_passes(policy, [(1000 * MIB, 0)] + [(1000 * MIB, 3000)] * 3)
    assert steps[-1] is None and "backing off for 5 s" in state["idle_why"]


def test_pressure_at_target_backs_off_and_holds():
    policy = pressure_policy({"target": 0.1, "max_step": "100M", "hold": 5})
    usage = 1000 * MIB
    # Four calm passes, then 6 ms stalled in one second (0.6%, past 5 x 0.1%), then calm again.
    steps, state = run_passes(policy, [(usage, 0)] * 4 + [(usage, 6000)] + [(usage, 0)] * 10)
    assert steps[4] is None
    # The window (6 ms over 5 and 6 s: 0.12%, 0.1%) extends the hold twice.
    assert state["hold_until"] == 6.0 + 5
    assert state["edge"] == usage
    # Held until 11 s, then a quarter of the step grown by a quarter (the
    # window still holds the stall), growing by at most a quarter a pass
    # (near the usage that felt pressure).
    assert steps[5:11] == [None] * 6
    taken = [usage - step.target for step in steps[11:]]
    assert taken[0] <= 25 * MIB * 1.25 and all(b <= a * 1.25 + 1 for a, b in zip(taken, taken[1:], strict=False))


def test_reads_the_total_not_avg10():
    # avg10 still says 5% long after a stall: the totals say nothing stalled
    # this pass, so reclaim goes on.
    policy = pressure_policy()
    state = {"sample": (0.0, group_pressure(10_000_000, avg10=5.0), 0)}
    step = policy.plan(reading(1.0, 500 * MIB, group_pressure(10_000_000, avg10=5.0)), state)
    assert step is not None and step.target < 500 * MIB and step.why.startswith("pressure 0.000% over 1 s")


@pytest.mark.parametrize(("protected", "minimum", "floor"), [(600 * MIB, 0, 600 * MIB),
                                                              (0, "700M", 700 * MIB),
                                                              (600 * MIB, "650M", 650 * MIB)])
def test_never_below_protection_or_min(protected, minimum, floor):
    policy = pressure_policy({"min": minimum, "max_step": "100%"})
    state = {}
    policy.plan(reading(0.0, 1000 * MIB, group_pressure(0), protected=protected), state)
    targets = []
    for second in range(1, 8):
        step = policy.plan(reading(float(second), 1000 * MIB if not targets else targets[-1],
                                   group_pressure(0), protected=protected), state)
        if step is None:
            break
        targets.append(step.target)
    assert targets and min(targets) == floor
    assert f"at the floor ({floor // MIB} MiB)" == state["idle_why"]


def test_v1_refaults_relative_to_size_drive_it():
    policy = pressure_policy({"refault_target": 0.1, "max_step": "10%"})
    usage = 400 * MIB
    state = {}
    assert policy.plan(reading(0.0, usage, host_pressure(0), refaults=1000), state) is None
    calm = policy.plan(reading(1.0, usage, host_pressure(0), refaults=1000), state)
    assert calm is not None and "refaults 0.000%/s of its size" in calm.why and "host pressure 0.000%" in calm.why
    # 0.2% of 400 MiB refaulted in one second: twice the target.
    pages = -(-usage * 2 // 1000 // PAGE_SIZE)
    assert policy.plan(reading(2.0, usage, host_pressure(0), refaults=1000 + pages), state) is None
    assert "backing off" in state["idle_why"] and "refaults 0.200%/s" in state["idle_why"]


def test_v1_hierarchical_counters_win():
    policy = pressure_policy({"refault_target": 0.1})
    state = {}
    stat = {"workingset_refault_file": 0, "total_workingset_refault_file": 0}
    policy.plan(Reading("web", 0.0, 400 * MIB, None, 0, stat, None, None), state)
    # A child refaulted 10% of the group in a second: only total_* sees it.
    stat = {"workingset_refault_file": 0, "total_workingset_refault_file": 40 * MIB // PAGE_SIZE}
    assert policy.plan(Reading("web", 1.0, 400 * MIB, None, 0, stat, None, None), state) is None
    assert "refaults 10.000%/s" in state["idle_why"]


def test_v1_host_pressure_guards():
    policy = pressure_policy({"host_target": 1.0})
    state = {}
    policy.plan(reading(0.0, 400 * MIB, host_pressure(0)), state)
    # 20 ms of host-wide stall in one second: 2%, twice the guard.
    assert policy.plan(reading(1.0, 400 * MIB, host_pressure(20_000)), state) is None
    assert "host pressure 2.000% (guard 1%)" in state["idle_why"] and "backing off" in state["idle_why"]


@pytest.mark.parametrize(("rule", "line", "message"), [
    ({"target": 0}, 4, "key 'target': expected a percentage above 0 and below 100 (0.1 means 0.1%), not 0"),
    ({"target": "0.1"}, 4, "key 'target': expected a number, not '0.1'"),
    ({"target": True}, 4, "key 'target': expected a number, not True"),
    ({"min": "lots"}, 4, "key 'min': bad size 'lots'"),
    ({"max_step": "0%"}, 4, "key 'max_step': expected a size or a percentage of usage above 0%"),
    ({"max_step": "150%"}, 4, "key 'max_step'"),
    ({"max_step": "4K"}, 4, "key 'max_step': expected at least 1M, not '4K'"),
    ({"target": 0.5, "hold": -1}, 5, "key 'hold': expected seconds from 0 to 3600, not -1"),
    ({"refault_target": 100}, 4, "key 'refault_target'"),
    ({"host_target": "x"}, 4, "key 'host_target'"),
    ({"tagret": 0.1}, 4, "key 'tagret': unknown key in [[group]] with policy 'pressure'"),
])
def test_bad_rules_name_the_line_and_key(rule, line, message):
    with pytest.raises(ConfigError) as caught:
        pressure_policy(rule)
    assert caught.value.exit_code == 78
    assert f"configuration line {line}, {message}" in str(caught.value)


def test_defaults():
    policy = pressure_policy()
    assert (policy.target, policy.max_step_percent, policy.hold, policy.refault_target, policy.host_target,
            policy.minimum) == (0.1, 5.0, 10.0, 0.1, 1.0, 0)


def test_trigger_wakes_the_engine_on_v2_only():
    policy = pressure_policy({"target": 0.5})
    # 0.5% of a 2 s window: 10 ms stalled.
    assert policy.watch_specs(reading(0.0, MIB, group_pressure(0)), 2) == (("pressure", 10_000, 2_000_000),)
    assert policy.watch_specs(reading(0.0, MIB, host_pressure(0)), 1) == ()
    assert policy.watch_specs(reading(0.0, MIB, None), 2) == ()


def test_pressure_again_soon_after_a_hold_holds_twice_as_long():
    policy = pressure_policy({"target": 0.1, "max_step": "100M", "hold": 5})
    state, total = {}, 0
    usage = 1000 * MIB
    holds = []
    # Pressure at 3 s (held until 11 s: the 10 s window stays above target
    # until 7 s); back at 13 s, 2 s after that hold ended; again 2 s after
    # the next (23 s); then long after.
    for second in range(70):
        stalled = 6000 if second in (3, 13, 25, 60) else 0
        total += stalled
        policy.plan(reading(float(second), usage, group_pressure(total)), state)
        if stalled:
            holds.append(state["hold_until"] - second)
    assert holds == [5, 10, 20, 5]


def test_steps_are_data():
    state = {"sample": (0.0, group_pressure(0), 0)}
    step = pressure_policy({"max_step": "8M"}).plan(reading(1.0, 100 * MIB, group_pressure(0)), state)
    assert isinstance(step, Step) and step.target == 98 * MIB and step.why.endswith("reclaim 2 MiB")


# --- the working set's edge (v2: refaults), swappiness steering, the estimate --------------------------------


def reading_v2(time: float, usage: int, total_us: int, anon_pages: int, file_pages: int) -> Reading:
    stat = {"workingset_refault_anon": anon_pages, "workingset_refault_file": file_pages}
    return Reading("web", time, usage, None, 0, stat, None, group_pressure(total_us))


def test_file_refaults_steer_reclaim_toward_anonymous_memory_and_back():
    policy = pressure_policy({"max_step": "10%"})
    state, usage = {}, 1000 * MIB
    assert policy.plan(reading_v2(0.0, usage, 0, 0, 0), state).swappiness is None  # a first look: nothing to steer by
    calm = policy.plan(reading_v2(1.0, usage, 0, 0, 0), state)
    assert calm.swappiness == 100
    # 8 MiB of page cache read back in a second, no anonymous memory: take anonymous memory.
    pages = 8 * MIB // PAGE_SIZE
    assert policy.plan(reading_v2(2.0, usage, 0, 0, pages), state).swappiness == 140
    assert policy.plan(reading_v2(3.0, usage, 0, 0, 2 * pages), state).swappiness == 180
    assert policy.plan(reading_v2(4.0, usage, 0, 0, 3 * pages), state).swappiness == 200  # its range ends at 200
    # Then anonymous memory refaults (swap-ins): back toward page cache.
    assert policy.plan(reading_v2(5.0, usage, 0, pages, 3 * pages), state).swappiness == 160
    # Both alike (4 MiB each, less than the step: no churn), or too few to matter: it stays.
    half = pages // 2
    assert policy.plan(reading_v2(6.0, usage, 0, pages + half, 3 * pages + half), state).swappiness == 160
    assert policy.plan(reading_v2(7.0, usage, 0, pages + half + 1, 3 * pages + half), state).swappiness == 160


def test_refaults_make_the_steps_careful_and_set_the_working_set():
    policy = pressure_policy({"max_step": "10%", "refault_target": 0.1})
    state, usage = {}, 1000 * MIB
    for second in range(4):  # calm: the step grows to 10% of usage
        step = policy.plan(reading_v2(float(second), usage, 0, 0, 0), state)
    assert usage - step.target == 100 * MIB and policy.working_set(state) is None
    # 4 MiB refaulted in a second at 600 MiB: 0.67%/s, past the 0.1 target.
    # The group is at the edge of its working set: steps of at most 1% of
    # usage, and the estimate is that usage.
    refaulted = 2 * MIB // PAGE_SIZE
    step = policy.plan(reading_v2(4.0, 600 * MIB, 0, refaulted, refaulted), state)
    assert 600 * MIB - step.target == 6 * MIB
    assert "refaults 0.667%/s" in step.why
    assert policy.working_set(state) == (600 * MIB, 4.0)
    # Still refaulting at 500 MiB: the estimate follows halfway (550 MiB).
    step = policy.plan(reading_v2(5.0, 500 * MIB, 0, 2 * refaulted, 2 * refaulted), state)
    assert 500 * MIB - step.target == 5 * MIB
    assert policy.working_set(state) == (550 * MIB, 5.0)
    # Calm again right above the estimate: the step grows by a quarter, not double.
    step = policy.plan(reading_v2(6.0, 560 * MIB, 0, 2 * refaulted, 2 * refaulted), state)
    assert 560 * MIB - step.target == int(5 * MIB * 1.25)
    assert policy.working_set(state) == (550 * MIB, 5.0)  # unchanged while it does not refault


def test_the_group_grows_back_and_the_estimate_follows():
    # The hot set grew: the kernel gave the group memory back (memory.reclaim
    # sets no limit) and it refaults as it grows; the estimate follows it up.
    policy = pressure_policy({"refault_target": 0.1})
    state = {}
    refaulted = 4 * MIB // PAGE_SIZE
    policy.plan(reading_v2(0.0, 300 * MIB, 0, 0, 0), state)
    policy.plan(reading_v2(1.0, 300 * MIB, 0, refaulted, 0), state)
    assert policy.working_set(state) == (300 * MIB, 1.0)
    policy.plan(reading_v2(2.0, 400 * MIB, 0, 2 * refaulted, 0), state)
    policy.plan(reading_v2(3.0, 420 * MIB, 0, 3 * refaulted, 0), state)
    assert policy.working_set(state) == (385 * MIB, 3.0)


def reading_split(time: float, anon: int, file: int, anon_pages: int, file_pages: int) -> Reading:
    stat = {"anon": anon, "file": file, "workingset_refault_anon": anon_pages, "workingset_refault_file": file_pages}
    return Reading("web", time, anon + file + 10 * MIB, None, 0, stat, None, group_pressure(0))


def test_each_kind_of_memory_has_its_own_edge_in_the_estimate():
    # v2's memory.stat splits usage: page cache refaulting at 100 MiB says its
    # hot part is 100 MiB, while anonymous memory that does not refault yet
    # counts what it holds (an upper bound), and follows it down.
    policy = pressure_policy({"refault_target": 0.1})
    state = {}
    file_refaults = 4 * MIB // PAGE_SIZE
    policy.plan(reading_split(0.0, 600 * MIB, 100 * MIB, 0, 0), state)
    assert policy.plan(reading_split(1.0, 600 * MIB, 100 * MIB, 0, 0), state) is not None
    assert policy.working_set(state) is None  # no refaults yet: no estimate
    step = policy.plan(reading_split(2.0, 590 * MIB, 100 * MIB, 0, file_refaults), state)
    assert policy.working_set(state) == (700 * MIB, 2.0)  # 590 + 100 + 10
    # One kind at its edge: the step is steered to the other (swappiness up)
    # and may take up to 2% of usage (1% once both refault).
    assert step.swappiness == 140 and 0.01 < (700 * MIB - step.target) / (700 * MIB) <= 0.02
    policy.plan(reading_split(3.0, 400 * MIB, 100 * MIB, 0, file_refaults), state)
    assert policy.working_set(state) == (510 * MIB, 3.0)
    # Then anonymous memory refaults at 150 MiB: both edges known.
    anon_refaults = 4 * MIB // PAGE_SIZE
    policy.plan(reading_split(4.0, 150 * MIB, 100 * MIB, anon_refaults, file_refaults), state)
    assert policy.working_set(state) == (260 * MIB, 4.0) and state["working_set_complete"]
    # Calm passes that change nothing keep the time of the last evidence: its age grows.
    policy.plan(reading_split(5.0, 150 * MIB, 100 * MIB, anon_refaults, file_refaults), state)
    assert policy.working_set(state) == (260 * MIB, 4.0)


def test_swap_cache_and_zswap_are_not_counted_in_the_estimate():
    # 6.1's classic LRU keeps copies of pages already written to swap (the
    # unmapped swap cache: in neither anon nor file) and zswap's pool is
    # charged to the group: neither is memory the workload needs.  Without
    # taking them off, the bench's estimate was 40% over its hot set.
    policy = pressure_policy({"refault_target": 0.1})
    state = {}
    refaults = 4 * MIB // PAGE_SIZE

    def reading(time, anon_pages, file_pages):
        stat = {"anon": 150 * MIB, "file": 100 * MIB, "swapcached": 90 * MIB, "zswap": 30 * MIB,
                "workingset_refault_anon": anon_pages, "workingset_refault_file": file_pages}
        return Reading("web", time, 380 * MIB, None, 0, stat, None, group_pressure(0))

    policy.plan(reading(0.0, 0, 0), state)
    policy.plan(reading(1.0, 0, 0), state)
    policy.plan(reading(2.0, refaults, refaults), state)
    assert policy.working_set(state) == (260 * MIB, 2.0)  # 150 + 100 + the 10 MiB of kernel memory


def test_a_step_that_comes_straight_back_holds_the_policy_off_at_the_working_set():
    """At the hot set a step of 5 MiB a second was refaulted within the
    second, pass after pass: swap-out and swap-in for nothing.  The policy
    now holds off for `hold` seconds, then takes a careful step again."""
    policy = pressure_policy({"max_step": "2%", "refault_target": 0.1, "hold": 10})
    state, usage = {}, 260 * MIB
    policy.plan(reading_v2(0.0, usage, 0, 0, 0), state)
    step = policy.plan(reading_v2(1.0, usage, 0, 0, 0), state)
    taken = usage - step.target
    assert taken >= MIB
    # All of it refaulted within the next pass, PSI calm: no step, a hold.
    pages = taken // PAGE_SIZE
    assert policy.plan(reading_v2(2.0, usage, 0, pages // 2, pages - pages // 2), state) is None
    assert "the last step came back, the group is at its working set; holding off for 10 s" in state["idle_why"]
    assert state["hold_until"] == 12.0
    assert policy.plan(reading_v2(11.0, usage, 0, pages // 2, pages - pages // 2), state) is None  # still held
    # After the hold, calm: a careful step again (near the estimate: a quarter more, at most max_step).
    again = policy.plan(reading_v2(12.0, usage, 0, pages // 2, pages - pages // 2), state)
    assert again is not None and MIB <= usage - again.target <= 2 * taken
    # A few refaults (under CHURN_SHARE of the step) do not hold it off.
    little = (usage - again.target) // PAGE_SIZE // 4
    assert policy.plan(reading_v2(13.0, usage, 0, pages // 2 + little, pages - pages // 2), state) is not None
