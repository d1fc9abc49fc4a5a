"""docs/hparams.md, the hparam reference, generated from configure_pretraining.py and
configure_finetuning.py: their one source is the comment beside each default.

    python scripts/hparam_reference.py --write docs/hparams.md   # regenerate
    python scripts/hparam_reference.py --check docs/hparams.md   # exit 1 and a diff if stale
    python scripts/hparam_reference.py                           # print it

The convention, in each config class's __init__ up to the first statement that reads kwargs
(everything after it derives or checks):

    # section title                      a comment block after a blank line (or first in
    # optional note, any number of lines   __init__) opens a section: title, then a note
    self.key = default  # what it does   every hparam: a comment on its line (else we fail,
                        # continued        naming the key); comment-only lines right below,
                        # here               their "#" under that one, continue it

A comment block inside a section (no blank line before it) adds to the section's note.
Defaults render as the JSON one writes in --hparams; None/True/False in comments become
null/true/false. The constructor's data_dir and model_name render as D and M; local
variables and os.path.join are followed. Computed defaults are read from the class's code,
not from comments: a literal assigned to an hparam under an `if`, and every
self._default(key, value, kwargs) call (for loops over literal tuples unrolled), each shown
as "condition: value" with the condition taken from the `if` line's comment, else its code.
"""

import argparse
import ast
import difflib
import io
import json
import os
import re
import sys
import tokenize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = "python scripts/hparam_reference.py --write docs/hparams.md"
DEFAULT_OUTPUT = os.path.join("docs", "hparams.md")
PLACEHOLDERS = {"data_dir": "D", "model_name": "M"}
# (title, runner, configure module, class)
CONFIGS = (("Pre-training", "run_pretraining.py", "configure_pretraining.py",
            "PretrainingConfig"),
           ("Fine-tuning", "run_finetuning.py", "configure_finetuning.py",
            "FinetuningConfig"))

INTRO = """\
# Hparams

Every pre-training and fine-tuning hparam, its default and its meaning. This file is
generated from the comment beside each default in `configure_pretraining.py` and
`configure_finetuning.py`: edit those and run

    {command}

(`tests/test_hparams.py` fails while this file is stale).

Hparams are given with `--hparams`: an inline JSON object (`'{{"learning_rate": 1e-4}}'`) or
the path of a JSON file (`run_finetuning.py` also finds a bare name in `params/`). Several
are merged in order, a later one's keys replacing an earlier one's (whole values: a later
`model_hparam_overrides` replaces an earlier one). Unknown keys and values of the wrong type
are refused. `D` is `--data-dir`, `M` is `--model-name`. A default followed by
`condition: value` is computed: that value applies when the condition holds and the hparams
leave the key unset.
"""


class ConventionError(Exception):
    """A configure file that breaks the convention (the message names file, line and key)."""


class Section(object):
    def __init__(self, title):
        self.title = title
        self.note = []
        self.rows = []  # [key, default, meaning, [(condition, value), ...]]


def _comments(source):
    """{line: (column, text, alone)} of every comment; alone: nothing but it on the line."""
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            alone = not tok.line[:col].strip()
            found[row] = (col, tok.string[1:].strip(), alone)
    return found


def _class(tree, name, path):
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise ConventionError("%s: no class %s" % (path, name))


def _uses_kwargs(stmt):
    return any(isinstance(n, ast.Name) and n.id == "kwargs" for n in ast.walk(stmt))


def _self_attr(target):
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
            and target.value.id == "self":
        return target.attr
    return None


def _path_value(node, env):
    """A string for Name (constructor argument or local) / str constant / os.path.join."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "os.path.join" \
            and not node.keywords:
        parts = [_path_value(arg, env) for arg in node.args]
        if all(part is not None for part in parts):
            return "/".join(parts)
    return None


def render_value(node, env, source):
    """The default as one writes it in --hparams JSON (numbers as spelled in source)."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        path = _path_value(node, env)
        return path if path is not None else _code(node, source)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ast.get_source_segment(source, node)
    return json.dumps(value)


def _code(node, source):
    """node's source on one line, without "self." (a reader writes hparams, not self.x)."""
    return " ".join(ast.get_source_segment(source, node).split()).replace("self.", "")


