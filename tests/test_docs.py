"""The README's claims that tests can hold it to."""

from tests.conftest import REPO


def test_committed_experiment_report_matches_its_results_json():
    """docs/experiment/report.md's sections re-render, figure for figure, from results.json."""
    import json

    from experiments import experiment_report
    docs = REPO / "docs" / "experiment"
    text = (docs / "report.md").read_text(encoding="utf-8")
    results = json.loads((docs / "results.json").read_text(encoding="utf-8"))
    rows, history = results["verdicts"], results["heldout_evaluations"]
    bar, compute = results["char_statistics"], results["compute"]
    for section in (experiment_report.conclusion(rows, history, bar, compute),
                    experiment_report.curve_section(history, bar),
                    experiment_report.compute_section(compute),
                    experiment_report.verdicts(rows)):
        assert section in text, section[:200]
    assert "Command: `%s`" % results["command"] in text
    for stage, seconds in results["wall_clock_seconds"].items():
        assert "| %s | %s |" % (stage, experiment_report.format_duration(seconds)) in text
    for image in ("pretraining_losses.png", "pretraining_eval.png", "finetuning_curves.png"):
        assert "](%s)" % image in text
        assert (docs / image).read_bytes().startswith(b"\x89PNG"), image
    # docs/results.md quotes the same means
    readme = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    means = {(r["task"], r["metric"]): (r["pretrained"], r["random_init"]) for r in rows}
    p, r = means[("chnsenticorp", "accuracy")]
    assert "| ChnSentiCorp accuracy | %.1f | %.1f |" % (p, r) in readme
    p, r = means[("peoples-daily-ner", "f1")]
    assert "| People's Daily NER F1 | %.1f | %.1f |" % (p, r) in readme
    (pe, re_), (pf, rf) = means[("cmrc2018", "em")], means[("cmrc2018", "f1")]
    assert "| CMRC 2018 EM / F1 | %.1f / %.1f | %.1f / %.1f |" % (pe, pf, re_, rf) in readme


# ---------------------------------------------------------------------------------------------
# Every command shown in the README and docs/ is checked: a `python` command's arguments are
# parsed by that tool's own argparse parser (and a runner's --hparams validated by its config
# class), a `make` target must exist in the Makefile, a script run by path must exist, and any
# other program must be one of the few shell tools the docs use.

import argparse
import re
import runpy
import shlex
import sys

import pytest

DOC_PAGES = ["README.md", "bench/README.md"] + sorted(
    str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))
SHELL_TOOLS = {"cp", "mkdir", "rm", "echo", "cat", "ls", "cd", "source", "tensorboard", "gsutil",
               "unzip", "export", "time", "head", "tail", "wc", "git", "pip", "ln", "grep",
               "cut"}
PYTHONS = {"python", "python3", ".venv/bin/python"}
# Scripts the docs show that are not ours (transformers 4.x's converter).
NOT_OURS = {"convert_electra_original_tf_checkpoint_to_pytorch.py"}
_CONTROL = {"&&", "||", "|", ";", "&"}
_REDIRECT = {"<", ">", ">>", "2>", "2>&1"}


def _blocks(text):
    """The shell code of a page: fenced bash/sh blocks whole; in other fenced blocks (console
    output), the lines after a `$ ` prompt; 4-space indented blocks that start with a command."""
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        language, body = match.groups()
        if language in ("bash", "sh", "shell"):
            yield body
        elif language in ("", "console", "text"):
            commands, continued = [], False
            for line in body.splitlines():
                words = line.split()
                if line.strip().startswith("$ "):
                    line = line.strip()[2:]
                elif not continued and not (words[:1] and words[0] in PYTHONS and len(words) > 1
                                            and words[1].endswith(".py")):
                    continue  # output, not a command
                commands.append(line)
                continued = line.endswith("\\")
            if commands:
                yield "\n".join(commands) + "\n"
    for match in re.finditer(r"(?:^\n)((?: {4}\S.*\n)+)", text, re.M):
        lines = [line[4:] for line in match.group(1).splitlines()]
        if lines[0].split()[0] in PYTHONS | {"make"}:
            yield "\n".join(lines) + "\n"


def _logical_lines(block):
    """Lines joined across `\\` continuations and across newlines inside quotes."""
    pending = ""
    for line in block.splitlines():
        pending = pending + "\n" + line if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if pending.strip():
            yield pending
        pending = ""
    assert not pending, "unterminated command: %r" % pending


