"""The package graph runs one way: util <- model <- pretrain, finetune <- the top level
(runners, configure_*.py) and scripts/, bench/, experiments/, tests/.

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


# What each library package may import of ours (itself aside).
ALLOWED = {"util": set(), "model": {"util"}, "pretrain": {"model", "util"},
           "finetune": {"model", "util"}}
# The one edge still against the graph: finetune/model_info.py rebuilds a trial's
# FinetuningConfig from its trial_hparams.json with the top-level configure_finetuning.
KNOWN_EXCEPTIONS = {("finetune/model_info.py", "configure_finetuning")}


def our_roots():
    """Names of the project's top-level modules and packages."""
    return ({path.stem for path in REPO.glob("*.py")}
            | {path.parent.name for path in REPO.glob("*/__init__.py")})


def forbidden_edges(packages=LIBRARY_PACKAGES):
    """[(module path, imported package)] that break ALLOWED."""
    ours = our_roots()
    return sorted(
        (str(path.relative_to(REPO)), root)
        for package in packages for path in (REPO / package).glob("*.py")
        for root in (imported_roots(path) & ours) - ALLOWED[package] - {package})


def test_library_packages_import_only_downwards():
    assert {"util", "model", "pretrain", "finetune", "configure_finetuning"} <= our_roots()
    assert [edge for edge in forbidden_edges() if edge not in KNOWN_EXCEPTIONS] == []


def test_the_graph_check_sees_each_kind_of_upward_edge(tmp_path, monkeypatch):
    """Each forbidden edge, planted in a scratch copy of the tree, is reported."""
    import shutil
    import tests.test_layering as layering
    for package in LIBRARY_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package)
    for name in ("configure_finetuning.py", "run_pretraining.py"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.setattr(layering, "REPO", tmp_path)
    planted = [("util", "model"), ("util", "pretrain"), ("model", "pretrain"),
               ("model", "finetune"), ("pretrain", "finetune"), ("finetune", "pretrain"),
               ("model", "configure_finetuning"), ("util", "run_pretraining")]
    for package, target in planted:
        (tmp_path / package / "planted.py").write_text("def f():\n    import %s\n" % target)
        assert ("%s/planted.py" % package, target) in forbidden_edges(), (package, target)
        (tmp_path / package / "planted.py").unlink()
    assert [e for e in forbidden_edges() if e not in KNOWN_EXCEPTIONS] == []


def test_import_parser_sees_lazy_and_from_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os.path\nfrom run_finetuning import x\n"
                      "def f():\n    import bench.step_common\n    from . import y\n")
    assert imported_roots(module) == {"os", "run_finetuning", "bench"}