def _json_words(text):
    """None/True/False as JSON spells them, except in code like use_tpu=False."""
    return re.sub(r"(?<![=\w])(None|True|False)\b",
                  lambda m: {"None": "null", "True": "true", "False": "false"}[m.group(1)],
                  text)


def parse_hparams(path, class_name):
    """([Section], {key: row}) of the hparam block of class_name's __init__ in path."""
    source = open(path, encoding="utf-8").read()
    lines = source.splitlines()
    comments = _comments(source)
    cls = _class(ast.parse(source), class_name, path)
    init = next((node for node in cls.body
                 if isinstance(node, ast.FunctionDef) and node.name == "__init__"), None)
    if init is None:
        raise ConventionError("%s: %s has no __init__" % (path, class_name))
    env = {arg.arg: PLACEHOLDERS.get(arg.arg, arg.arg) for arg in init.args.args[1:]}
    name = os.path.basename(path)
    sections, rows, used = [], {}, set()
    line, block_start = init.lineno + 1, True
    for stmt in init.body:
        if _uses_kwargs(stmt):
            break
        # Comment-only lines between the last statement and this one: sections and notes.
        for row in range(line, stmt.lineno):
            if not lines[row - 1].strip():
                block_start = True
            elif row in comments and comments[row][2] and row not in used:
                text = comments[row][1]
                if block_start:
                    sections.append(Section(text))
                    block_start = False
                    continue
                if not sections:
                    sections.append(Section(""))
                sections[-1].note.append(text)
        line, block_start = stmt.end_lineno + 1, False
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            key = _self_attr(target)
            if key is None:
                if isinstance(target, ast.Name):  # a local used by later defaults
                    value = _path_value(stmt.value, env)
                    if value is not None:
                        env[target.id] = value
                continue
            inline = comments.get(stmt.end_lineno) or comments.get(stmt.lineno)
            if inline is None or inline[2] or not inline[1]:
                raise ConventionError(
                    "%s:%d: hparam %r has no comment: write what it does beside its default "
                    "(self.%s = ...  # meaning)" % (name, stmt.lineno, key, key))
            meaning = [inline[1]]
            row = stmt.end_lineno + 1
            while row in comments and comments[row][2] \
                    and comments[row][0] > stmt.col_offset:
                if comments[row][0] != inline[0]:
                    raise ConventionError(
                        "%s:%d: the comment continuing hparam %r must start in column %d, "
                        "under the one above" % (name, row, key, inline[0] + 1))
                meaning.append(comments[row][1])
                used.add(row)
                row += 1
            if key in rows:
                raise ConventionError("%s:%d: hparam %r is set twice" % (name, stmt.lineno,
                                                                        key))
            if not sections:
                sections.append(Section(""))
            rows[key] = [key, render_value(stmt.value, env, source), " ".join(meaning), []]
            sections[-1].rows.append(rows[key])
    if not rows:
        raise ConventionError("%s: no hparams found in %s.__init__" % (name, class_name))
    _computed_defaults(cls, init, rows, comments, env, source)
    return sections, rows


