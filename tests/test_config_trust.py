"""What root trusts in the daemon's configuration (issue 17, finding 5).

The daemon runs as root on what its TOML file says: nobody (setpriv), the
attacker, must not be able to steer it by a file or a directory it can
write, a symbolic link, a FIFO (the daemon would hang) or a device.  Each is
refused with exit 77 and one line, and nothing is read.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

import pytest
from unprivileged import NOBODY, as_nobody, needs_root_and_setpriv, remove_tree

from conftest import run_cli, run_process

pytestmark = needs_root_and_setpriv()

# What nobody would like the daemon to do: every group, down to 2M.
HOSTILE = 'interval = 1.0\n[[group]]\nmatch = "*"\npolicy = "watermark"\nhigh = "2M"\nlow = "1M"\n'


@pytest.fixture
def shared_dir():
    """A directory of root's that nobody may enter (as /etc is)."""
    directory = Path(tempfile.mkdtemp(prefix="memcgctl-etc-"))
    directory.chmod(0o755)
    yield directory
    remove_tree(directory)


def check(root: Path, config: Path):
    return run_cli(root, "daemon", "--config", str(config), "--check")


def assert_refused(result, config: Path, why: str) -> None:
    assert result.exit_code == 77, result.stderr
    assert result.stderr.startswith("memcgctl: read configuration: refused: "), result.stderr
    assert why in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.endswith(f" ({config})\n")
    assert result.stdout == ""  # nothing matched: the file was not parsed


def test_a_config_nobody_owns_is_refused_even_in_roots_directory(fake_v1, tmp_path):
    config = tmp_path / "daemon.toml"
    config.write_text(HOSTILE)
    os.chown(config, NOBODY.pw_uid, NOBODY.pw_gid)
    config.chmod(0o644)
    assert_refused(check(fake_v1, config), config, f"owned by uid {NOBODY.pw_uid}")


def test_a_config_anyone_can_write_is_refused(fake_v1, shared_dir):
    config = shared_dir / "daemon.toml"
    config.write_text(HOSTILE)
    config.chmod(0o666)
    assert as_nobody(["sh", "-c", f"echo '# nobody was here' >> {shlex.quote(str(config))}"]).returncode == 0
    assert_refused(check(fake_v1, config), config, "others can write it")
    config.chmod(0o644)  # the same file, once the admin fixed its mode, is read
    result = check(fake_v1, config)
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr


def test_a_root_owned_config_in_a_directory_nobody_owns_is_refused(fake_v1, attacker_dir):
    config = attacker_dir / "daemon.toml"
    config.write_text(HOSTILE)  # root's file, 0644, but nobody may rename another over it
    assert_refused(check(fake_v1, config), config, f"{attacker_dir} is owned by uid {NOBODY.pw_uid}")


def test_a_symlink_is_not_followed(fake_v1, tmp_path):
    real = tmp_path / "real.toml"
    real.write_text(HOSTILE)
    config = tmp_path / "daemon.toml"
    config.symlink_to(real)
    result = check(fake_v1, config)
    assert result.exit_code == 77 and "symbolic link" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_a_fifo_is_refused_at_once_not_waited_on(fake_v1, tmp_path):
    config = tmp_path / "daemon.toml"
    os.mkfifo(config, 0o644)
    # Its own process (run_process has a timeout): the old code waited for a writer for ever.
    result = run_process(fake_v1, "daemon", "--config", str(config), "--check")
    assert result.returncode == 77, result.stderr
    assert "not a regular file" in result.stderr and result.stderr.count("\n") == 1


def test_dev_zero_is_refused(fake_v1):
    result = check(fake_v1, Path("/dev/zero"))
    assert_refused(result, Path("/dev/zero"), "not a regular file")


def test_a_huge_config_is_refused(fake_v1, tmp_path):
    config = tmp_path / "daemon.toml"
    config.write_text(HOSTILE + "#" * (2 * 1024 * 1024))
    assert_refused(check(fake_v1, config), config, "larger than")


def test_a_config_in_a_sticky_world_writable_directory_is_read(fake_v1, tmp_path):
    # /tmp-like: nobody may write the directory but cannot rename root's file in it.
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    config = sticky / "daemon.toml"
    config.write_text(HOSTILE)
    result = check(fake_v1, config)
    assert (result.exit_code, result.stderr) == (0, "")
