"""memory.zswap.current and memory.zswap.writeback (v2, 6.8+ for the
latter): in the record, `stat --detail`, a column of `top` and two metrics
of `export`, on fake v2 trees that have them (init-fake makes them); a v1
tree, and a v2 tree without them (a kernel without zswap), show nothing and
fail nothing."""

from __future__ import annotations

import pytest

from memcgctl.kernel.discovery import open_hierarchy

from conftest import run_cli

MIB = 1024**2


@pytest.fixture
def web(fake_v2):
    assert run_cli(fake_v2, "create", "web").exit_code == 0
    (fake_v2 / "web" / "memory.zswap.current").write_text(f"{12 * MIB}\n")
    (fake_v2 / "web" / "memory.zswap.writeback").write_text("0\n")
    return fake_v2


@pytest.fixture
def without_zswap(fake_v2):
    """A v2 group on a kernel without zswap: no memory.zswap.* files."""
    assert run_cli(fake_v2, "create", "web").exit_code == 0
    for name in ("memory.zswap.current", "memory.zswap.writeback"):
        (fake_v2 / "web" / name).unlink()
    return fake_v2


def test_init_fake_and_create_make_the_zswap_files_of_v2_only(tmp_path):
    for version in (1, 2):
        root = tmp_path / f"v{version}"
        assert run_cli(None, "init-fake", "--cgroup-version", str(version), str(root)).exit_code == 0
        assert run_cli(root, "create", "web").exit_code == 0
        files = {path.name for path in (root / "web").iterdir()}
        zswap = {"memory.zswap.current", "memory.zswap.writeback"}
        assert zswap <= files if version == 2 else not zswap & files
        if version == 2:
            assert (root / "web" / "memory.zswap.current").read_text() == "0\n"
            assert (root / "web" / "memory.zswap.writeback").read_text() == "1\n"


def test_the_record_holds_them_and_none_where_absent(web, fake_v1, tmp_path):
    parts = frozenset({"zswap", "zswap_writeback"})
    backend = open_hierarchy(web)
    figures = backend.read_figures(backend.group("web"), parts)
    assert (figures.zswap, figures.zswap_writeback) == (12 * MIB, False)
    (web / "web" / "memory.zswap.writeback").write_text("1\n")
    assert backend.read_figures(backend.group("web"), parts).zswap_writeback is True
    # Not asked for: not read.
    assert backend.read_figures(backend.group("web"), frozenset({"usage"})).zswap is None
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    v1 = open_hierarchy(fake_v1)
    figures = v1.read_figures(v1.group("web"), parts)
    assert (figures.zswap, figures.zswap_writeback) == (None, None)


def test_a_bad_zswap_file_is_an_error_naming_it(web):
    (web / "web" / "memory.zswap.current").write_text("lots\n")
    result = run_cli(web, "stat", "web", "--detail")
    assert result.exit_code != 0 and "memory.zswap.current" in result.stderr and "Traceback" not in result.stderr


def test_stat_detail_shows_them(web):
    result = run_cli(web, "stat", "web", "--detail")
    assert result.exit_code == 0, result.stderr
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith("  zswap_")}
    assert lines["zswap_current"][1:3] == ["12", "MiB"]
    assert lines["zswap_writeback"][1] == "off"


@pytest.mark.parametrize("tree", ["fake_v1", "without_zswap"])
def test_stat_detail_without_them_shows_no_zswap_row(tree, request):
    root = request.getfixturevalue(tree)
    if tree == "fake_v1":
        assert run_cli(root, "create", "web").exit_code == 0
    result = run_cli(root, "stat", "web", "--detail")
    assert result.exit_code == 0, result.stderr
    assert "zswap_" not in result.stdout and "usage" in result.stdout


def _batch_table(root) -> dict:
    result = run_cli(root, "top", "-b", "-n", "1")
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()[1:-1]
    return {row.split()[0]: dict(zip(header.split(), row.split(), strict=True)) for row in rows}


def test_top_has_a_zswap_column_on_v2(web):
    assert _batch_table(web)["web"]["ZSWAP"] == "12M"


def test_top_shows_a_dash_without_the_files_and_no_column_on_v1(without_zswap, fake_v1):
    assert _batch_table(without_zswap)["web"]["ZSWAP"] == "-"
    assert run_cli(fake_v1, "create", "web").exit_code == 0
    assert "ZSWAP" not in _batch_table(fake_v1)["web"]


def test_top_live_hides_the_zswap_column_first_in_a_narrow_window(web):
    from memcgctl.operations.sampling import Sampler
    from memcgctl.render.frames import frame_parts
    from memcgctl.render.live import View, render

    backend = open_hierarchy(web)
    frame = Sampler(backend, parts=frame_parts(2)).next_frame()
    wide = render(frame, View(2), 200, 10).plain
    assert "ZSWAP" in wide.splitlines()[1] and "12M" in wide
    narrow = render(frame, View(2), len(wide.splitlines()[1].rstrip()) - 3, 10).plain
    assert "ZSWAP" not in narrow.splitlines()[1] and "SWAP" in narrow.splitlines()[1]


def test_top_reads_the_zswap_files_only_for_its_column(web):
    from memcgctl.operations.sampling import Sampler

    [row] = Sampler(open_hierarchy(web)).next_frame().rows  # default parts: no zswap column asked for
    assert row.figures.zswap is None


def test_export_has_the_two_metrics(web):
    result = run_cli(web, "export")
    assert result.exit_code == 0, result.stderr
    assert 'memcgctl_memory_zswap_bytes{group="web"} 1.2582912e+07' in result.stdout
    assert 'memcgctl_memory_zswap_writeback{group="web"} 0.0' in result.stdout
    assert "# TYPE memcgctl_memory_zswap_bytes gauge" in result.stdout


@pytest.mark.parametrize("tree", ["fake_v1", "without_zswap"])
def test_export_without_them_has_no_zswap_metric_and_no_error(tree, request):
    root = request.getfixturevalue(tree)
    if tree == "fake_v1":
        assert run_cli(root, "create", "web").exit_code == 0
    result = run_cli(root, "export")
    assert result.exit_code == 0, result.stderr
    assert "zswap" not in result.stdout
    assert "memcgctl_scrape_errors 0.0" in result.stdout and 'memcgctl_memory_usage_bytes{group="web"}' in result.stdout
