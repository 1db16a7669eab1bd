"""The Ansible collection memcgctl.memcg, run by a real ansible-playbook
against localhost (connection local, this interpreter) on real v1 groups
under the test's own memory cgroup: first run changed, second not, check
mode changes nothing, a bad size fails the task with memcgctl's message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT, run_cli

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"
MIB = 1024**2

pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists() or not ANSIBLE_DOC.exists(),
                                reason="ansible-core is not installed (pip install -e '.[test]')")


CALLBACKS = Path(__file__).resolve().parent / "ansible_callbacks"


def ansible_env(tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(PROJECT),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_CALLBACKS_ENABLED="task_results",
        MEMCGCTL_TEST_TASK_RESULTS=str(tmp_path / "task-results.jsonl"),
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    return env


def write_playbook(tmp_path: Path, root: Path, tasks: list[dict]) -> Path:
    """A play against localhost, on ROOT, as JSON (a subset of YAML)."""
    tasks = [{key: {**value, "root": str(root)} if key.startswith("memcgctl.") else value
              for key, value in task.items()} for task in tasks]
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars": {"ansible_python_interpreter": sys.executable}, "tasks": tasks}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play, indent=2))
    return path


class PlaybookRun:
    def __init__(self, completed: subprocess.CompletedProcess, results: list[dict]):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.results = results


def run_playbook(tmp_path: Path, playbook: Path, *options: str) -> PlaybookRun:
    """ansible-playbook OPTIONS PLAYBOOK, with each task's result."""
    env = ansible_env(tmp_path)
    results_file = Path(env["MEMCGCTL_TEST_TASK_RESULTS"])
    results_file.unlink(missing_ok=True)
    completed = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", *options, str(playbook)],
                               capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    lines = results_file.read_text().splitlines() if results_file.exists() else []
    return PlaybookRun(completed, [json.loads(line) for line in lines])


def task_results(run: PlaybookRun) -> list[dict]:
    return run.results


def recap_changed(run: PlaybookRun) -> int:
    """The changed= count of the PLAY RECAP line for localhost."""
    line = next(line for line in run.stdout.splitlines() if line.startswith("localhost ") and "changed=" in line)
    return int(line.split("changed=")[1].split()[0])


# The kernel files of each cgroup version; SECOND is a limit only that version
# has, LACKS one it does not have (and its option).
KERNEL = {
    1: {"limit": "memory.limit_in_bytes", "usage": "memory.usage_in_bytes",
        "second": ("soft_limit", "memory.soft_limit_in_bytes"), "lacks": ("high", "--high")},
    2: {"limit": "memory.max", "usage": "memory.current",
        "second": ("high", "memory.high"), "lacks": ("soft_limit", "--soft")},
}


def group_tasks(version: int) -> list[dict]:
    second = KERNEL[version]["second"][0]
    return [
        {"name": "web", "memcgctl.memcg.group": {"name": "web", "limit": "100M", second: "50M"}},
        {"name": "job", "memcgctl.memcg.group": {"name": "batch/job1", "limit": "200MiB"}},
    ]


def test_first_run_changes_second_run_changes_nothing(kernel_root, tmp_path):
    files = KERNEL[kernel_root.version]
    second, second_file = files["second"]
    playbook = write_playbook(tmp_path, kernel_root.path, group_tasks(kernel_root.version))
    first = run_playbook(tmp_path, playbook, "--diff")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    web, job = task_results(first)
    assert web["changed"] and job["changed"]
    assert web["limits"]["limit"] == 100 * MIB and web["limits"][second] == 50 * MIB
    assert web["cgroup_version"] == kernel_root.version
    assert web["diff"]["before"] == {"state": "absent"} and web["diff"]["after"]["limit"] == 100 * MIB
    assert kernel_root.read("web", files["limit"]) == str(100 * MIB)
    assert kernel_root.read("web", second_file) == str(50 * MIB)
    assert kernel_root.read("batch/job1", files["limit"]) == str(200 * MIB)

    second_run = run_playbook(tmp_path, playbook, "--diff")
    assert second_run.returncode == 0, second_run.stdout[-3000:]
    assert [result["changed"] for result in task_results(second_run)] == [False, False]
    assert recap_changed(first) == 2 and recap_changed(second_run) == 0
    assert kernel_root.read("web", files["limit"]) == str(100 * MIB)


