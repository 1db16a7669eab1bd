"""memcgctl top in a REAL terminal: tmux runs it in a shell on a pseudo-
terminal, send-keys presses keys, capture-pane reads the screen, and
`stty -a` before and after proves the terminal was given back as it was.
On real v1 groups under kernel_root (this host; the VM has no terminal).

Each test uses a tmux server of its own (-L) and kills only that server.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import PROJECT, run_process

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")

MIB = 1024**2


class Terminal:
    """A shell in a tmux pane of WIDTH x HEIGHT on a tmux server of its own."""

    def __init__(self, directory, width: int = 140, height: int = 30):
        self.socket = f"memcgctl-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.directory = directory
        self.tmux("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), "-c", str(PROJECT),
                  "env PS1='$ ' bash --norc --noprofile")
        self.wait_for(lambda screen: screen.rstrip().endswith("$"))
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").strip()

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "top", "-l", line)
        self.tmux("send-keys", "-t", "top", "Enter")

    def press(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "top", *keys)

    def screen(self, styles: bool = False) -> str:
        """The text on the screen; with STYLES, with its colour and bold escapes."""
        return self.tmux("capture-pane", "-p", *(["-e"] if styles else []), "-t", "top")

    def wait_for(self, condition, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed what was expected:\n{screen}")
            time.sleep(0.05)

    def start_top(self, root, *args: str, then_report: bool = True) -> None:
        """`stty -a` to a file, memcgctl top ARGS, then (THEN_REPORT) its exit
        status and `stty -a` again (see report())."""
        top = shlex.join([sys.executable, "-m", "memcgctl", "--root", str(root), "top", *args])
        self.type(f"stty -a > {self.directory}/stty-before; {top}" + ("; " + self.REPORT if then_report else ""))
        self.wait_for(lambda screen: screen.startswith("memcgctl top - "))

    @property
    def REPORT(self) -> str:  # noqa: N802
        return f"echo EXIT=$?; stty -a > {self.directory}/stty-after"

    def exit_status(self) -> int:
        status = re.compile(r"^EXIT=(\d+)$", re.MULTILINE)
        screen = self.wait_for(lambda screen: status.search(screen) is not None)
        self.wait_for(lambda _: (self.directory / "stty-after").exists())
        time.sleep(0.1)  # stty has created the file; let it finish writing
        return int(status.search(screen).group(1))

    def terminal_restored(self, resized: bool = False) -> bool:
        """`stty -a` after equals before (but for the size, if RESIZED)."""
        before, after = ((self.directory / name).read_text() for name in ("stty-before", "stty-after"))
        if resized:  # stty also wraps its lines to the width
            before, after = (re.sub(r"rows \d+; columns \d+;", "", text).split() for text in (before, after))
        return before != "" and before == after

    def top_pid(self) -> int:
        shell = self.tmux("display-message", "-p", "-t", "top", "#{pane_pid}").strip()
        children = open(f"/proc/{shell}/task/{shell}/children").read().split()
        assert len(children) == 1, children
        return int(children[0])

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)  # a killed server leaves its socket behind


@pytest.fixture
def terminal(tmp_path):
    opened = Terminal(tmp_path)
    yield opened
    opened.close()


def row(screen: str, group: str) -> list[str] | None:
    """The cells of GROUP's row on SCREEN (flat view), or None."""
    for line in screen.splitlines():
        cells = line.split()
        if cells and cells[0] == group:
            return cells
    return None


def mebibytes(cell: str) -> float:
    """A compact size cell ('66M', '4.0K') in MiB."""
    return float(cell[:-1]) * 1024 ** "BKMG".index(cell[-1]) / MIB


def create(kernel_root, *groups: str) -> None:
    for group in groups:
        assert run_process(kernel_root.path, "create", group).returncode == 0


