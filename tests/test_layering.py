"""The package graph runs one way, and you can draw it from the folder names:

    util <- model <- {pretrain, finetune, corpus} <- the top level (runners, configure_*.py,
    build_pretraining_dataset.py, export_savedmodel.py, predict.py, ...) and scripts/,
    bench/, experiments/, tests/

pretrain (in-graph input, masking, objectives), finetune (tasks, heads, export and
prediction libraries) and corpus (the offline corpus-to-tfrecords builder) import neither
each other nor anything above them; what two of them share lives in model/ (e.g.
model/linguistic_labels.py). Command lines live only at the top level and in scripts/ (and
the script packages): no library module has a `__main__` block or an argparse parser.

Every import statement of every library module is parsed, lazy ones inside functions too.
"""

import ast
import shutil

from tests.conftest import REPO

LIBRARY_PACKAGES = ("util", "model", "pretrain", "finetune", "corpus")
SCRIPT_PACKAGES = ("scripts", "bench", "experiments", "tests")

# What each library package may import of ours (itself aside). Everything else of ours is
# forbidden: the other packages and every top-level module.
ALLOWED = {"util": set(), "model": {"util"}, "pretrain": {"model", "util"},
           "finetune": {"model", "util"}, "corpus": {"model", "util"}}


def imported_roots(path):
    """The first component of every module name path imports."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def our_roots():
    """Names of the project's top-level modules and packages."""
    return ({path.stem for path in REPO.glob("*.py")}
            | {path.parent.name for path in REPO.glob("*/__init__.py")})


def library_modules(packages=LIBRARY_PACKAGES):
    return [path for package in packages for path in sorted((REPO / package).glob("*.py"))]


def forbidden_edges(packages=LIBRARY_PACKAGES):
    """[(module path, imported package or top-level module)] that break ALLOWED."""
    ours = our_roots()
    return sorted(
        (str(path.relative_to(REPO)), root) for path in library_modules(packages)
        for root in (imported_roots(path) & ours) - ALLOWED[path.parent.name]
        - {path.parent.name})


def test_every_package_has_its_place_in_the_graph():
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")}
    assert packages == set(LIBRARY_PACKAGES) | set(SCRIPT_PACKAGES)


def test_library_packages_import_only_downwards():
    assert {"run_finetuning", "run_pretraining", "configure_finetuning",
            "build_pretraining_dataset", "export_savedmodel", "predict"} <= our_roots()
    assert len(library_modules()) > 40
    assert forbidden_edges() == []


def command_line_parts(path):
    """What makes a module a command line: an `if __name__ == "__main__"` block or an
    argparse.ArgumentParser."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name)
                and node.left.id == "__name__"):
            found.append("__main__ block")
        elif isinstance(node, (ast.Attribute, ast.Name)) and "ArgumentParser" in (
                getattr(node, "attr", None), getattr(node, "id", None)):
            found.append("ArgumentParser")
    return found


# Library modules that were commands in earlier versions: their __main__ block only names
# the command to use now (and exits 2), so an old `python -m ...` line does not exit 0
# having done nothing (tests/test_preemption.py runs them).
FORMER_COMMANDS = ("finetune/export.py", "finetune/predict.py")


def test_command_lines_live_only_at_the_top_level_and_in_scripts():
    offending = [(str(path.relative_to(REPO)), part) for path in library_modules()
                 for part in command_line_parts(path)]
    assert sorted(offending) == [(name, "__main__ block") for name in FORMER_COMMANDS]
    assert set(command_line_parts(REPO / "predict.py")) == {"ArgumentParser",
                                                            "__main__ block"}


# Edges the graph forbids, named one by one (the test below plants every forbidden edge;
# these are the kinds it must never miss).
MUST_BE_REPORTED = [
    ("util", "model"), ("util", "pretrain"), ("model", "pretrain"), ("model", "corpus"),
    ("model", "finetune"), ("pretrain", "corpus"), ("corpus", "pretrain"),
    ("finetune", "pretrain"), ("pretrain", "finetune"), ("finetune", "corpus"),
    ("corpus", "finetune"), ("finetune", "configure_finetuning"),
    ("model", "configure_finetuning"), ("corpus", "configure_pretraining"),
    ("util", "run_pretraining"), ("finetune", "run_finetuning"),
    ("corpus", "build_pretraining_dataset"), ("finetune", "export_savedmodel"),
    ("finetune", "predict"), ("util", "scripts"), ("finetune", "scripts"),
    ("corpus", "bench"), ("pretrain", "experiments"), ("model", "tests")]

# Import forms the parser must see: plain, from, dotted, lazy inside a function.
PLANTED_FORMS = ("import {0}\n", "from {0} import name\n", "import {0}.sub as alias\n",
                 "def f{1}():\n    from {0}.sub import name\n")


def test_the_graph_check_sees_every_forbidden_edge(tmp_path, monkeypatch):
    """Every forbidden edge of every library package, planted in a scratch copy of the
    tree, is reported; the allowed edges planted beside them are not."""
    import tests.test_layering as layering
    for package in LIBRARY_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package)
    for package in SCRIPT_PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for path in REPO.glob("*.py"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(layering, "REPO", tmp_path)
    ours = our_roots()
    planted = set()
    for package in LIBRARY_PACKAGES:
        forbidden = sorted(ours - ALLOWED[package] - {package})
        targets = forbidden + sorted(ALLOWED[package])
        module = tmp_path / package / "planted.py"
        module.write_text("".join(PLANTED_FORMS[i % len(PLANTED_FORMS)].format(target, i)
                                  for i, target in enumerate(targets)))
        reported = {target for path, target in forbidden_edges()
                    if path == "%s/planted.py" % package}
        assert reported == set(forbidden), package
        planted |= {(package, target) for target in forbidden}
        module.unlink()
    assert set(MUST_BE_REPORTED) <= planted
    assert forbidden_edges() == []


def test_import_parser_sees_lazy_and_from_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os.path\nfrom run_finetuning import x\n"
                      "def f():\n    import bench.step_common\n    from . import y\n")
    assert imported_roots(module) == {"os", "run_finetuning", "bench"}
