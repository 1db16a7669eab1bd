"""The systemd units of `memcgctl units` pass `systemd-analyze verify` and
score at most 3.0 in `systemd-analyze security`, say what the daemon needs
(its journal kept across restarts, hardening that still lets it write cgroup
files, a restart on failure but not after a config error, a reload that checks
first), and `units --install` writes them for the memcgctl that runs it.

systemd looks up a bare ExecStart= name in its own fixed path (/usr/bin,
/usr/local/bin, ...), not in $PATH; so the units name memcgctl by its absolute
path, and man(1) finds the page of Documentation=man:memcgctl(1) through
MANPATH.  tests/test_units_vm.py starts them under a real systemd.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memcgctl.units import UNIT_NAMES, executable_warning, rendered_units

from conftest import PROJECT, run_cli

TEMPLATES = PROJECT / "memcgctl" / "units"
MEMCGCTL = Path(sys.executable).parent / "memcgctl"
SERVICES = [name for name in UNIT_NAMES if name.endswith(".service")]
MOST_EXPOSED = 3.0

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed (apt-get install systemd)")


def settings(name: str) -> dict[str, list[str]]:
    """{key: [values]} of a unit as `memcgctl units` makes it, sections merged."""
    [content] = [text for path, text in rendered_units(MEMCGCTL) if path.name == name]
    found: dict[str, list[str]] = {}
    for line in content.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(directory: Path, names: list[str], man_directory: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MANPATH": str(man_directory), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(["systemd-analyze", "verify", *names], cwd=directory, capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def verifiable_units(tmp_path) -> tuple[Path, Path]:
    """The units as `memcgctl units --install --dir` writes them for this
    environment's memcgctl, and a man directory holding memcgctl(1)."""
    assert MEMCGCTL.is_file(), MEMCGCTL
    units = tmp_path / "units"
    completed = subprocess.run([MEMCGCTL, "units", "--install", "--dir", units, "--config", tmp_path / "daemon.toml"],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr
    man = tmp_path / "man" / "man1"
    man.mkdir(parents=True)
    shutil.copy(PROJECT / "man" / "memcgctl.1", man)
    return units, man.parent


def test_the_units_are_all_there():
    templates = sorted(path.name for path in TEMPLATES.iterdir() if path.suffix in (".service", ".timer"))
    assert templates == sorted(UNIT_NAMES)


@needs_systemd_analyze
@pytest.mark.parametrize("name", UNIT_NAMES)
def test_systemd_analyze_verify_passes(verifiable_units, name):
    units, man = verifiable_units
    completed = verify(units, [name], man)
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


@needs_systemd_analyze
def test_systemd_analyze_verify_catches_a_broken_unit(verifiable_units):
    """The check above can fail: a misspelt option and a missing binary are reported."""
    units, man = verifiable_units
    broken = units / "memcgctl-recover.service"
    broken.write_text(broken.read_text().replace("RemainAfterExit=yes", "RemainAfterExits=yes")
                      .replace(str(MEMCGCTL), str(units / "no-such-memcgctl")))
    completed = verify(units, [broken.name], man)
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "RemainAfterExits" in output and "no-such-memcgctl" in output


def test_daemon_unit_keeps_its_journal_and_may_write_cgroup_files():
    daemon = settings("memcgctl-daemon.service")
    assert daemon["ExecStart"] == [f"{MEMCGCTL.resolve()} daemon --config /etc/memcgctl/daemon.toml"]
    # The file is checked before the SIGHUP: a broken one fails the reload.
    assert daemon["ExecReload"] == [f"{MEMCGCTL.resolve()} daemon --config /etc/memcgctl/daemon.toml --check",
                                    "kill -HUP $MAINPID"]
    assert daemon["Restart"] == ["on-failure"] and daemon["RestartPreventExitStatus"] == ["78"]
    assert daemon["RuntimeDirectory"] == ["memcgctl"] and daemon["RuntimeDirectoryPreserve"] == ["yes"]
    assert "MEMCGCTL_JOURNAL_DIR=/run/memcgctl" in daemon["Environment"]
    assert daemon["ProtectSystem"] == ["strict"] and daemon["ReadWritePaths"] == ["/sys/fs/cgroup"]
    assert daemon["NoNewPrivileges"] == ["yes"] and daemon["ProtectHome"] == ["read-only"]
    # Either would make /sys/fs/cgroup read-only for the daemon.
    assert "ProtectControlGroups" not in daemon and "ReadOnlyPaths" not in daemon


def test_recover_runs_once_at_boot_before_the_daemon():
    recover = settings("memcgctl-recover.service")
    assert recover["Type"] == ["oneshot"] and recover["ExecStart"] == [f"{MEMCGCTL.resolve()} recover"]
    assert recover["Before"] == ["memcgctl-daemon.service"] and recover["WantedBy"] == ["multi-user.target"]
    assert recover["ReadWritePaths"] == ["/sys/fs/cgroup"]


def test_shrink_timer_runs_the_shrink_of_its_instance():
    service, timer = settings("memcgctl-shrink@.service"), settings("memcgctl-shrink@.timer")
    assert service["ExecStart"] == [f"{MEMCGCTL.resolve()} shrink -v %I ${{MEMCGCTL_SHRINK_TARGET}} --timeout 60"]
    assert "MEMCGCTL_SHRINK_TARGET=80%" in service["Environment"]
    assert timer["OnUnitActiveSec"] == ["5min"] and timer["WantedBy"] == ["timers.target"]


def test_exporter_serves_loopback_only():
    exporter = settings("memcgctl-export.service")
    assert exporter["ExecStart"] == [f"{MEMCGCTL.resolve()} export --listen 127.0.0.1:9101 $MEMCGCTL_EXPORT_OPTIONS"]
    assert exporter["IPAddressAllow"] == ["localhost"] and exporter["IPAddressDeny"] == ["any"]
    assert exporter["CapabilityBoundingSet"] == [""] and exporter["ProtectControlGroups"] == ["yes"]


def systemd_argv(exec_start: str, environment: dict[str, str]) -> list[str]:
    """The words systemd runs for EXEC_START (systemd.service(5), "Command
    lines"): a word that is an unbraced $NAME becomes NAME's value split at
    white space, zero words when it is empty; ${NAME} would stay one word."""
    argv = []
    for word in shlex.split(exec_start):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):
            argv += environment.get(word[1:], "").split()
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: environment.get(m[1], ""), word))
    return argv