def test_page_cache_growth_shows_and_q_restores_the_terminal(kernel_root, terminal, tmp_path):
    create(kernel_root, "filling")
    terminal.start_top(kernel_root.path, "-d", "1")
    before = terminal.wait_for(lambda screen: row(screen, "filling") is not None)
    assert row(before, "filling")[1] in ("0B", "4.0K", "8.0K", "12K", "16K")
    kernel_root.fill_page_cache("filling", tmp_path / "cache", 64)
    # The first frame with all 64 MiB (a loaded machine may draw one frame
    # mid-fill first): the usage, the page cache and a positive change per
    # second, the fill's last part at least.
    grown = terminal.wait_for(lambda screen: mebibytes((row(screen, "filling") or ["", "0B"])[1]) >= 64)
    cells = row(grown, "filling")
    usage_in_kernel = int(kernel_root.read("filling", "memory.usage_in_bytes"))
    assert abs(mebibytes(cells[1]) * MIB - usage_in_kernel) < 1.5 * MIB, cells
    assert 64 <= mebibytes(cells[6]) < 70, cells  # FILE: the page cache dd wrote
    assert cells[4].startswith("+") and 0 < mebibytes(cells[4].lstrip("+")) < 200, cells  # CHANGE/s
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored()
    assert "Traceback" not in terminal.screen()


def test_a_sort_key_reorders_the_rows(kernel_root, terminal, tmp_path):
    create(kernel_root, "aaa", "zzz")
    kernel_root.fill_page_cache("zzz", tmp_path / "cache", 8)
    terminal.start_top(kernel_root.path, "-d", "5")

    def order(screen):
        return [line.split()[0] for line in screen.splitlines() if line.split()[:1] in (["aaa"], ["zzz"])]

    by_usage = terminal.wait_for(lambda screen: len(order(screen)) == 2)
    assert order(by_usage) == ["zzz", "aaa"] and "USAGEv" in by_usage
    terminal.press("n")
    by_name = terminal.wait_for(lambda screen: "GROUPv" in screen)
    assert order(by_name) == ["aaa", "zzz"]
    terminal.press("n")  # the same key again: reversed
    reversed_names = terminal.wait_for(lambda screen: "GROUP^" in screen)
    assert order(reversed_names) == ["zzz", "aaa"]
    assert "n=group" in reversed_names and "u=usage" in reversed_names  # the footer names the keys
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored()


def test_a_row_near_its_limit_stands_out(kernel_root, terminal, tmp_path):
    create(kernel_root, "full", "calm")
    assert run_process(kernel_root.path, "limit", "full", "20M").returncode == 0
    kernel_root.fill_page_cache("full", tmp_path / "cache", 64)  # page cache stays just under the limit
    kernel_root.fill_page_cache("calm", tmp_path / "calm", 8)
    terminal.start_top(kernel_root.path, "-d", "5")
    terminal.wait_for(lambda screen: row(screen, "full") is not None and row(screen, "calm") is not None)
    lines = {re.sub(r"\x1b\[[0-9;]*m", "", line).split()[0]: line
             for line in terminal.screen(styles=True).splitlines() if line.strip()}
    percent = float(row(terminal.screen(), "full")[3])
    usage = int(kernel_root.read("full", "memory.usage_in_bytes"))
    assert percent >= 90 and usage >= 0.9 * 20 * MIB
    assert lines["full"].startswith("\x1b[1m\x1b[31mfull ")  # bold red
    assert lines["calm"].startswith("calm ") and "\x1b[" not in lines["calm"]
    terminal.press("q")
    assert terminal.exit_status() == 0


def test_filter_tree_and_pause(kernel_root, terminal):
    create(kernel_root, "web", "web/one", "db")
    terminal.start_top(kernel_root.path, "-d", "0.5")
    terminal.wait_for(lambda screen: row(screen, "web/one") is not None)
    terminal.press("t")
    tree = terminal.wait_for(lambda screen: any(line.startswith("  one ") for line in screen.splitlines()))
    assert row(tree, "web") is not None and row(tree, "db") is not None
    terminal.press("/", "d", "b", "Enter")
    filtered = terminal.wait_for(lambda screen: "filter: db" in screen.splitlines()[0])
    assert row(filtered, "db") is not None and row(filtered, "web") is None and "1 of 3 groups" in filtered
    terminal.press("Space")
    paused = terminal.wait_for(lambda screen: "PAUSED" in screen)
    clock = paused.split(" - ")[1]
    time.sleep(1.2)  # two intervals: a running view would show a new time
    assert terminal.screen().split(" - ")[1] == clock
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored()


def test_a_group_removed_while_shown_disappears_without_an_error(kernel_root, terminal):
    create(kernel_root, "stay", "gone")
    terminal.start_top(kernel_root.path, "-d", "0.5")
    terminal.wait_for(lambda screen: row(screen, "gone") is not None and row(screen, "stay") is not None)
    (kernel_root.path / "gone").rmdir()
    after = terminal.wait_for(lambda screen: row(screen, "gone") is None)
    assert row(after, "stay") is not None and " - 1 group - " in after
    assert "memcgctl:" not in after
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored()
    assert not (kernel_root.path / "gone").exists()


