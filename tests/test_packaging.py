"""What a distribution gets from the wheel: the man page and the shell
completions under <prefix>/share, and a `memcgctl` that knows its version.

The wheel is built (as pip builds it, in an isolated build environment) from
a copy of the tree, then installed without its dependencies into a fresh
virtual environment that sees this interpreter's packages.  About 15 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT

SHARED = {
    "share/man/man1/memcgctl.1": "man/memcgctl.1",
    "share/bash-completion/completions/memcgctl": "completions/memcgctl.bash",
    "share/zsh/site-functions/_memcgctl": "completions/_memcgctl",
    "share/fish/vendor_completions.d/memcgctl.fish": "completions/memcgctl.fish",
}
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
TIMEOUT = 300


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    completed = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               timeout=TIMEOUT, **kwargs)
    assert completed.returncode == 0, f"{args}: {completed.stdout}{completed.stderr}"
    return completed


def project_version() -> str:
    return re.search(r'^version = "([^"]+)"', (PROJECT / "pyproject.toml").read_text(), re.MULTILINE)[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtual environment with the wheel built from this tree installed."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (PROJECT / name).exists():
            shutil.copy2(PROJECT / name, source / name)
    for name in ("memcgctl", "man", "completions", "examples"):
        shutil.copytree(PROJECT / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = base / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", wheels, source)
    [wheel] = wheels.glob("memcgctl-*.whl")
    environment = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", environment)
    # --ignore-installed: this interpreter's own (editable) memcgctl is visible
    # from the environment, and must not count as installed.
    run(sys.executable, "-m", "pip", "--python", environment / "bin" / "python", "install", "--quiet",
        "--no-deps", "--no-index", "--ignore-installed", wheel)
    return environment


def test_wheel_installs_man_page_and_completions_under_share(venv):
    for installed, source in SHARED.items():
        assert (venv / installed).is_file(), installed
        assert not (venv / installed).is_symlink()
        assert (venv / installed).read_text() == (PROJECT / source).read_text(), installed


def test_installed_memcgctl_is_the_wheel_and_knows_its_version(venv):
    python = venv / "bin" / "python"
    where = run(python, "-c", "import memcgctl; print(memcgctl.__file__)", cwd=venv).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    metadata = run(python, "-c", "from importlib.metadata import version; print(version('memcgctl'))",
                   cwd=venv).stdout.strip()
    assert metadata == project_version()
    printed = run(venv / "bin" / "memcgctl", "--version", cwd=venv).stdout
    assert printed == f"memcgctl {metadata}\n"


def test_wheel_carries_every_subpackage(venv):
    """Package discovery: each folder of memcgctl with an __init__.py is in
    the wheel, and every command loads from the installed copy."""
    packages = sorted(str(init.parent.relative_to(PROJECT)).replace("/", ".")
                      for init in (PROJECT / "memcgctl").rglob("__init__.py"))
    assert len(packages) > 1
    python = venv / "bin" / "python"
    script = ("import importlib, sys; from memcgctl.cli import cli; "
              "[importlib.import_module(name) for name in sys.argv[1:]]; "
              "[cli.get_command(None, name) for name in cli.list_commands(None)]; print('ok')")
    assert run(python, "-c", script, *packages, cwd=venv).stdout == "ok\n"
    for package in packages:
        assert (next(venv.glob("lib/python*/site-packages")) / package.replace(".", "/") / "__init__.py").is_file()


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed (apt-get install man-db)")
def test_man_finds_the_installed_page(venv):
    env = {**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80", "LC_ALL": "C.UTF-8",
           "MAN_KEEP_FORMATTING": ""}
    found = run("man", "-M", venv / "share" / "man", "-w", "memcgctl", env=env).stdout.strip()
    assert Path(found) == venv / "share" / "man" / "man1" / "memcgctl.1"
    page = run("man", "-M", venv / "share" / "man", "memcgctl", env=env).stdout
    text = re.sub(r".\x08", "", page)  # overstrikes, if the pager kept them
    assert re.search(r"memcgctl\s+-\s+manage\s+Linux\s+memory\s+cgroups", text), text[:400]
    assert "EXIT STATUS" in text
    assert text == re.sub(r".\x08", "", run("man", "-l", found, env=env).stdout)


@pytest.mark.skipif(not BASH_COMPLETION.is_file() or shutil.which("bash") is None,
                    reason="bash-completion is not installed (apt-get install bash-completion)")
def test_bash_completion_loads_the_installed_script_on_demand(venv, tmp_path):
    # bash-completion finds completions/<command> in each XDG_DATA_DIRS on first TAB.
    root = tmp_path / "cgroup"
    run(venv / "bin" / "memcgctl", "init-fake", root)
    run(venv / "bin" / "memcgctl", "--root", root, "create", "web", "batch")
    script = f"""
source {BASH_COMPLETION}
__load_completion memcgctl || exit 3
COMP_WORDS=(memcgctl stat we); COMP_CWORD=2; COMP_LINE="memcgctl stat we"; COMP_POINT=${{#COMP_LINE}}
spec=$(complete -p memcgctl); [[ $spec =~ -F\\ ([^ ]+) ]] || exit 4
"${{BASH_REMATCH[1]}}" memcgctl we stat
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEMCGCTL_")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", XDG_DATA_DIRS=str(venv / "share"),
               BASH_COMPLETION_USER_DIR=str(tmp_path / "none"), MEMCGCTL_ROOT=str(root),
               MEMCGCTL_JOURNAL_DIR=str(tmp_path / "journal"))
    assert run("bash", "--norc", "--noprofile", "-c", script, env=env).stdout == "web\n"