def test_the_exporters_selection_is_an_option_a_drop_in_sets(fake_v1):
    """MEMCGCTL_EXPORT_OPTIONS is empty by default (no word added: the unit
    exports every group), and the drop-in the unit's comment shows gives
    export --depth and --exclude, which it accepts."""
    exporter = settings("memcgctl-export.service")
    defaults = dict(value.partition("=")[::2] for value in exporter["Environment"])
    [exec_start] = exporter["ExecStart"]
    assert systemd_argv(exec_start, defaults)[1:] == ["export", "--listen", "127.0.0.1:9101"]
    [unit] = [text for path, text in rendered_units(MEMCGCTL) if path.name == "memcgctl-export.service"]
    [example] = re.findall(r'^#   Environment="MEMCGCTL_EXPORT_OPTIONS=(.*)"$', unit, re.MULTILINE)
    argv = systemd_argv(exec_start, {**defaults, "MEMCGCTL_EXPORT_OPTIONS": example})
    assert argv[1:] == ["export", "--listen", "127.0.0.1:9101", "--depth", "2", "--exclude", "user.slice*"]
    for group in ("system.slice/cron.service/deep", "user.slice/user-1000.slice", "web"):
        assert run_cli(fake_v1, "create", "-p", group).exit_code == 0
    scrape = run_cli(fake_v1, "export", *argv[4:])  # the options, on one scrape instead of --listen
    assert scrape.exit_code == 0, scrape.stderr
    groups = set(re.findall(r'^memcgctl_memory_usage_bytes\{group="([^"]*)"', scrape.stdout, re.MULTILINE))
    assert groups == {"system.slice", "system.slice/cron.service", "web"}