@pytest.mark.parametrize(("how", "status"), [("ctrl-c", 130), ("sigterm", 143), ("sighup", 129)])
def test_stop_signals_restore_the_terminal(kernel_root, terminal, how, status):
    create(kernel_root, "web")
    terminal.start_top(kernel_root.path, "-d", "0.5")
    terminal.wait_for(lambda screen: row(screen, "web") is not None)
    if how == "ctrl-c":
        terminal.press("C-c")
    else:
        os.kill(terminal.top_pid(), signal.SIGTERM if how == "sigterm" else signal.SIGHUP)
    assert terminal.exit_status() == status
    assert terminal.terminal_restored()
    screen = terminal.screen()
    assert f"memcgctl: interrupted by {'SIGINT' if how == 'ctrl-c' else how.upper()}" in screen
    assert "Traceback" not in screen


def test_suspend_and_fg_give_the_terminal_back_and_take_it_again(kernel_root, terminal, tmp_path):
    create(kernel_root, "web")
    # Not `top; echo`: bash would go on with the list as soon as top stops.
    terminal.start_top(kernel_root.path, "-d", "0.5", then_report=False)
    terminal.wait_for(lambda screen: row(screen, "web") is not None)
    terminal.press("C-z")
    terminal.wait_for(lambda screen: "Stopped" in screen)
    terminal.type(f"stty -a > {tmp_path}/stty-suspended; echo SAVED")
    terminal.wait_for(lambda screen: "\nSAVED" in screen)
    assert (tmp_path / "stty-suspended").read_text() == (tmp_path / "stty-before").read_text()
    terminal.type("fg")
    terminal.wait_for(lambda screen: screen.startswith("memcgctl top - ") and row(screen, "web") is not None)
    terminal.press("t")  # keys work again: cbreak mode is back
    terminal.wait_for(lambda screen: "GROUP" in screen and row(screen, "web") is not None)
    terminal.press("q")
    terminal.wait_for(lambda screen: not screen.startswith("memcgctl top - "))
    terminal.type(terminal.REPORT)
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored()


def test_a_resized_window_is_redrawn_to_fit(kernel_root, terminal):
    create(kernel_root, *(f"g{index:02}" for index in range(15)))
    terminal.start_top(kernel_root.path, "-d", "30")  # no new frame: only the resize redraws
    terminal.wait_for(lambda screen: row(screen, "g14") is not None)
    terminal.tmux("resize-window", "-t", "top", "-x", "70", "-y", "10")
    small = terminal.wait_for(lambda screen: row(screen, "g14") is None and "q quit" in screen)
    lines = small.rstrip("\n").split("\n")
    assert len(lines) == 10 and lines[-1].startswith("q quit")
    assert sum(1 for line in lines if re.match(r"g\d\d ", line)) == 10 - 3  # title, header, footer
    assert lines[0].startswith("memcgctl top - ")
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored(resized=True)
    assert "rows 10; columns 70;" in (terminal.directory / "stty-after").read_text()


def test_a_closed_terminal_ends_top_with_129_and_one_line(kernel_root, terminal, tmp_path):
    """The window closes under top (tmux kills the pane: SIGHUP, then a dead
    terminal): top stops as for SIGHUP, no traceback.  The shell around it
    ignores SIGHUP so that it can write down what top did."""
    create(kernel_root, "web")
    top = shlex.join([sys.executable, "-m", "memcgctl", "--root", str(kernel_root.path), "top", "-d", "0.5"])
    terminal.type(f"bash -c 'trap \"\" HUP; {top} 2> {tmp_path}/stderr; echo $? > {tmp_path}/status'")
    terminal.wait_for(lambda screen: row(screen, "web") is not None)
    terminal.tmux("kill-pane", "-t", "top")
    deadline = time.monotonic() + 20
    while not (tmp_path / "status").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    assert (tmp_path / "status").read_text().strip() == "129"
    assert (tmp_path / "stderr").read_text() == "memcgctl: interrupted by SIGHUP\n"