def _computed_defaults(cls, init, rows, comments, env, source):
    """Adds (condition, value) to rows[key][3] for conditional literal assignments and
    self._default(...) calls anywhere in the class's methods (after __init__'s hparams)."""
    def label(test):
        comment = comments.get(test.end_lineno) or comments.get(test.lineno)
        if comment and not comment[2]:
            return comment[1]
        return "`%s`" % _code(test, source)

    def visit(stmts, conditions, bound):
        for stmt in stmts:
            if isinstance(stmt, ast.If):
                visit(stmt.body, conditions + [label(stmt.test)], bound)
                visit(stmt.orelse, conditions + ["not (%s)" % label(stmt.test)], bound)
            elif isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Tuple):
                try:
                    items = ast.literal_eval(stmt.iter)
                except ValueError:
                    visit(stmt.body, conditions, bound)
                    continue
                names = [elt.id for elt in stmt.target.elts]
                for item in items:
                    visit(stmt.body, conditions, dict(bound, **dict(zip(names, item))))
            elif isinstance(stmt, (ast.For, ast.While, ast.With, ast.Try)):
                visit(stmt.body, conditions, bound)
            elif isinstance(stmt, ast.Assign) and conditions and len(stmt.targets) == 1:
                key = _self_attr(stmt.targets[0])
                if key in rows and _is_literal(stmt.value):
                    add(key, conditions, render_value(stmt.value, env, source))
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) \
                    and ast.unparse(stmt.value.func) == "self._default":
                key_node, value_node = stmt.value.args[:2]
                key = bound.get(key_node.id) if isinstance(key_node, ast.Name) \
                    else ast.literal_eval(key_node)
                if isinstance(value_node, ast.Name) and value_node.id in bound:
                    value = json.dumps(bound[value_node.id])
                else:
                    value = render_value(value_node, env, source)
                add(key, conditions, value)

    def add(key, conditions, value):
        if key not in rows:
            raise ConventionError("%s gets a computed default but is no hparam" % key)
        entry = (" and ".join(conditions) or "always", value)
        if value != rows[key][1] and entry not in rows[key][3]:
            rows[key][3].append(entry)

    for method in cls.body:
        if isinstance(method, ast.FunctionDef):
            body = method.body
            if method is init:
                body = body[next((i for i, s in enumerate(body) if _uses_kwargs(s)),
                                 len(body)):]
            visit(body, [], {})


def _is_literal(node):
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError):
        return False


def _cell(text):
    """text as Markdown (in a table cell or not): | escaped; outside `code`, < as \\< (not a
    tag) and docs/X.md as a link to X.md (this file is in docs/)."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(part if i % 2 else re.sub(r"\bdocs/([\w.-]+\.md)\b", r"[docs/\1](\1)",
                                               part.replace("<", "\\<"))
                    for i, part in enumerate(parts))


def _docstring_body(path):
    doc = ast.get_docstring(ast.parse(open(path, encoding="utf-8").read())) or ""
    return doc.split("\n\n", 1)[1].strip() if "\n\n" in doc else ""


def render(repo=REPO):
    """The whole of docs/hparams.md."""
    out = [INTRO.format(command=COMMAND)]
    for title, runner, module, class_name in CONFIGS:
        path = os.path.join(repo, module)
        sections, _ = parse_hparams(path, class_name)
        out.append("## %s (`%s`, `%s`)\n" % (title, runner, module))
        body = _docstring_body(path)
        if body:
            out.append(body + "\n")
        for section in sections:
            if section.title:
                out.append("### %s\n" % (section.title[:1].upper() + section.title[1:]))
            if section.note:
                out.append(_cell(_json_words(" ".join(section.note))) + "\n")
            out.append("| hparam | default | meaning |\n|---|---|---|")
            for key, default, meaning, computed in section.rows:
                shown = "`%s`" % default + "".join(
                    "; %s: `%s`" % (cond, value) for cond, value in computed)
                out.append("| `%s` | %s | %s |" % (key, shown.replace("|", "\\|"),
                                                    _cell(_json_words(meaning))))
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="FILE", help="write the reference to FILE")
    mode.add_argument("--check", metavar="FILE", nargs="?", const="",
                      help="exit 1 with a diff if FILE (default: the checkout's %s) is not "
                           "what --write would write" % DEFAULT_OUTPUT)
    parser.add_argument("--repo", default=REPO, help="the checkout to read (default: this one)")
    args = parser.parse_args(argv)
    try:
        text = render(args.repo)
    except ConventionError as err:
        print("hparam_reference: %s" % err, file=sys.stderr)
        return 2
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
        return 0
    if args.check is not None:
        return check(args.check or os.path.join(args.repo, DEFAULT_OUTPUT), text)
    sys.stdout.write(text)
    return 0


def check(path, text):
    """0 if the file at path is text, else 1 with a unified diff and how to regenerate."""
    try:
        current = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        current = ""
    if current == text:
        return 0
    sys.stdout.writelines(difflib.unified_diff(
        current.splitlines(True), text.splitlines(True), path + " (committed)",
        path + " (generated)"))
    print("%s is stale: run `%s`" % (path, COMMAND), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
