"""The multi-gen LRU's page generations as a second working-set estimate
(kernel/lru_gen.py): parsing debugfs's lru_gen, the estimate, the probe that
says nothing where the kernel cannot, and stat --detail's line."""

from __future__ import annotations

import os

import pytest

from memcgctl.kernel import lru_gen
from memcgctl.kernel.figures import GroupFigures
from memcgctl.render.detail import detail_lines

MIB = 1024**2
PAGES_PER_MIB = MIB // os.sysconf("SC_PAGE_SIZE")

# Two nodes; the group /work has three generations; the oldest born 95 s ago.
LRU_GEN = f"""\
memcg     1 /
 node     0
          4      95000      {10 * PAGES_PER_MIB}      {10 * PAGES_PER_MIB}
          5       1000          0          0
memcg    42 /work
 node     0
          7      95000      {400 * PAGES_PER_MIB}      {300 * PAGES_PER_MIB}
          8      20000      {100 * PAGES_PER_MIB}       {50 * PAGES_PER_MIB}
          9       2000       {40 * PAGES_PER_MIB}       {30 * PAGES_PER_MIB}
 node     1
          7      94000       {10 * PAGES_PER_MIB}          0
          9       1500       {10 * PAGES_PER_MIB}       {20 * PAGES_PER_MIB}
memcg    43 /work/child
 node     0
          3     300000          1          1
"""


def test_generations_of_one_group_are_summed_over_nodes():
    generations = lru_gen.parse_generations(LRU_GEN, "/work")
    assert [(g.number, g.age_ms, g.anon_bytes // MIB, g.file_bytes // MIB) for g in generations] == [
        (7, 94000, 410, 300), (8, 20000, 100, 50), (9, 1500, 50, 50)]
    assert lru_gen.parse_generations(LRU_GEN, "/elsewhere") is None


def test_a_group_whose_name_has_a_space_is_not_mixed_with_one_named_by_its_first_word():
    text = f"""\
memcg    50 /batch/my
 node     0
          1       1000       {5 * PAGES_PER_MIB}          0
memcg    51 /batch/my job
 node     0
          1       1000      {70 * PAGES_PER_MIB}          0
"""
    mine = lru_gen.parse_generations(text, "/batch/my")
    assert [(g.number, g.anon_bytes // MIB) for g in mine] == [(1, 5)]
    assert [(g.number, g.anon_bytes // MIB) for g in lru_gen.parse_generations(text, "/batch/my job")] == [(1, 70)]


def test_the_estimate_counts_the_generations_born_in_the_window():
    estimate = lru_gen.estimate(lru_gen.parse_generations(LRU_GEN, "/work"), window=30)
    assert (estimate.size // MIB, estimate.anon_bytes // MIB, estimate.file_bytes // MIB) == (250, 150, 100)
    assert estimate.youngest_age == 1.5
    # No reclaim for long: the youngest generation still counts, and says how old it is.
    old = lru_gen.estimate(lru_gen.parse_generations(LRU_GEN, "/work/child"), window=30)
    assert old.youngest_age == 300 and old.size == 2 * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("enabled, listed", [("0x0007\n", True), ("0x0000\n", False), (None, False)],
                         ids=["on", "built-but-off", "not-built"])
def test_probe_reads_lru_gen_only_where_the_multigen_lru_is_on(tmp_path, monkeypatch, enabled, listed):
    # Debian 12's 6.1 has it built but off: its generations say nothing.
    enabled_file, lru_file = tmp_path / "enabled", tmp_path / "lru_gen"
    if enabled is not None:
        enabled_file.write_text(enabled)
    lru_file.write_text(LRU_GEN)
    monkeypatch.setattr(lru_gen, "ENABLED_FILE", enabled_file)
    monkeypatch.setattr(lru_gen, "LRU_GEN_FILE", lru_file)
    monkeypatch.setattr(lru_gen, "_enabled", None)
    found = lru_gen.read_estimate("/work")
    assert (found is not None) == listed
    monkeypatch.setattr(lru_gen, "_enabled", None)
    lru_file.unlink()  # no debugfs mounted: nothing either
    assert lru_gen.read_estimate("/work") is None


def test_lru_gen_path_is_from_the_hierarchys_root(tmp_path):
    assert lru_gen.lru_gen_path(tmp_path / "a" / "b", tmp_path) == "/a/b"
    assert lru_gen.lru_gen_path(tmp_path, tmp_path) == "/"


def test_stat_detail_shows_it_beside_the_daemons_estimate():
    figures = GroupFigures(group="work", path="/sys/fs/cgroup/work", cgroup_version=2, parts=frozenset({"usage"}),
                           usage=300 * MIB, pids=1)
    estimate = lru_gen.estimate(lru_gen.parse_generations(LRU_GEN, "/work"), window=30)
    lines = detail_lines(figures, (), {}, (("pressure", 260 * MIB, 5.0),), estimate)
    shown = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert "260 MiB" in shown["working_set"]
    assert shown["lru_gen_working_set"].split(None, 1)[1].startswith(
        "250 MiB  pages the kernel's multi-gen LRU found used, in generations born in the last 30 s "
        "(150 MiB anon, 100 MiB file; the youngest 2 s old)")
    assert "lru_gen_working_set" not in "\n".join(detail_lines(figures, (), {}))