def test_a_hostile_name_is_shown_escaped_and_sets_no_title_or_colour(fake_v1, terminal):
    """A name holding an OSC title, an SGR colour, BEL and the C1 CSI (U+009B)
    is shown spelled out (escape.printable), live and with -b, and the
    terminal's title and colours stay as they were."""
    name = "job\x1b]0;owned\x07\x1b[31m\u009b2Jred"
    assert run_process(fake_v1, "create", name).returncode == 0
    title_before = terminal.tmux("display-message", "-p", "-t", "top", "#{pane_title}")
    shown = "job\\x1b]0;owned\\x07\\x1b[31m\\u009b2Jred"
    terminal.start_top(fake_v1, "-d", "0.5")
    screen = terminal.wait_for(lambda screen: shown in screen)
    styled = terminal.screen(styles=True)
    line = next(line for line in styled.splitlines() if "owned" in line)
    assert "\x1b[31m" not in line  # no colour from the name
    assert terminal.tmux("display-message", "-p", "-t", "top", "#{pane_title}") == title_before
    assert "Traceback" not in screen
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored()
    batch = shlex.join([sys.executable, "-m", "memcgctl", "--root", str(fake_v1), "top", "-b", "-n", "1"])
    terminal.type(f"clear; {batch}; echo BATCH=$?")
    screen = terminal.wait_for(lambda screen: re.search(r"^BATCH=\d+$", screen, re.MULTILINE) is not None)
    assert re.search(r"^BATCH=0$", screen, re.MULTILINE) and shown in screen
    assert terminal.tmux("display-message", "-p", "-t", "top", "#{pane_title}") == title_before


def title_and_groups(screen: str) -> tuple[str, list[str]]:
    lines = screen.splitlines()
    return lines[0], [line.split()[0] for line in lines[2:] if re.match(r"g\d\d ", line)]


def test_scrolling_a_small_terminal_and_its_narrow_columns(kernel_root, terminal):
    """11 groups in 60x8: 5 rows fit; the keys scroll and the title says which
    rows show; the least important columns are left out, not cut."""
    names = [f"g{index:02}" for index in range(11)]
    create(kernel_root, *names)
    terminal.tmux("resize-window", "-t", "top", "-x", "60", "-y", "8")
    terminal.start_top(kernel_root.path, "-d", "30")
    terminal.press("n")  # by name
    first = terminal.wait_for(lambda screen: "GROUPv" in screen)
    title, shown = title_and_groups(first)
    assert "rows 1-5 of 11 groups" in title and shown == names[:5]
    lines = first.rstrip("\n").split("\n")
    assert len(lines) == 8 and all(len(line) <= 60 for line in lines)
    header = lines[1].split()
    assert header[:4] == ["GROUPv", "USAGE", "LIMIT", "%LIM"] and "FAIL/OOM" in header
    assert "SWAP" not in header and "REFLT/s" not in header  # dropped whole, not cut at the right
    assert not any(line.endswith(("SWA", "REFL")) for line in lines)
    for keys, rows, expected in [(["Down"], "2-6", names[1:6]), (["NPage"], "7-11", names[6:]),
                                 (["Up"], "6-10", names[5:10]), (["Home"], "1-5", names[:5]),
                                 (["End"], "7-11", names[6:]), (["PPage"], "2-6", names[1:6]),
                                 (["Down", "Down", "Down", "Down", "Down", "Down"], "7-11", names[6:])]:
        terminal.press(*keys)
        screen = terminal.wait_for(lambda screen, rows=rows: f"rows {rows} of 11 groups" in screen.splitlines()[0])
        assert title_and_groups(screen)[1] == expected, (keys, screen)
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored(resized=True)


def test_help_screen_and_the_delay_keys(kernel_root, terminal):
    create(kernel_root, "web")
    terminal.start_top(kernel_root.path, "-d", "30")
    terminal.wait_for(lambda screen: row(screen, "web") is not None)
    terminal.press("h")
    help_screen = terminal.wait_for(lambda screen: "Keys of memcgctl top" in screen)
    assert "PgUp PgDn" in help_screen and "d               delay" in help_screen and row(help_screen, "web") is None
    terminal.press("x")  # any key returns
    terminal.wait_for(lambda screen: row(screen, "web") is not None)
    terminal.press("?")
    terminal.wait_for(lambda screen: "Keys of memcgctl top" in screen)
    terminal.press("Escape")
    terminal.wait_for(lambda screen: row(screen, "web") is not None)
    clock = terminal.screen().split(" - ")[1]
    terminal.press("d")
    terminal.wait_for(lambda screen: "delay in seconds: _" in screen)
    terminal.press("0", ".", "5", "Enter")
    # Frames every half second now, not every 30 s: the clock moves.
    moved = terminal.wait_for(lambda screen: "every 0.5 s" in screen and screen.split(" - ")[1] != clock, 5)
    assert row(moved, "web") is not None
    terminal.press("+")
    terminal.wait_for(lambda screen: "every 1 s" in screen.splitlines()[0])
    terminal.press("d", "a", "b", "c", "Enter")
    refused = terminal.wait_for(lambda screen: "not changed" in screen)
    assert "delay 'abc' not changed: give seconds from 0.1 to 86400" in refused and "every 1 s" in refused
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored()


