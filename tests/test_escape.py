"""One escape: every name shown to a person or written to a log is spelled by
escape.printable(), the same in every output; JSON and Prometheus text stay
valid UTF-8; CSV rows stay rows.

The hostile name holds what a group name may hold on a fake tree: ESC with
an OSC title and a colour, BEL, the C1 CSI (U+009B), DEL, CR, a newline and
a byte that is not UTF-8.  Each output is read as BYTES from a process of
its own, as a terminal or a log would receive it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from memcgctl.escape import printable, shell_quote, valid_utf8

from conftest import run_cli

# b"\xc2\x9b" is U+009B (a C1 control, CSI to a terminal); b"\xff" is not UTF-8.
HOSTILE_BYTES = b"job\x1b]0;owned\x07\x1b[31m\xc2\x9b2J\x7f\r\nmemcgctl daemon: forged\xff"
HOSTILE = os.fsdecode(HOSTILE_BYTES)
SHOWN = "job\\x1b]0;owned\\x07\\x1b[31m\\u009b2J\\x7f\\r\\nmemcgctl daemon: forged\\xff"
# The same without the newline, which no command accepts in a name it is
# given (the kernel refuses it in mkdir too).
NAMED = HOSTILE.replace("\n", " ")
NAMED_SHOWN = SHOWN.replace("\\n", " ")


def raw_controls(text: str) -> list[str]:
    """The C0 (but newline), DEL and C1 characters and lone surrogates in TEXT."""
    return [character for character in text if (ord(character) < 0x20 and character != "\n")
            or 0x7F <= ord(character) <= 0x9F or 0xD800 <= ord(character) <= 0xDFFF]


def run_bytes(root, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memcgctl", "--root", str(root), *args], capture_output=True,
                          timeout=120, env=env)


def decoded(data: bytes) -> str:
    """DATA as UTF-8, strictly: an output that is not valid UTF-8 fails here."""
    return data.decode("utf-8")


@pytest.fixture
def hostile_tree(fake_v1):
    """A fake v1 root with batch/ok, batch/NAMED and batch/HOSTILE (made as
    batch/x, then renamed: the command line refuses a newline in a name)."""
    for name in ("batch/ok", "batch/x", f"batch/{NAMED}"):
        assert run_cli(fake_v1, "create", "-p", name).exit_code == 0
    os.rename(os.fsencode(fake_v1 / "batch" / "x"), os.fsencode(fake_v1 / "batch") + b"/" + HOSTILE_BYTES)
    (fake_v1 / "batch" / HOSTILE / "memory.usage_in_bytes").write_text(f"{300 * 1024**2}\n")
    return fake_v1


# --- the function ----------------------------------------------------------------


def test_printable_spells_each_unsafe_character_and_only_those():
    assert printable(HOSTILE) == SHOWN
    assert printable("system-systemd\\x2dfsck.slice") == "system-systemd\\\\x2dfsck.slice"  # backslash doubled
    assert printable("caf\u00e9 \u65e5\u672c") == "caf\u00e9 \u65e5\u672c"
    assert printable("a\u202eb\u2028c") == "a\\u202eb\\u2028c"  # bidi override, line separator
    assert printable("\x00\t\x1f") == "\\x00\\t\\x1f"


def test_printable_is_one_to_one_and_escapes_part_by_part():
    # The four characters \x1b and the ESC byte; a backslash then "n" and a newline.
    assert printable("a\\x1b") == "a\\\\x1b" != printable("a\x1b") == "a\\x1b"
    assert printable("a\\n") != printable("a\n")
    line = f"{HOSTILE}: watched by group 1; {HOSTILE}"
    assert printable(line) == f"{SHOWN}: watched by group 1; {SHOWN}"


def test_valid_utf8_keeps_controls_for_the_format_and_spells_bytes():
    assert valid_utf8(HOSTILE) == HOSTILE[:-1] + "\\xff"
    valid_utf8(HOSTILE).encode("utf-8")  # no lone surrogate left


def test_a_shell_word_is_read_back_by_bash_as_the_very_bytes():
    echoed = subprocess.run(["bash", "-c", f"printf %s {shell_quote(HOSTILE)}"], capture_output=True, check=True,
                            env={"LC_ALL": "C", "PATH": os.environ["PATH"]}).stdout
    assert echoed == HOSTILE_BYTES


# --- every output for a person ------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("stat",), ("stat", "-r", "batch"), ("tree",), ("stat", "--fields", "group,usage"),
    ("top", "-b", "-n", "1"),
], ids=["stat", "stat -r", "tree", "stat --fields", "top -b"])
def test_tables_spell_the_name_escaped(hostile_tree, args):
    result = run_bytes(hostile_tree, *args)
    assert result.returncode == 0, result.stderr
    text = decoded(result.stdout)
    assert raw_controls(text) == []
    assert SHOWN in text and NAMED_SHOWN in text
    # One line per group: the newline in the name did not split its row.
    lines = [line for line in text.splitlines() if "forged" in line]
    assert len(lines) == 2 and all("job\\x1b" in line for line in lines)
    assert (hostile_tree / "batch" / HOSTILE).is_dir()


def test_detail_spells_the_name_in_its_title(hostile_tree):
    result = run_bytes(hostile_tree, "stat", f"batch/{NAMED}", "--detail")
    assert result.returncode == 0, result.stderr
    text = decoded(result.stdout)
    assert raw_controls(text) == []
    assert text.splitlines()[0].startswith(f"batch/{NAMED_SHOWN}  (cgroup v1, ")
    assert (hostile_tree / "batch" / HOSTILE).is_dir()


def test_csv_rows_stay_rows_and_quote_commas_and_quotes(hostile_tree):
    os.rename(hostile_tree / "batch" / "ok", hostile_tree / "batch" / 'o,k"')
    result = run_bytes(hostile_tree, "stat", "--csv", "-r", "batch")
    assert result.returncode == 0, result.stderr
    text = decoded(result.stdout)
    assert raw_controls(text) == []
    assert text.count("\n") == 5  # the header, batch, and its three groups
    rows = list(csv.reader(io.StringIO(text)))
    assert [row[0] for row in rows[1:]] == ["batch", f"batch/{SHOWN}", f"batch/{NAMED_SHOWN}", 'batch/o,k"']
    assert '"batch/o,k"""' in text  # quoted, the quote doubled


