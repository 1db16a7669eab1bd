"""The escape is one-to-one: a group whose name holds the four characters
\\x1b and one whose name holds the ESC byte are spelled differently in every
output for a person and in export's labels (a backslash is shown as \\\\)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import run_cli

LITERAL, CONTROL = "a\\x1b", "a\x1b"  # four characters after "a"; one ESC byte after "a"
LITERAL_SHOWN, CONTROL_SHOWN = "a\\\\x1b", "a\\x1b"


def run_text(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(root), *args], capture_output=True,
                          timeout=120, text=True)


@pytest.fixture
def twins(fake_v1):
    """batch/LITERAL using 300M and batch/CONTROL using 100M."""
    for name, usage in ((LITERAL, 300), (CONTROL, 100)):
        assert run_cli(fake_v1, "create", "-p", f"batch/{name}").exit_code == 0
        (fake_v1 / "batch" / name / "memory.usage_in_bytes").write_text(f"{usage * 1024**2}\n")
    return fake_v1


@pytest.mark.parametrize("args", [("stat", "-r", "batch"), ("tree",), ("top", "-b", "-n", "1"),
                                  ("stat", "--csv", "-r", "batch")], ids=["stat", "tree", "top -b", "csv"])
def test_two_names_are_two_spellings_in_every_table(twins, args):
    result = run_text(twins, *args)
    assert result.returncode == 0, result.stderr
    literal = [line for line in result.stdout.splitlines() if LITERAL_SHOWN in line]
    control = [line for line in result.stdout.splitlines() if CONTROL_SHOWN in line and LITERAL_SHOWN not in line]
    assert len(literal) == 1 and len(control) == 1, result.stdout
    assert ("300" in literal[0] or "314572800" in literal[0]) and ("100" in control[0] or "104857600" in control[0])
    assert (twins / "batch" / LITERAL).is_dir() and (twins / "batch" / CONTROL).is_dir()


def test_detail_and_errors_spell_the_backslash_doubled(twins):
    # Both exist, so the literal one is typed as listed (a\\x1b alone names two groups).
    detail = run_text(twins, "stat", f"batch/{LITERAL_SHOWN}", "--detail")
    assert detail.returncode == 0, detail.stderr
    assert detail.stdout.splitlines()[0].startswith(f"batch/{LITERAL_SHOWN}  (cgroup v1, ")
    error = run_text(twins, "create", f"batch/{LITERAL}")
    assert error.returncode == 73, error
    assert f"batch/{LITERAL_SHOWN}" in error.stderr and error.stderr.count("\n") == 1, error.stderr
    # Spelled once: not \\\\\\\\ (escaped by the error and again by the line).
    assert "\\\\\\\\" not in error.stderr


def test_export_gives_two_series_for_two_groups(twins):
    result = run_text(twins, "export")
    assert result.returncode == 0, result.stderr
    # The exposition format itself doubles each backslash of the label value.
    labels = [line.split('group="', 1)[1].split('"}', 1)[0] for line in result.stdout.splitlines()
              if line.startswith("memcgctl_memory_usage_bytes{") and "batch/a" in line]
    assert sorted(labels) == sorted([f"batch/{CONTROL_SHOWN}".replace("\\", "\\\\"),
                                     f"batch/{LITERAL_SHOWN}".replace("\\", "\\\\")]), labels
    assert len(set(labels)) == 2


def test_daemon_check_and_log_spell_each_name_once(twins, tmp_path):
    config = tmp_path / "daemon.toml"
    config.write_text('[[group]]\nmatch = "batch/*"\npolicy = "watermark"\nhigh = "200M"\nlow = "100M"\n')
    check = run_text(twins, "daemon", "--config", str(config), "--check")
    assert check.returncode == 0, check.stderr
    assert f"batch/{LITERAL_SHOWN}" in check.stdout and f"batch/{CONTROL_SHOWN} " in check.stdout + " "
    once = run_text(twins, "-n", "-v", "daemon", "--config", str(config), "--once")
    assert once.returncode == 0, once.stderr
    acting = [line for line in once.stderr.splitlines() if ": watermark: " in line and "would run" in line]
    assert len(acting) == 1 and acting[0].startswith(f"memcgctl daemon: batch/{LITERAL_SHOWN}: "), once.stderr
    assert (twins / "batch" / LITERAL / "memory.limit_in_bytes").read_text().strip() != str(100 * 1024**2)


def test_a_name_typed_as_listed_that_two_groups_answer_to_is_refused(fake_v1):
    """batch/a\\nb (a backslash and n) and batch/a<newline>b both exist: typed
    as tables list the second, `a\\nb` was taken for the first."""
    assert run_cli(fake_v1, "create", "-p", "batch/a\\nb").exit_code == 0
    shutil.copytree(fake_v1 / "batch" / "a\\nb", fake_v1 / "batch" / "a\nb")  # create refuses a newline
    limits = {name: (fake_v1 / "batch" / name / "memory.limit_in_bytes").read_text() for name in ("a\\nb", "a\nb")}
    refused = run_text(fake_v1, "limit", "batch/a\\nb", "100M")
    assert refused.returncode == 2, refused
    assert "names two groups" in refused.stderr and refused.stderr.count("\n") == 1
    assert {name: (fake_v1 / "batch" / name / "memory.limit_in_bytes").read_text() for name in limits} == limits
    # Each is still named by its own spelling: the backslash doubled, and the newline as listed.
    assert run_text(fake_v1, "limit", "batch/a\\\\nb", "100M").returncode == 0
    assert (fake_v1 / "batch" / "a\\nb" / "memory.limit_in_bytes").read_text().strip() == str(100 * 1024**2)
    assert (fake_v1 / "batch" / "a\nb" / "memory.limit_in_bytes").read_text() == limits["a\nb"]