def exposure(units: Path, name: str) -> float:
    completed = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(units / name)],
                               capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                               env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_COLORS": "0"})
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", completed.stdout)
    assert found, completed.stdout[-2000:] + completed.stderr
    return float(found[1])


@needs_systemd_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_every_unit_is_sandboxed(verifiable_units, name):
    units, _ = verifiable_units
    assert exposure(units, name) <= MOST_EXPOSED


@needs_systemd_analyze
def test_the_exposure_check_can_fail(verifiable_units):
    """The sandboxing taken out, the score goes above the bar."""
    units, _ = verifiable_units
    unit = units / "memcgctl-recover.service"
    unit.write_text("\n".join(line for line in unit.read_text().splitlines()
                              if not line.startswith(("Protect", "Private", "CapabilityBoundingSet", "SystemCall"))))
    assert exposure(units, unit.name) > MOST_EXPOSED


def test_daemon_keeps_only_what_it_uses():
    daemon = settings("memcgctl-daemon.service")
    assert daemon["CapabilityBoundingSet"] == ["CAP_DAC_OVERRIDE"]  # no CAP_KILL, CAP_SYS_PTRACE
    assert daemon["SystemCallFilter"] == ["@system-service", "~@privileged"]
    assert daemon["LimitNOFILE"] == ["65536"] and daemon["ProtectProc"] == ["invisible"]
    assert daemon["PrivateDevices"] == ["yes"] and daemon["ProtectKernelTunables"] == ["yes"]


def test_the_exporter_may_keep_the_files_of_thousands_of_groups_open():
    """A scrape keeps each group's files open for the next (kernel/fs.py
    HeldFiles, at most half the soft limit): systemd's 1,024 would hold
    fewer than fifty groups."""
    assert settings("memcgctl-export.service")["LimitNOFILE"] == ["65536"]


