"""The filesystem layer is two modules: files.py (files that are not cgroup
files) and kernel/fs.py built on it (cgroup files) turn OSError into a
memcgctl error, and no other module reaches into their private helpers (a
second error boundary would grow there).  The safety layer (the journal)
never imports the kernel layer."""

from __future__ import annotations

import ast

from conftest import PROJECT

KERNEL = PROJECT / "memcgctl" / "kernel"


def private_names_taken_from_fs(source: str) -> list[str]:
    taken = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] in ("fs", "files"):
            taken += [alias.name for alias in node.names if alias.name.startswith("_")]
    return taken


def catches_oserror(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            if any(isinstance(name, ast.Name) and name.id == "OSError" for name in names):
                return True
    return False


def test_no_module_takes_a_private_helper_of_the_filesystem_layer():
    offenders = {str(path.relative_to(PROJECT)): names for path in (PROJECT / "memcgctl").rglob("*.py")
                 if (names := private_names_taken_from_fs(path.read_text()))}
    assert offenders == {}


def test_building_a_fake_root_leaves_oserror_to_the_filesystem_layer():
    assert not catches_oserror((KERNEL / "fake.py").read_text())
    assert catches_oserror((KERNEL / "fs.py").read_text())  # the check can see one


def modules_imported(source: str) -> set[str]:
    """Every module SOURCE imports, relative ones spelled as written ('..kernel.fs')."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_safety_layer_imports_nothing_of_the_kernel_layer():
    offenders = {path.name: sorted(module for module in modules_imported(path.read_text())
                                   if module.startswith(("..kernel", "memcgctl.kernel")))
                 for path in (PROJECT / "memcgctl" / "safety").glob("*.py")}
    assert {name: modules for name, modules in offenders.items() if modules} == {}