def test_check_mode_reports_the_change_and_makes_none(kernel_root, tmp_path):
    limit_file = KERNEL[kernel_root.version]["limit"]
    kernel_root.path.joinpath("web").mkdir()
    kernel_root.write("web", limit_file, str(300 * MIB))
    playbook = write_playbook(tmp_path, kernel_root.path, group_tasks(kernel_root.version))
    completed = run_playbook(tmp_path, playbook, "--check", "--diff")
    assert completed.returncode == 0, completed.stdout[-3000:]
    web, job = task_results(completed)
    assert web["changed"] and job["changed"]
    assert web["diff"]["before"]["limit"] == 300 * MIB and web["diff"]["after"]["limit"] == 100 * MIB
    assert kernel_root.read("web", limit_file) == str(300 * MIB)
    assert not (kernel_root.path / "batch").exists()
    # A new group: the limits in bytes, as the real run below returns them, not "200MiB".
    assert job["limits"]["limit"] == 200 * MIB and job["cgroup_version"] == kernel_root.version
    real = run_playbook(tmp_path, playbook)
    assert real.returncode == 0, real.stdout[-3000:]
    assert task_results(real)[-1]["limits"] == job["limits"]
    assert kernel_root.read("batch/job1", limit_file) == str(200 * MIB)


def test_check_mode_reads_the_plan_of_a_name_with_a_quote_and_a_control_character(fake_v1, tmp_path):
    # -n quotes such a name the bash way ($'we\'b\x01'), which shlex cannot
    # read: the collection reads the plan as data (-n --plan-json).
    name = "we'b\x01"
    assert run_cli(fake_v1, "create", name, "--limit", "300M").exit_code == 0
    playbook = write_playbook(tmp_path, fake_v1, [{"name": "odd", "memcgctl.memcg.group": {"name": name,
                                                                                             "limit": "100M"}}])
    completed = run_playbook(tmp_path, playbook, "--check", "--diff")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "Traceback" not in completed.stdout + completed.stderr
    (result,) = task_results(completed)
    assert result["changed"] and result["diff"]["after"]["limit"] == 100 * MIB
    assert (fake_v1 / name / "memory.limit_in_bytes").read_text().strip() == str(300 * MIB)  # nothing changed
    applied = run_playbook(tmp_path, playbook)
    assert applied.returncode == 0, applied.stdout[-3000:]
    assert (fake_v1 / name / "memory.limit_in_bytes").read_text().strip() == str(100 * MIB)


def test_a_bad_size_fails_the_task_with_memcgctls_message_and_creates_nothing(kernel_root, tmp_path):
    playbook = write_playbook(tmp_path, kernel_root.path,
                              [{"name": "bad", "memcgctl.memcg.group": {"name": "web", "limit": "10X"}}])
    completed = run_playbook(tmp_path, playbook)
    assert completed.returncode == 2
    [result] = task_results(completed)
    assert result["status"] == "failed" and result["rc"] == 2
    assert result["msg"].startswith("memcgctl: bad size '10X': expected bytes or a number with K, M, G")
    assert not (kernel_root.path / "web").exists()


def test_a_limit_the_version_lacks_fails_and_leaves_no_group_behind(kernel_root, tmp_path):
    lacks, option = KERNEL[kernel_root.version]["lacks"]
    playbook = write_playbook(tmp_path, kernel_root.path,
                              [{"name": "lacks", "memcgctl.memcg.group": {"name": "a/b", lacks: "100M"}}])
    completed = run_playbook(tmp_path, playbook)
    [result] = task_results(completed)
    assert result["status"] == "failed" and result["rc"] == 69
    assert result["msg"].startswith(f"memcgctl: set {option}: not available on cgroup v{kernel_root.version}")
    assert not (kernel_root.path / "a").exists()


def test_state_absent_removes_the_group_once(kernel_root, tmp_path):
    kernel_root.path.joinpath("old").mkdir()
    playbook = write_playbook(tmp_path, kernel_root.path,
                              [{"name": "gone", "memcgctl.memcg.group": {"name": "old", "state": "absent"}}])
    assert task_results(run_playbook(tmp_path, playbook))[0]["changed"] is True
    assert not (kernel_root.path / "old").exists()
    assert task_results(run_playbook(tmp_path, playbook))[0]["changed"] is False


