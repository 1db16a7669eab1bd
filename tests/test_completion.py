"""Shell completion as the shells run it.

The scripts shipped in completions/ must be what `memcgctl completion SHELL`
prints (regenerate them with completions/generate.sh).  Then real bash, zsh
and fish, each with the shipped script, complete group names on fake roots
(honouring --root on the line being typed and MEMCGCTL_ROOT) and process ids.
Each shell's tests skip when it is not installed (Debian: bash, zsh, fish).

Completion runs `memcgctl` from PATH; a wrapper in a temporary directory makes
that this tree's code, run by this interpreter.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from memcgctl.kernel.discovery import build_fake_root

from conftest import PROJECT, run_cli

COMPLETIONS = PROJECT / "completions"
SCRIPTS = {"bash": "memcgctl.bash", "zsh": "_memcgctl", "fish": "memcgctl.fish"}
TIMEOUT = 30


def needs(shell: str):
    return pytest.mark.skipif(shutil.which(shell) is None, reason=f"{shell} is not installed (apt-get install {shell})")


# --- the shipped files -----------------------------------------------------------


@pytest.mark.parametrize("shell", SCRIPTS)
def test_shipped_script_is_what_the_command_prints(shell):
    printed = subprocess.run([sys.executable, "-m", "memcgctl", "completion", shell], cwd=PROJECT, check=True,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT).stdout
    shipped = (COMPLETIONS / SCRIPTS[shell]).read_text()
    # The scripts are click's, so a click upgrade can change them too.
    assert shipped == printed, (f"completions/{SCRIPTS[shell]} differs from `memcgctl completion {shell}` "
                                f"(click {version('click')}): run completions/generate.sh")


def test_bash_script_is_also_there_under_the_command_name():
    # pyproject.toml installs it from there as share/bash-completion/completions/memcgctl.
    assert os.readlink(COMPLETIONS / "memcgctl") == SCRIPTS["bash"]


def test_generate_script_writes_exactly_the_shipped_files(tmp_path):
    copy = tmp_path / "completions"
    shutil.copytree(COMPLETIONS, copy, symlinks=True)
    for name in [*SCRIPTS.values(), "memcgctl"]:
        (copy / name).unlink()
    # The script runs `python -m memcgctl` from the directory above its own.
    os.symlink(PROJECT / "memcgctl", tmp_path / "memcgctl")
    subprocess.run(["sh", str(copy / "generate.sh")], env={**os.environ, "PYTHON": sys.executable},
                   stdin=subprocess.DEVNULL, check=True, timeout=TIMEOUT)
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in COMPLETIONS.iterdir())
    for name in SCRIPTS.values():
        assert (copy / name).read_text() == (COMPLETIONS / name).read_text()
    assert os.readlink(copy / "memcgctl") == SCRIPTS["bash"]


# --- a fake world to complete in ----------------------------------------------------


class World:
    """Two fake roots, a `memcgctl` on PATH, and the environment for a shell."""

    def __init__(self, tmp_path: Path):
        # TREE: web, batch, batch/job1.  OTHER (what MEMCGCTL_ROOT names when a
        # test gives --root TREE on the line): backup, bulk, which also start with b.
        self.tree = tmp_path / "tree"
        self.other = tmp_path / "other"
        build_fake_root(self.tree, 2)
        build_fake_root(self.other, 1)
        for root, groups in ((self.tree, ["web", "batch", "batch/job1"]), (self.other, ["backup", "bulk"])):
            for group in groups:
                assert run_cli(root, "create", group).exit_code == 0
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "memcgctl"
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={shlex.quote(str(PROJECT))}${{PYTHONPATH:+:$PYTHONPATH}} '
                           f'exec {shlex.quote(sys.executable)} -m memcgctl "$@"\n')
        wrapper.chmod(0o755)
        home = tmp_path / "home"
        home.mkdir()
        self.env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(("MEMCGCTL_", "_MEMCGCTL"))},
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            # Completion must never fall back to this host's real hierarchy,
            # nor keep locks in the real journal directory.
            "MEMCGCTL_ROOT": str(self.tree),
            "MEMCGCTL_JOURNAL_DIR": str(tmp_path / "journal"),
            "INPUTRC": "/dev/null",
            "HISTFILE": "/dev/null",
            "TERM": "dumb",
            "LC_ALL": "C.UTF-8",
        }

    def with_root(self, root: Path) -> dict:
        return {**self.env, "MEMCGCTL_ROOT": str(root)}


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


@pytest.fixture
def sleeper():
    """A process of ours, to complete its id."""
    process = subprocess.Popen(["sleep", "120"])
    yield process.pid
    process.kill()
    process.wait()


# The completions expected, as (words typed, root named by MEMCGCTL_ROOT, offered).
# "other" as MEMCGCTL_ROOT with --root TREE on the line: the line must win.
GROUP_CASES = {
    "prefix": (["stat", "we"], "tree", ["web"]),
    "all-top-level": (["stat", ""], "tree", ["batch", "web"]),
    "children": (["stat", "batch/"], "tree", ["batch/job1"]),
    "env-root": (["stat", "b"], "other", ["backup", "bulk"]),
    "root-before-command": (["--root", "{tree}", "stat", "b"], "other", ["batch"]),
    "root-after-command": (["stat", "--root", "{tree}", "b"], "other", ["batch"]),
    "first-argument": (["limit", "we"], "tree", ["web"]),
    "attach-group": (["attach", "ba"], "tree", ["batch"]),
    "leading-slash": (["tree", "/b"], "tree", ["/batch"]),
}


def typed_words(world: World, words: list[str]) -> list[str]:
    return [word.format(tree=world.tree) for word in words]


# --- bash: the COMP_WORDS protocol, run by bash itself --------------------------


def bash_complete(words: list[str], env: dict) -> list[str]:
    """COMPREPLY of the function that `complete -p memcgctl` names, called as
    bash's programmable completion calls it, for the command line WORDS."""
    script = f"""
source {shlex.quote(str(COMPLETIONS / SCRIPTS["bash"]))}
spec=$(complete -p memcgctl) || exit 3
[[ $spec =~ -F\\ ([^ ]+) ]] || exit 4
function=${{BASH_REMATCH[1]}}
COMP_WORDS=(memcgctl {" ".join(shlex.quote(word) for word in words)})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
"$function" memcgctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    completed = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=env,
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    return [line for line in completed.stdout.splitlines() if line]


@needs("bash")
def test_bash_registers_a_completion_function():
    completed = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                                f"source {shlex.quote(str(COMPLETIONS / SCRIPTS['bash']))}; complete -p memcgctl"],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    assert re.fullmatch(r"complete .*-F \S+ memcgctl\n", completed.stdout)


@needs("bash")
@pytest.mark.parametrize("case", GROUP_CASES)
def test_bash_completes_group_names(world, case):
    words, root, expected = GROUP_CASES[case]
    env = world.with_root(getattr(world, root))
    assert bash_complete(typed_words(world, words), env) == expected


@needs("bash")
def test_bash_completes_nothing_for_a_missing_root(world, tmp_path):
    assert bash_complete(["stat", ""], world.with_root(tmp_path / "nowhere")) == []


@needs("bash")
def test_bash_completes_process_ids(world, sleeper):
    prefix = str(sleeper)[:-1]
    offered = bash_complete(["attach", "web", prefix], world.env)
    assert str(sleeper) in offered
    assert all(pid.isdigit() and pid.startswith(prefix) for pid in offered), offered
    # A second PID argument completes the same way.
    assert str(sleeper) in bash_complete(["attach", "web", "1", str(sleeper)], world.env)


@needs("bash")
def test_bash_completes_commands_and_options(world):
    assert bash_complete(["sh"], world.env) == ["shrink"]
    assert bash_complete(["stat", "--js"], world.env) == ["--json"]


# --- interactive shells: TAB typed at a prompt ----------------------------------------

# After TAB, Ctrl-A goes to the start of the line and makes it an echo whose
# output starts with M42M, which the typed text itself does not contain.
MARK_LINE = "\x01echo M$((40+2))M \r"
MARKED = re.compile(r"M42M (.*?)\r?\n")


def interactive(command: list[str], env: dict, setup: str):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(command[0], command[1:], env=env, encoding="utf-8", timeout=TIMEOUT,
                          dimensions=(40, 500))
    child.sendline(setup + "; echo SETUP$((1+1))")
    child.expect("SETUP2\r?\n")
    return child


def line_after_tab(child, typed: str) -> str:
    """What the command line reads after typing TYPED and a TAB."""
    child.send(typed + "\t")
    child.send(MARK_LINE)
    child.expect(MARKED)
    return child.match.group(1).rstrip()


def bash_session(env: dict):
    script = shlex.quote(str(COMPLETIONS / SCRIPTS["bash"]))
    return interactive(["bash", "--norc", "--noprofile", "-i"], env, f"PS1='$ '; source {script}")


ZSH_SETUPS = {
    # As installed: the file in a directory of $fpath, found by compinit.
    "fpath": f"fpath=({shlex.quote(str(COMPLETIONS))} $fpath); autoload -U compinit; compinit -u -D",
    # As `eval "$(memcgctl completion zsh)"` does it.
    "source": f"autoload -U compinit; compinit -u -D; source {shlex.quote(str(COMPLETIONS / SCRIPTS['zsh']))}",
}


def zsh_session(env: dict, setup: str):
    return interactive(["zsh", "-f", "-i"], env, f"PS1='$ '; bindkey -e; {setup}")


INTERACTIVE_CASES = ["prefix", "children", "root-before-command", "root-after-command", "env-root-unique"]


def interactive_case(world: World, case: str) -> tuple[str, dict, str]:
    """(typed, environment, line expected after TAB): single candidates only,
    which both shells insert."""
    if case == "env-root-unique":
        return "memcgctl stat bu", world.with_root(world.other), "memcgctl stat bulk"
    words, root, [expected] = GROUP_CASES[case]
    words = typed_words(world, words)
    typed = " ".join(["memcgctl", *words])
    return typed, world.with_root(getattr(world, root)), " ".join(["memcgctl", *words[:-1], expected])


@needs("bash")
@pytest.mark.parametrize("case", INTERACTIVE_CASES)
def test_bash_tab_at_the_prompt(world, case):
    typed, env, expected = interactive_case(world, case)
    child = bash_session(env)
    try:
        assert line_after_tab(child, typed) == expected
    finally:
        child.close(force=True)


@needs("zsh")
@pytest.mark.parametrize("setup", ZSH_SETUPS)
@pytest.mark.parametrize("case", INTERACTIVE_CASES)
def test_zsh_tab_at_the_prompt(world, case, setup):
    typed, env, expected = interactive_case(world, case)
    child = zsh_session(env, ZSH_SETUPS[setup])
    try:
        assert line_after_tab(child, typed) == expected
    finally:
        child.close(force=True)


@needs("zsh")
def test_zsh_tab_completes_a_process_id(world, sleeper):
    # The whole id typed: TAB must keep it (and add nothing else) whether or
    # not longer ids start with it.
    child = zsh_session(world.env, ZSH_SETUPS["fpath"])
    try:
        line = line_after_tab(child, f"memcgctl attach web {sleeper}")
    finally:
        child.close(force=True)
    assert re.fullmatch(rf"memcgctl attach web {sleeper}\d*", line), line


# --- fish: `complete -C` asks fish's own completion machinery --------------------


def fish_script_problem(text: str) -> str | None:
    """Why the fish script must not be run, if it must not.

    click 8.4.0 and 8.4.1 print `string split \\n` with a real newline, which
    leaves the split without a separator and runs each line of the response
    (group names, process names) as a command (pallets/click#3502).
    """
    for number, line in enumerate(text.splitlines(), 1):
        if line.count("(") != line.count(")"):
            return f"line {number} of completions/{SCRIPTS['fish']} leaves a parenthesis open: {line.strip()!r}"
    return None


def test_fish_script_keeps_each_command_on_one_line():
    assert fish_script_problem((COMPLETIONS / SCRIPTS["fish"]).read_text()) is None


def require_a_safe_fish_script():
    problem = fish_script_problem((COMPLETIONS / SCRIPTS["fish"]).read_text())
    if problem:
        pytest.fail(f"not running fish with a script that would run completions as commands: {problem}")

FISH_SETUPS = {
    # As installed: autoloaded from a directory of $fish_complete_path.
    "autoload": f"set -p fish_complete_path {shlex.quote(str(COMPLETIONS))}",
    "source": f"source {shlex.quote(str(COMPLETIONS / SCRIPTS['fish']))}",
}


def fish_complete(words: list[str], env: dict, setup: str) -> list[str]:
    line = " ".join(["memcgctl", *(shlex.quote(word) if word else "" for word in words)])
    if not words[-1]:
        line += " "
    script = f"{FISH_SETUPS[setup]}\ncomplete -C {shlex.quote(line)}\n"
    completed = subprocess.run(["fish", "--no-config", "-c", script], env=env,
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == "", completed.stderr
    return [entry.split("\t")[0] for entry in completed.stdout.splitlines()]


@needs("fish")
@pytest.mark.parametrize("setup", FISH_SETUPS)
@pytest.mark.parametrize("case", GROUP_CASES)
def test_fish_completes_group_names(world, case, setup):
    require_a_safe_fish_script()
    words, root, expected = GROUP_CASES[case]
    env = world.with_root(getattr(world, root))
    assert sorted(fish_complete(typed_words(world, words), env, setup)) == sorted(expected)


@needs("fish")
def test_fish_completes_process_ids_with_their_command_names(world, sleeper):
    require_a_safe_fish_script()
    prefix = str(sleeper)[:-1]
    script = f"{FISH_SETUPS['autoload']}\ncomplete -C 'memcgctl attach web {prefix}'\n"
    completed = subprocess.run(["fish", "--no-config", "-c", script], env=world.env,
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert completed.stderr == ""
    offered = dict(entry.split("\t", 1) if "\t" in entry else (entry, "")
                   for entry in completed.stdout.splitlines())
    assert offered.get(str(sleeper)) == "sleep"
    assert all(pid.isdigit() and pid.startswith(prefix) for pid in offered), offered
