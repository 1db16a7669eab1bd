"""An Ansible callback for the tests: each task's result, one JSON object a
line, appended to $MEMCGCTL_TEST_TASK_RESULTS (ansible-core 2.19 moved its
json callback out of core)."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_results
type: aggregate
short_description: task results as JSON lines, for memcgctl's tests
description: Appends each task's result to the file named by MEMCGCTL_TEST_TASK_RESULTS.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status: str) -> None:
        entry = {"task": result._task.get_name(), "status": status, **result._result}
        with open(os.environ["MEMCGCTL_TEST_TASK_RESULTS"], "a") as file:
            file.write(json.dumps(entry, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")