def test_shrink_reports_before_and_after_and_restores_the_limit(kernel_root, tmp_path):
    files = KERNEL[kernel_root.version]
    kernel_root.path.joinpath("web").mkdir()
    kernel_root.write("web", files["limit"], str(512 * MIB))
    kernel_root.fill_page_cache("web", tmp_path / "cache-file", 64)
    playbook = write_playbook(tmp_path, kernel_root.path,
                              [{"name": "shrink", "memcgctl.memcg.shrink": {"name": "web", "target": "16M",
                                                                             "timeout": 30}}])
    checked = task_results(run_playbook(tmp_path, playbook, "--check"))[0]
    assert checked["changed"] is True and checked["after"] == checked["before"] >= 60 * MIB
    assert int(kernel_root.read("web", files["usage"])) >= 60 * MIB

    shrunk = task_results(run_playbook(tmp_path, playbook))[0]
    assert shrunk["changed"] is True
    assert shrunk["before"] >= 60 * MIB and shrunk["after"] <= 16 * MIB
    assert shrunk["reclaimed"] == shrunk["before"] - shrunk["after"]
    assert int(kernel_root.read("web", files["usage"])) <= 16 * MIB
    assert kernel_root.read("web", files["limit"]) == str(512 * MIB)
    assert task_results(run_playbook(tmp_path, playbook))[0]["changed"] is False


def test_shrink_that_cannot_reach_its_target_fails_with_rc_75(kernel_root, tmp_path):
    kernel_root.path.joinpath("held").mkdir()
    kernel_root.hold_anonymous_memory("held", 32 * MIB)
    playbook = write_playbook(tmp_path, kernel_root.path,
                              [{"name": "shrink", "memcgctl.memcg.shrink": {"name": "held", "target": "1M",
                                                                             "timeout": 5}}])
    [result] = task_results(run_playbook(tmp_path, playbook))
    assert result["status"] == "failed" and result["rc"] == 75
    assert result["msg"].startswith("memcgctl: shrink held: target not reached")
    assert result["before"] >= 32 * MIB and result["after"] >= 32 * MIB


@pytest.mark.parametrize("module", ["group", "shrink"])
def test_ansible_doc_shows_the_module(tmp_path, module):
    completed = subprocess.run([str(ANSIBLE_DOC), "--json", f"memcgctl.memcg.{module}"], capture_output=True,
                               text=True, env=ansible_env(tmp_path), timeout=120)
    assert completed.returncode == 0, completed.stderr
    doc = json.loads(completed.stdout)[f"memcgctl.memcg.{module}"]
    assert doc["doc"]["module"] == module
    assert doc["examples"].strip() and doc["return"]
    assert "name" in doc["doc"]["options"] and "root" in doc["doc"]["options"]
    expected = {"group": {"state", "limit", "soft_limit", "high", "low", "min", "swap_limit"},
                "shrink": {"target", "timeout"}}[module]
    assert expected <= set(doc["doc"]["options"])
    text = subprocess.run([str(ANSIBLE_DOC), f"memcgctl.memcg.{module}"], capture_output=True, text=True,
                          env=ansible_env(tmp_path), timeout=120).stdout
    assert f"memcgctl.memcg.{module}" in text and "EXAMPLES" in text


def test_the_collection_links_to_no_placeholder_address(tmp_path):
    """Every address in the collection (galaxy.yml, README, the modules'
    documentation as ansible-doc reads it) is a real https one: none in the
    reserved names (.invalid, .example, .test, example.com)."""
    import re

    collection = PROJECT / "ansible_collections" / "memcgctl" / "memcg"
    texts = [path.read_text() for path in collection.rglob("*") if path.suffix in (".yml", ".md", ".py")]
    links = []
    for module in ("group", "shrink"):
        completed = subprocess.run([str(ANSIBLE_DOC), "--json", f"memcgctl.memcg.{module}"], capture_output=True,
                                   text=True, env=ansible_env(tmp_path), timeout=120)
        doc = json.loads(completed.stdout)[f"memcgctl.memcg.{module}"]["doc"]
        links += [entry["link"] for entry in doc.get("seealso", []) if "link" in entry]
    addresses = links + [address for text in texts for address in re.findall(r"https?://[^\s)>\"']+", text)]
    assert links, "the modules' seealso links"
    for address in addresses:
        host = address.split("/")[2]
        assert address.startswith("https://"), address
        assert not re.search(r"(\.invalid|\.example|\.test|\.localhost|(^|\.)example\.(com|org|net))$", host), address


def test_ansible_doc_sanity_of_the_collection_layout():
    galaxy = (PROJECT / "ansible_collections" / "memcgctl" / "memcg" / "galaxy.yml").read_text()
    assert "namespace: memcgctl" in galaxy and "name: memcg" in galaxy
    assert shutil.which("memcgctl", path=str(Path(sys.executable).parent))
