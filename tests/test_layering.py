"""Library code (finetune/, model/, pretrain/, util/) never imports a top-level script.

Every import statement of every library module is parsed, lazy ones inside functions too.
A script is a repo-root module with a `__main__` block (run_finetuning.py, ...) or any module
of the script packages (scripts/, bench/, experiments/, tests/).
"""

import ast

from tests.conftest import REPO

LIBRARY_PACKAGES = ("finetune", "model", "pretrain", "util")
SCRIPT_PACKAGES = ("scripts", "bench", "experiments", "tests")

def top_level_scripts():
    return {path.stem for path in REPO.glob("*.py")
            if "__main__" in path.read_text(encoding="utf-8")}


def imported_roots(path):
    """The first component of every module name path imports."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_modules_import_no_script():
    scripts = top_level_scripts() | set(SCRIPT_PACKAGES)
    assert {"run_finetuning", "run_pretraining"} <= scripts  # the check sees the runners
    modules = [path for package in LIBRARY_PACKAGES for path in (REPO / package).glob("*.py")]
    assert len(modules) > 20
    offending = sorted(
        (str(path.relative_to(REPO)), root) for path in modules
        for root in imported_roots(path) & scripts)
    assert offending == []


def test_import_parser_sees_lazy_and_from_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os.path\nfrom run_finetuning import x\n"
                      "def f():\n    import bench.step_common\n    from . import y\n")
    assert imported_roots(module) == {"os", "run_finetuning", "bench"}