def _simple_commands(line):
    """[(argv)] of a logical line: split at && || | ; with redirections and VAR=... dropped,
    and `[--flag VALUE]` usage brackets unwrapped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, argv, skip_next = [], [], False
    for token in lexer:
        if token in _CONTROL:
            commands.append(argv)
            argv = []
        elif token in _REDIRECT or token.startswith((">", "<")):
            skip_next = True
        elif skip_next:
            skip_next = False
        elif not argv and re.match(r"^[A-Z_][A-Z0-9_]*=", token):
            continue  # an environment assignment before the program (TF_CONFIG=..., B=...)
        else:
            argv.append(token.strip("[]") if token not in ("[]",) else token)
    commands.append(argv)
    return [argv for argv in commands if argv and argv != ["..."]]


def doc_commands():
    found = []
    for page in DOC_PAGES:
        text = (REPO / page).read_text(encoding="utf-8")
        for block in _blocks(text):
            for line in _logical_lines(block):
                for argv in _simple_commands(line):
                    found.append(pytest.param(argv, id="%s: %s" % (page, " ".join(argv)[:70])))
    return found


class _Parsed(Exception):
    pass


def _parse_with_tool(target, args, monkeypatch):
    """Runs the tool `target` (a script path or `-m module`) up to its argparse call with
    `args`; returns the parsed namespace. A parse error fails the test with argparse's message."""
    def parse_args(parser, argv=None, namespace=None):
        parser.allow_abbrev = False  # a doc must spell a flag out
        namespace, extra = parser.parse_known_args(argv, namespace)
        if extra:
            parser.error("unrecognized arguments: %s" % " ".join(extra))
        raise _Parsed(namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    monkeypatch.setattr(argparse.ArgumentParser, "exit",
                        lambda self, status=0, message=None: pytest.fail(message or str(status)))
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", [target] + args)
    try:
        if target.startswith("-m "):
            runpy.run_module(target[3:], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(str(REPO / target), run_name="__main__")
    except _Parsed as parsed:
        return parsed.args[0]
    pytest.fail("%s never parsed its arguments" % target)


def _check_hparams(target, namespace):
    """A runner's --hparams must load and every key be a real hparam (files named in a doc
    that only stand for the reader's own, like params.json, are skipped)."""
    from util.hparams import load_hparams
    given = [h for h in namespace.hparams if h.lstrip().startswith("{")
             or (REPO / h).exists() or (REPO / "params" / h).exists()
             or (REPO / "params" / (h + ".json")).exists()]
    if target == "run_pretraining.py":
        import configure_pretraining
        configure_pretraining.PretrainingConfig("M", "D", **load_hparams(given))
    else:
        import configure_finetuning
        configure_finetuning.FinetuningConfig("M", "D", **load_hparams(
            given, search_dirs=[str(REPO / "params")]))


def test_the_docs_show_commands():
    commands = doc_commands()
    assert len(commands) > 30
    programs = {c.values[0][0] for c in commands}
    assert {"python", "make"} <= programs


@pytest.mark.parametrize("argv", doc_commands())
def test_doc_command_parses(argv, monkeypatch):
    program, args = argv[0], argv[1:]
    if program == "make":
        targets = re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M)
        assert all(a in targets or "=" in a for a in args), (args, targets)
    elif program in PYTHONS:
        if args[0] == "-c":
            compile(args[1], "<doc>", "exec")
            return
        if args[0] == "-m":
            target, args = "-m " + args[1], args[2:]
        else:
            target, args = args[0], args[1:]
            if target in NOT_OURS:
                return
            assert (REPO / target).is_file(), "%s: no such script" % target
        namespace = _parse_with_tool(target, args, monkeypatch)
        if target in ("run_pretraining.py", "run_finetuning.py") and namespace.hparams:
            _check_hparams(target, namespace)
    elif program.endswith(".sh"):
        assert (REPO / program).is_file(), program
    elif program == "bash":
        assert (REPO / args[0]).is_file(), args[0]
    else:
        assert program in SHELL_TOOLS, "%s: a command the docs check does not know" % program


def test_the_tensorboard_command_the_docs_name_is_installed():
    """docs/own-data.md and the demo's summary say `tensorboard --logdir ...`: setup.py
    installs it beside the toolkit, and it reads the event files the runners write."""
    import os
    import shutil
    import subprocess
    import sys
    command = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    assert os.path.exists(command) or shutil.which("tensorboard"), \
        "tensorboard is not installed in %s" % os.path.dirname(sys.executable)
    result = subprocess.run([sys.executable, "-c", "import tensorboard; "
                             "print(tensorboard.__version__)"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