def test_json_is_valid_utf8_and_spells_the_byte(hostile_tree):
    for args in (("stat", "--json", "-r", "batch"), ("top", "--json", "-n", "1")):
        result = run_bytes(hostile_tree, *args)
        assert result.returncode == 0, result.stderr
        text = decoded(result.stdout)
        assert "\\udc" not in text, args  # no lone surrogate, even escaped
        document = json.loads(text.splitlines()[0] if args[0] == "top" else text)
        groups = document["groups"] if args[0] == "top" else document
        names = [each["group"] for each in groups]
        # The name as it is, its controls left to JSON's own escapes, the byte as \xff.
        assert f"batch/{valid_utf8(HOSTILE)}" in names, (args, names)


def test_export_to_stdout_is_valid_utf8_and_has_every_group(hostile_tree):
    result = run_bytes(hostile_tree, "export")
    assert result.returncode == 0, result.stderr
    text = decoded(result.stdout)
    assert raw_controls(text) == []
    # The exposition format escapes backslash and newline in a label value.
    label = SHOWN.replace("\\", "\\\\")
    assert f'memcgctl_memory_usage_bytes{{group="batch/{label}"}} 3.145728e+08' in text
    assert 'memcgctl_memory_usage_bytes{group="batch/ok"}' in text
    assert "memcgctl_scrape_errors 0.0" in text


def test_export_textfile_is_written_with_a_name_that_is_not_utf8(hostile_tree, tmp_path):
    target = tmp_path / "memcgctl.prom"
    result = run_bytes(hostile_tree, "export", "--textfile", str(target))
    assert result.returncode == 0, result.stderr
    assert 'group="batch/ok"' in target.read_text(encoding="utf-8")
    assert "forged\\\\xff" in target.read_text(encoding="utf-8")


def test_daemon_check_and_log_spell_the_name_and_no_line_is_forged(hostile_tree, tmp_path):
    config = tmp_path / "daemon.toml"
    config.write_text('[[group]]\nmatch = "batch/*"\npolicy = "watermark"\nhigh = "200M"\nlow = "100M"\n')
    check = run_bytes(hostile_tree, "daemon", "--config", str(config), "--check")
    assert check.returncode == 0, check.stderr
    assert raw_controls(decoded(check.stdout)) == [] and SHOWN in decoded(check.stdout)
    assert decoded(check.stdout).count("\n") == 1
    once = run_bytes(hostile_tree, "-n", "-v", "daemon", "--config", str(config), "--once")
    assert once.returncode == 0, once.stderr
    log = decoded(once.stderr)
    assert raw_controls(log) == []
    lines = log.splitlines()
    assert all(line.startswith("memcgctl daemon: ") for line in lines), lines
    # The name's own "memcgctl daemon: forged" stays inside the line that names it.
    assert not any(line.startswith("memcgctl daemon: forged") for line in lines)
    assert any(line.startswith(f"memcgctl daemon: batch/{SHOWN}: watermark: ") and "would run" in line
               for line in lines), lines
    assert (hostile_tree / "batch" / HOSTILE / "memory.limit_in_bytes").read_text().strip() != str(100 * 1024**2)


def test_an_error_naming_the_group_is_spelled_the_same(hostile_tree):
    for args in (("stat", f"batch/{NAMED}/missing"), ("create", f"batch/{NAMED}"),
                 ("stat", f"batch/{HOSTILE}")):
        result = run_bytes(hostile_tree, *args)
        assert result.returncode in (2, 66, 73), result
        message = decoded(result.stderr)
        assert message.startswith("memcgctl: ") and message.count("\n") == 1, message
        assert raw_controls(message) == [], message
        assert (SHOWN if "\n" in args[1] else NAMED_SHOWN) in message, message


def test_a_usage_error_quoting_an_argument_is_escaped(fake_v1):
    result = run_bytes(fake_v1, "top", "-d", "1\x1b[31m")
    assert result.returncode == 2
    message = decoded(result.stderr)
    assert raw_controls(message) == [] and "1\\x1b[31m" in message


def test_export_listen_answers_200_with_a_name_that_is_not_utf8(hostile_tree):
    from test_export import free_port, http_get, start_exporter, stop, wait_for

    port = free_port()
    exporter = start_exporter(hostile_tree, port)
    try:
        text = wait_for(lambda: http_get(f"http://127.0.0.1:{port}/metrics"), 30, "the exporter")
    finally:
        status = stop(exporter)
    assert status == 0
    assert 'memcgctl_memory_usage_bytes{group="batch/ok"}' in text and "forged\\\\xff" in text
    assert raw_controls(text) == []


def test_promtool_accepts_the_exposition_of_hostile_names(hostile_tree):
    import shutil

    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    exposition = run_bytes(hostile_tree, "export")
    assert exposition.returncode == 0
    checked = subprocess.run(["promtool", "check", "metrics"], input=exposition.stdout, capture_output=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stderr
