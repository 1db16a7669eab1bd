"""man/memcgctl.1 lints clean and says what the command line does.

The page's conventions, which these tests read:
- global options are the .TP tags of OPTIONS;
- each command is a .SS subsection of COMMANDS named after it, whose .TP
  tags are its own options; a command that takes no global options after
  its name says "before the command name only";
- EXIT STATUS and ENVIRONMENT are .TP lists of codes and variables;
- examples are .EX/.EE blocks.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from importlib.metadata import version

import click
import pytest
from click.testing import CliRunner

from memcgctl.cli import cli
from memcgctl.errors import EXIT_CODES

from conftest import PROJECT, all_commands

PAGE = PROJECT / "man" / "memcgctl.1"
OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][A-Za-z0-9-]*")
GLOBALS_BEFORE_NAME_ONLY = "before the command name only"


# --- reading the page ------------------------------------------------------------


def plain(text: str) -> str:
    """Roff text as read: escapes resolved, font changes dropped."""
    text = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", text)
    return text.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\").replace("\\(aq", "'")


def page_lines() -> list[str]:
    return [line for line in PAGE.read_text().splitlines() if not line.startswith(('.\\"', "'\\\""))]


def split_at(lines: list[str], macro: str) -> dict[str, list[str]]:
    """The lines under each MACRO heading (.SH or .SS), by heading."""
    parts: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith(macro + " "):
            current = plain(line[len(macro) + 1:]).strip().strip('"')
            assert current not in parts, f"{macro} {current} twice"
            parts[current] = []
        elif current is not None:
            parts[current].append(line)
    return parts


def sections() -> dict[str, list[str]]:
    return split_at(page_lines(), ".SH")


def command_sections() -> dict[str, list[str]]:
    return split_at(sections()["COMMANDS"], ".SS")


def tags(lines: list[str]) -> list[str]:
    """The tag line of each .TP, as read (macro name dropped)."""
    found = []
    for index, line in enumerate(lines):
        if line == ".TP":
            tag = lines[index + 1]
            found.append(plain(re.sub(r"^\.[A-Z]{1,2}\s+", "", tag)).replace('"', ""))
    return found


def documented_options(lines: list[str]) -> dict[str, str]:
    """{option: the rest of its tag (its value, if any)} for the .TP tags that
    start with an option."""
    options = {}
    for tag in tags(lines):
        if not tag.startswith("-"):
            continue
        value = OPTION.sub("", tag).strip(" ,")
        for option in OPTION.findall(tag):
            assert option not in options, f"{option} documented twice"
            options[option] = value
    return options


def mentioned_options(lines: list[str]) -> set[str]:
    """Every option named in running text (examples left out)."""
    mentioned = set()
    in_example = False
    for line in lines:
        if line.startswith(".EX"):
            in_example = True
        elif line.startswith(".EE"):
            in_example = False
        elif not in_example:
            mentioned |= set(OPTION.findall(plain(line)))
    return mentioned


def examples() -> list[str]:
    lines, found, in_example = page_lines(), [], False
    for line in lines:
        if line.startswith(".EX"):
            in_example = True
        elif line.startswith(".EE"):
            in_example = False
        elif in_example:
            found.append(plain(line))
    return found


# --- reading the command line ----------------------------------------------------


def root_context() -> click.Context:
    return click.Context(cli, info_name="memcgctl", **cli.context_settings)


def param_options(command: click.Command, ctx: click.Context) -> dict[str, click.Parameter]:
    """{option: parameter} of COMMAND, the help option included, and those of
    its subcommands (`daemon status`), which its subsection documents too."""
    options = {opt: param for param in command.get_params(ctx) if isinstance(param, click.Option)
               for opt in (*param.opts, *param.secondary_opts)}
    for subcommand in getattr(command, "commands", {}).values():
        sub_ctx = click.Context(subcommand, info_name=subcommand.name, parent=ctx)
        options.update((opt, param) for opt, param in param_options(subcommand, sub_ctx).items() if opt not in options)
    return options


def global_options() -> dict[str, click.Parameter]:
    return param_options(cli, root_context())


def commands() -> dict[str, tuple[click.Command, click.Context]]:
    parent = root_context()
    return {name: (command, click.Context(command, info_name=name, parent=parent, **command.context_settings))
            for name, command in all_commands().items() if not command.hidden}


def is_global(option: str, param: click.Parameter, globals_: dict) -> bool:
    """OPTION is a global option, not a command's own that reuses its name
    (`top -n COUNT` beside the global `-n`, --dry-run, before the name)."""
    return option in globals_ and param.name == globals_[option].name


def takes_value(param: click.Parameter) -> bool:
    return not (getattr(param, "is_flag", False) or getattr(param, "count", False))


# --- lint --------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="mandoc is not installed (apt-get install mandoc)")
def test_mandoc_lint_is_clean():
    completed = subprocess.run(["mandoc", "-Tlint", "-W", "style", str(PAGE)], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=60)
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed (apt-get install groff-base)")
def test_groff_finds_nothing_to_warn_about():
    completed = subprocess.run(["groff", "-ww", "-z", "-man", str(PAGE)], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=60)
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed (apt-get install groff-base)")
def test_rendered_lines_fit_80_columns():
    completed = subprocess.run(["groff", "-man", "-Tutf8", "-rLL=80n", "-P-cbou", str(PAGE)],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert completed.returncode == 0, completed.stderr
    too_long = [line for line in completed.stdout.splitlines() if len(line) > 80]
    assert too_long == []


# --- the page against the command line -------------------------------------------


def test_sections_are_all_there_in_order():
    expected = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "SIZES", "EXIT STATUS", "ENVIRONMENT",
                "FILES", "SECURITY", "NOTES", "EXAMPLES", "SEE ALSO"]
    expected.insert(expected.index("SIZES"), "DAEMON")  # the daemon's configuration keys
    assert list(sections()) == expected


def test_title_carries_the_package_version():
    title = next(line for line in page_lines() if line.startswith(".TH "))
    assert shlex.split(title)[1:3] == ["MEMCGCTL", "1"]
    assert shlex.split(title)[4] == f"memcgctl {version('memcgctl')}"


def test_every_command_has_a_subsection_and_no_other():
    assert sorted(command_sections()) == sorted(commands())


def test_global_options_are_documented_under_options():
    documented = documented_options(sections()["OPTIONS"])
    assert sorted(documented) == sorted(global_options())


@pytest.mark.parametrize("name", sorted(commands()))
def test_command_options_are_documented_in_its_subsection(name):
    command, ctx = commands()[name]
    globals_ = global_options()
    own = {opt: param for opt, param in param_options(command, ctx).items() if not is_global(opt, param, globals_)}
    documented = documented_options(command_sections()[name])
    assert sorted(documented) == sorted(own), f"options of `memcgctl {name}` and its subsection differ"
    for option, param in own.items():
        assert bool(documented[option]) == takes_value(param), f"{name} {option}: value shown or not as taken"


def test_option_values_are_shown_as_taken():
    documented = documented_options(sections()["OPTIONS"])
    for option, param in global_options().items():
        assert bool(documented[option]) == takes_value(param), option


@pytest.mark.parametrize("name", sorted(commands()))
def test_global_options_after_the_command_name_as_documented(name):
    command, ctx = commands()[name]
    after_name = {opt for opt, param in param_options(command, ctx).items() if is_global(opt, param, global_options())}
    settable = {opt for opt, param in global_options().items() if not param.is_eager}
    assert after_name & settable in (set(), settable), f"{name} takes only some global options"
    says_before_only = GLOBALS_BEFORE_NAME_ONLY in " ".join(plain(line) for line in command_sections()[name])
    assert says_before_only == (not after_name & settable)


def test_options_named_in_running_text_exist():
    everything = set(global_options())
    for command, ctx in commands().values():
        everything |= set(param_options(command, ctx))
    assert mentioned_options(page_lines()) - everything == set()
    for name, lines in command_sections().items():
        command, ctx = commands()[name]
        allowed = set(param_options(command, ctx)) | set(global_options())
        assert mentioned_options(lines) - allowed == set(), f"subsection {name} names options {name} lacks"


def test_exit_status_lists_every_code():
    assert sorted(int(tag) for tag in tags(sections()["EXIT STATUS"])) == sorted(EXIT_CODES)


def test_environment_lists_every_variable_memcgctl_reads():
    variables = {param.envvar for param in global_options().values() if getattr(param, "envvar", None)}
    for source in (PROJECT / "memcgctl").rglob("*.py"):
        variables |= set(re.findall(r"""(?:environ\.get\(|environ\[|getenv\(|envvar=)["']([A-Z_][A-Z0-9_]*)["']""",
                                    source.read_text()))
    assert set(tags(sections()["ENVIRONMENT"])) == variables


def example_command_lines() -> list[list[str]]:
    """The arguments of each memcgctl command line in the examples (up to a
    pipe, ||, or the end of a $(...))."""
    found = []
    for line in examples():
        for match in re.finditer(r"(?<![\w/.-])memcgctl((?:[ \t]+[^|;&()\"\s]+)*)", line):
            found.append(shlex.split(match.group(1)))
    return found


def test_examples_include_the_cron_line():
    assert any(line.startswith("*/5 * * * *") and "memcgctl shrink batch 80% ||" in line for line in examples())


def test_examples_are_valid_command_lines(monkeypatch):
    """Each example parses: its command, options, arguments and sizes (the
    commands themselves are replaced by no-ops)."""
    for command in all_commands().values():
        for each in (command, *getattr(command, "commands", {}).values()):  # `daemon status` too
            monkeypatch.setattr(each, "callback", lambda *args, **kwargs: None)
    lines = example_command_lines()
    assert len(lines) >= 10
    for args in lines:
        result = CliRunner().invoke(cli, args, prog_name="memcgctl", env={"MEMCGCTL_ROOT": None})
        assert result.exit_code == 0, f"memcgctl {shlex.join(args)}: {result.output}"