def run_units(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([MEMCGCTL, "units", *map(str, args)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, **kwargs)


def checkout_warning() -> str:
    """What `units` says of this memcgctl: nothing, or (a checkout under
    /tmp, as a CI clone may be) that the sandboxed units cannot see it."""
    warning = executable_warning(MEMCGCTL.resolve())
    return "" if warning is None else f"memcgctl: warning: {warning}\n"


def test_units_prints_every_unit_for_this_memcgctl():
    completed = run_units()
    assert completed.returncode == 0 and completed.stderr == checkout_warning()
    headers = re.findall(r"^# (/etc/systemd/system/\S+)$", completed.stdout, re.MULTILINE)
    assert headers == [f"/etc/systemd/system/{name}" for name in UNIT_NAMES]
    assert f"ExecStart={MEMCGCTL.resolve()} daemon --config /etc/memcgctl/daemon.toml\n" in completed.stdout
    assert "@MEMCGCTL@" not in completed.stdout and "@LISTEN@" not in completed.stdout


def test_units_install_writes_units_and_example_and_says_what_next(tmp_path):
    units, config = tmp_path / "units", tmp_path / "etc" / "daemon.toml"
    dry = run_units("--install", "-n", "--dir", units, "--config", config)
    assert dry.returncode == 0 and f"# write {units}/memcgctl-daemon.service (new" in dry.stdout
    assert not units.exists() and not config.exists()  # a dry run writes nothing

    completed = run_units("--install", "--dir", units, "--config", config)
    assert completed.returncode == 0, completed.stderr
    assert sorted(path.name for path in units.iterdir()) == sorted(UNIT_NAMES)
    assert config.read_text() == (PROJECT / "examples" / "daemon.toml").read_text()
    daemon = (units / "memcgctl-daemon.service").read_text()
    assert f"ExecStart={MEMCGCTL.resolve()} daemon --config {config}\n" in daemon
    assert "next:\n  systemctl daemon-reload\n" in completed.stdout
    assert "systemctl enable --now memcgctl-recover.service memcgctl-daemon.service" in completed.stdout
    assert oct((units / "memcgctl-daemon.service").stat().st_mode & 0o777) == "0o644"


def test_units_install_keeps_an_existing_config_and_replaces_a_changed_unit(tmp_path):
    units, config = tmp_path / "units", tmp_path / "daemon.toml"
    units.mkdir()
    config.write_text("# mine\n")
    (units / "memcgctl-export.service").write_text("[Service]\nExecStart=/old/memcgctl export\n")
    completed = run_units("--install", "--dir", units, "--config", config, "--listen", "[::1]:9200")
    assert completed.returncode == 0, completed.stderr
    assert f"{config}: kept" in completed.stdout and f"{units}/memcgctl-export.service: replaced" in completed.stdout
    assert config.read_text() == "# mine\n"
    exporter = (units / "memcgctl-export.service").read_text()
    assert "export --listen [::1]:9200 $MEMCGCTL_EXPORT_OPTIONS\n" in exporter
    assert "IPAddressAllow=localhost\n" in exporter


def test_units_install_refuses_a_link_in_place_of_a_unit(tmp_path):
    units, target = tmp_path / "units", tmp_path / "elsewhere"
    units.mkdir()
    target.write_text("keep\n")
    (units / "memcgctl-daemon.service").symlink_to(target)
    completed = run_units("--install", "--dir", units, "--config", tmp_path / "daemon.toml")
    assert completed.returncode != 0 and completed.stdout == ""
    assert completed.stderr.splitlines()[-1].startswith("memcgctl: read unit: refused: a symbolic link")
    assert "Traceback" not in completed.stderr
    assert target.read_text() == "keep\n" and not (tmp_path / "daemon.toml").exists()


def test_units_refuses_a_bad_listen_address():
    completed = run_units("--listen", "9101")
    assert completed.returncode == 2 and "expected ADDR:PORT" in completed.stderr and completed.stdout == ""


@pytest.mark.parametrize("args", [[], ["-n", "--install"]], ids=["print", "-n --install"])
def test_units_refuses_an_empty_dir(tmp_path, args):
    """--dir "$UNITDIR" with UNITDIR unset: never the current directory.  The
    --install case is a dry run (were it taken, it writes nothing)."""
    completed = subprocess.run([MEMCGCTL, "units", *args, "--dir", "", "--config", str(tmp_path / "daemon.toml")],
                               capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr == ("memcgctl: units --dir: the directory is empty: name one (the default is "
                                "/etc/systemd/system)\n")
    assert list(tmp_path.iterdir()) == []


def test_units_refuses_a_relative_config_and_warns_of_one_the_sandbox_hides(tmp_path):
    """A relative --config was resolved against the current directory; one
    under /tmp is hidden from the service by PrivateTmp=yes."""
    units = tmp_path / "units"
    relative = subprocess.run([MEMCGCTL, "units", "--install", "--dir", units, "--config", "daemon.toml"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert (relative.returncode, relative.stdout) == (2, "")
    assert relative.stderr == ("memcgctl: units --config: 'daemon.toml' is not an absolute path: the unit needs "
                               "one\n")
    assert not units.exists() and not (tmp_path / "daemon.toml").exists()
    hidden = run_units("--install", "--dir", units, "--config", tmp_path / "daemon.toml")
    assert hidden.returncode == 0
    assert hidden.stderr.removeprefix(checkout_warning()).startswith(
        f"memcgctl: warning: {tmp_path / 'daemon.toml'} is under a directory the service does not see (PrivateTmp=yes")
