"""systemd units for memcgctl, made for the memcgctl that writes them.

The files beside this module are templates: @MEMCGCTL@ becomes the absolute
path of the running memcgctl (systemd looks a bare name up in its own fixed
path, where a venv's or pipx's memcgctl is not), @LISTEN@ the exporter's
address, @CONFIG@ the daemon's configuration file.  `memcgctl units` prints
them; `--install` computes a plan (what each file becomes, what is already
there) and carries it out.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from ..errors import UsageError

UNIT_NAMES = ("memcgctl-daemon.service", "memcgctl-recover.service", "memcgctl-shrink@.service",
              "memcgctl-shrink@.timer", "memcgctl-export.service")
UNIT_DIRECTORY = Path("/etc/systemd/system")
CONFIG_PATH = Path("/etc/memcgctl/daemon.toml")  # the default
EXAMPLE_CONFIG = "daemon.toml"  # examples/daemon.toml
DEFAULT_LISTEN = "127.0.0.1:9101"
# The units have PrivateTmp=yes: the service sees its own empty /tmp and /var/tmp.
PRIVATE_DIRECTORIES = (Path("/tmp"), Path("/var/tmp"))


def service_config_path(text: str) -> Path:
    """The daemon's configuration file as its unit names it: an absolute path
    (a relative one would be resolved against wherever `units` ran)."""
    path = Path(text)
    if not path.is_absolute():
        raise UsageError("units --config", f"'{text}' is not an absolute path: the unit needs one")
    return path


def hidden_from_the_service(path: Path) -> bool:
    """PATH is under /tmp or /var/tmp, which PrivateTmp=yes hides from the units."""
    return any(path.is_relative_to(private) for private in PRIVATE_DIRECTORIES)


def config_path_warning(path: Path) -> str | None:
    """Why the sandboxed daemon would not find PATH, if it would not: under
    /tmp or /var/tmp (legal where units are staged, surely not meant on the
    host that runs them)."""
    if hidden_from_the_service(path):
        return (f"{path} is under a directory the service does not see (PrivateTmp=yes gives it an empty /tmp "
                "and /var/tmp): the daemon will not find it there; /etc/memcgctl is the place")
    return None


def executable_warning(memcgctl: Path) -> str | None:
    """Why the units could not run MEMCGCTL, if they could not: a memcgctl
    (a venv, a checkout) under /tmp or /var/tmp is hidden from them."""
    if hidden_from_the_service(memcgctl):
        return (f"this memcgctl ({memcgctl}) is under a directory the services do not see (PrivateTmp=yes): "
                "they would fail to start (203/EXEC); install it elsewhere, as README's first command does")
    return None


class UnitFile(NamedTuple):
    """One file of the plan: where it goes, what it holds, and what is there
    now ("new", "changed", "unchanged"; for the config, "kept" when any is)."""

    path: Path
    content: str
    state: str

    def shell(self) -> str:
        """The dry run's line for this file."""
        if self.state in ("unchanged", "kept"):
            return f"# {self.path}: {self.state}"
        return f"# write {self.path} ({self.state}, {len(self.content.encode())} bytes)"


def memcgctl_executable() -> Path:
    """The memcgctl that runs now, by absolute path with links resolved: the
    venv's or pipx's entry point, or the system's."""
    candidates = [sys.argv[0], str(Path(sys.executable).parent / "memcgctl"), shutil.which("memcgctl")]
    for candidate in candidates:
        if candidate and Path(candidate).name == "memcgctl" and os.access(candidate, os.X_OK) \
                and Path(candidate).is_file():
            return Path(os.path.realpath(candidate))
    raise UsageError("units", "cannot tell where the memcgctl command is (run it as memcgctl, "
                              "not python -m memcgctl)")


def systemd_word(path: Path) -> str:
    """PATH as one word of an Exec*= line: % and $ doubled (specifiers and
    variables), quoted when it holds a space or a quote."""
    text = str(path)
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise UsageError("units", f"memcgctl's path holds a control character: {text!r}")
    text = text.replace("%", "%%").replace("$", "$$")
    if any(c in text for c in " \t\"'\\;"):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def is_loopback(listen: str) -> bool:
    """Whether ADDR:PORT listens on loopback only."""
    import ipaddress

    address = listen.rpartition(":")[0].removeprefix("[").removesuffix("]")
    try:
        return address == "localhost" or ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def render(name: str, memcgctl: Path, listen: str = DEFAULT_LISTEN, config: Path = CONFIG_PATH) -> str:
    """The unit NAME for MEMCGCTL; the exporter accepts scrapes from loopback
    only unless LISTEN is another address."""
    template = resources.files(__name__).joinpath(name).read_text()
    return (template.replace("@MEMCGCTL@", systemd_word(memcgctl)).replace("@LISTEN@", listen)
            .replace("@ALLOW@", "localhost" if is_loopback(listen) else "any")
            .replace("@CONFIG@", systemd_word(config)))


def rendered_units(memcgctl: Path, directory: Path = UNIT_DIRECTORY, listen: str = DEFAULT_LISTEN,
                   config: Path = CONFIG_PATH) -> list:
    """(path, content) of each unit, as it would be written in DIRECTORY."""
    return [(directory / name, render(name, memcgctl, listen, config)) for name in UNIT_NAMES]


def plan_install(memcgctl: Path, directory: Path, listen: str, config: Path, read_existing) -> list[UnitFile]:
    """What `units --install` writes: every unit (new, changed or unchanged),
    and the example config at CONFIG when there is none (an existing one is
    kept, whatever it holds).  READ_EXISTING(path) is the text there now, or
    None."""
    plan = []
    for path, content in rendered_units(memcgctl, directory, listen, config):
        existing = read_existing(path)
        state = "new" if existing is None else "unchanged" if existing == content else "changed"
        plan.append(UnitFile(path, content, state))
    example = resources.files(__name__).joinpath(EXAMPLE_CONFIG).read_text()
    plan.append(UnitFile(config, example, "new" if read_existing(config) is None else "kept"))
    return plan


def next_steps(listen: str, config: Path, example_installed: bool) -> list[str]:
    """What the sysadmin runs after the install, as shell lines with comments."""
    review = "  # an example: review its rules (batch/*, web, a, b, c)" if example_installed else ""
    return [
        "systemctl daemon-reload",
        f"memcgctl daemon --config {config} --check{review}",
        "systemctl enable --now memcgctl-recover.service memcgctl-daemon.service",
        f"systemctl enable --now memcgctl-export.service     # /metrics on {listen}",
        "systemctl enable --now memcgctl-shrink@GROUP.timer  # GROUP to 80% every 5 minutes (systemd-escape "
        "--template memcgctl-shrink@.timer GROUP)",
    ]
