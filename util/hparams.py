"""Reading and checking hparams: JSON strings or files, with errors that say where.

`--hparams` takes one or more inline JSON objects or paths of JSON files, merged in order
(e.g. a params file, then '{"num_train_epochs": 10}'). A parse error
names the file (or "--hparams"), the line and the column, and spells out the usual
culprit (a trailing comma, which the params example of the published Chinese ELECTRA
README, github.com/ymcui/Chinese-ELECTRA, has). Unknown keys fail with the closest valid
names.
"""

import difflib
import json
import os
import re

from util import fs
from util.errors import InputError


def parse_json(text, source):
    """json.loads with an error naming source, line and column. A key given twice in one
    object is an error too (json.loads would silently keep the last value)."""
    try:
        return json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(pairs, text,
                                                                             source))
    except json.JSONDecodeError as e:
        hint = ""
        before = text[:e.pos].rstrip()
        if before.endswith(",") and text[e.pos:e.pos + 1] in ("}", "]"):
            hint = " (a trailing comma before '%s': JSON does not allow it)" % text[e.pos]
        line_text = text.splitlines()[e.lineno - 1] if text.splitlines() else ""
        raise InputError("%s:%d:%d: invalid JSON: %s%s\n    %s\n    %s^"
                         % (source, e.lineno, e.colno, e.msg, hint, line_text,
                            " " * (e.colno - 1)))


def _unique_keys(pairs, text, source):
    """The dict of one JSON object's (key, value) pairs; InputError on a repeated key."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            key_pattern = re.compile(r'"%s"\s*:' % re.escape(json.dumps(key)[1:-1]))
            places = [text.count("\n", 0, m.start()) + 1 for m in key_pattern.finditer(text)]
            where = (" (it appears on lines %s)" % ", ".join(map(str, places))
                     if len(places) > 1 else "")
            raise InputError("%s: key %r is given twice in one object%s: JSON would keep "
                             "only the last value, so remove one" % (source, key, where))
        seen.add(key)
    return dict(pairs)


def load_hparams(arg, search_dirs=(), source="--hparams"):
    """Returns the dict given by `arg`: inline JSON, a .json path, or a bare file name
    found in one of `search_dirs` (e.g. params/). None or "" gives {}. A list of such
    arguments is merged in order, a later one's keys replacing an earlier one's (whole
    values: a later model_hparam_overrides replaces an earlier one)."""
    if isinstance(arg, (list, tuple)):
        merged = {}
        for i, one in enumerate(arg):  # an inline error names which of them
            merged.update(load_hparams(one, search_dirs, "--hparams #%d" % (i + 1)
                                       if len(arg) > 1 else source))
        return merged
    if arg is None or not arg.strip():
        return {}
    text = arg
    if not arg.lstrip().startswith(("{", "[")):
        path = _find_file(arg, search_dirs)
        try:
            text = fs.read_text(path)  # a local file, gs:// or ram://
        except UnicodeDecodeError as e:
            raise InputError("%s: not UTF-8 text (byte %d)" % (path, e.start))
        source = path
    params = parse_json(text, source)
    if not isinstance(params, dict):
        raise InputError("%s: expected a JSON object of hparams ({\"key\": value, ...}), "
                         "got %s" % (source, type(params).__name__))
    return params


def _find_file(name, search_dirs):
    candidates = [name] + [os.path.join(d, name) for d in search_dirs]
    if not name.endswith(".json"):
        candidates += [os.path.join(d, name + ".json") for d in search_dirs]
    for path in candidates:
        if fs.isfile(path):
            return path
    where = ", ".join([fs.abspath(name)] + list(search_dirs))
    raise InputError("--hparams %r is neither a JSON object nor an existing file "
                     "(looked in: %s)" % (name, where))


def closest_names(name, valid_names, n=3):
    return difflib.get_close_matches(name, list(valid_names), n=n, cutoff=0.5)


def check_known_keys(params, valid_names, source):
    """Raises InputError listing every key of params not in valid_names, with suggestions."""
    valid = set(valid_names)
    problems = []
    for key in sorted(k for k in params if k not in valid):
        suggestions = closest_names(key, valid)
        hint = ("did you mean %s?" % " or ".join(repr(s) for s in suggestions)
                if suggestions else "see the documented keys")
        problems.append("unknown key %r (%s)" % (key, hint))
    if problems:
        raise InputError("%s: %s" % (source, "; ".join(problems)))


def check_value_type(key, value, default, source):
    """Rejects values whose JSON type cannot stand in for the default's type."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise InputError("%s: hparam %r should be a %s like %r, got %r"
                         % (source, key, type(default).__name__, default, value))
    return value