def test_an_oom_kill_before_top_started_stands_out_with_its_total(kernel_root, terminal):
    """A group whose process was OOM-killed before top started shows the
    kill (a total, not 0) and stands out; a kill while top runs shows as new."""
    create(kernel_root, "tight", "calm")
    assert run_process(kernel_root.path, "limit", "tight", "20M").returncode == 0

    def oom_kill() -> None:
        killed = kernel_root.start("tight", sys.executable, "-c", "bytearray(200 * 1024 * 1024)")
        assert killed.wait(timeout=60) == -signal.SIGKILL

    oom_kill()
    terminal.start_top(kernel_root.path, "-d", "0.5")
    screen = terminal.wait_for(lambda screen: row(screen, "tight") is not None and row(screen, "calm") is not None)
    header = screen.splitlines()[1].split()
    events = header.index("FAIL/OOM")
    failures, kills = row(screen, "tight")[events].split("/")
    assert kills == "1" == kernel_root.read("tight", "memory.oom_control").split()[-1]
    assert int(failures) == int(kernel_root.read("tight", "memory.failcnt")) > 0
    assert row(screen, "calm")[events] == "0/0"
    styled = {re.sub(r"\x1b\[[0-9;]*m", "", line).split()[0]: line
              for line in terminal.screen(styles=True).splitlines() if line.strip()}
    assert styled["tight"].startswith("\x1b[1m\x1b[31mtight ")  # bold red
    assert styled["calm"].startswith("calm ") and "\x1b[" not in styled["calm"]
    oom_kill()
    again = terminal.wait_for(lambda screen: row(screen, "tight")[events].endswith("/2(+1)"))
    failures = row(again, "tight")[events].split("/")[0]
    assert re.fullmatch(r"\d+\(\+\d+\)", failures), failures  # the failures while top ran, as new
    terminal.press("q")
    assert terminal.exit_status() == 0
    assert terminal.terminal_restored()


def test_the_live_screen_shows_a_running_daemons_working_set(fake_v2, journal_directory, terminal):
    """While a daemon runs a pressure rule on a group, its estimate and age
    show in the WSET/AGE column of the live screen, read again each frame."""
    from memcgctl.daemon.counters import counters_file_name

    assert run_process(fake_v2, "create", "web").returncode == 0
    (fake_v2 / "web" / "memory.current").write_text(f"{300 * MIB}\n")

    def counters(size: int, age: float) -> None:
        row = {"group": "web", "policy": "pressure", "reclaimed_bytes": 0, "actions": 0, "backoffs": 0, "errors": 0,
               "working_set_bytes": size, "working_set_updated": time.time() - age}
        document = {"pid": os.getpid(), "started": time.time(), "root": str(fake_v2),  # this process: the daemon
                    "root_device": fake_v2.stat().st_dev, "root_inode": fake_v2.stat().st_ino, "rows": [row]}
        temporary = journal_directory / "counters.tmp"
        temporary.write_text(json.dumps(document))
        temporary.rename(journal_directory / counters_file_name(fake_v2))

    counters(250 * MIB, 30)
    terminal.start_top(fake_v2, "-d", "0.2")
    screen = terminal.wait_for(lambda screen: "WSET/AGE" in screen and row(screen, "web") is not None)
    assert row(screen, "web")[-1] in ("250M/30s", "250M/31s"), screen
    counters(180 * MIB, 0)  # the daemon changed its estimate
    terminal.wait_for(lambda screen: (row(screen, "web") or [""])[-1].startswith("180M/"))
    terminal.press("q")
    assert terminal.exit_status() == 0 and terminal.terminal_restored()
