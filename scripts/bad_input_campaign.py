"""Feed every command-line tool bad inputs; check each stops with one clear error line.

    python scripts/bad_input_campaign.py [--work-dir DIR] [--only ID,ID] [--list]
                                         [--write-docs docs/troubleshooting.md]

The cases live in scripts/bad_input_cases.py. A case is data: a bad input (`when`), the
tool, a setup that damages a copy of shared
fixtures (a tiny pre-trained model, a fine-tuned trial, its export, task and QA data,
tfrecords; built once per run from sample_data/), the argv (`@D` stands for the copy) and
what the right result is: by default an error, whose `error:` line must match `message`.
Every case runs in this process (TensorFlow loads once) and is classified:

  clear error     exit 2, exactly one stderr line `error: ...` matching `message`, no
                  traceback (or, for a case whose right result is not an error, its check
                  passed);
  traceback       an exception escaped the tool's main(), or "Traceback" was printed;
  silently wrong  anything else: exit 0 for a bad input, another exit status, no or
                  another `error:` line than expected, or a failed check;
  data lost       a protected file that existed before the command changed or vanished
                  (checked by sha256 of every file; outranks the other outcomes).

Prints one line per case that is not a clear error and one summary line; exits 1 unless
every case is a clear error. --write-docs writes the troubleshooting page from the cases
and the error lines observed (paths shortened: D is the data dir).
"""

import argparse
import contextlib
import dataclasses
import glob
import hashlib
import importlib
import io
import json
import os
import re
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from scripts.bad_input_cases import (CASES, FINETUNE, PRETRAIN, TRIAL, Case,  # noqa: E402,F401
                                     last_line)

CLEAR, TRACEBACK, WRONG, LOST = "clear error", "traceback", "silently wrong", "data lost"
PROGRAMS = {"builder": "build_pretraining_dataset", "pretrain": "run_pretraining",
            "finetune": "run_finetuning", "evaluate": "cmrc2018_drcd_evaluate",
            "predict": "predict", "export": "export_savedmodel"}



# ----------------------------------------------------------------------------- fixtures

def quietly(main, argv):
    """Runs a CLI main for a fixture; RuntimeError with its output unless it succeeds."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(argv)
    if status != 0:
        raise RuntimeError("fixture step %s failed (%s):\n%s" % (argv, status, out.getvalue()))


def corpus_lines():
    lines = []
    for path in sorted(glob.glob(os.path.join(REPO, "sample_data", "corpus", "*.txt"))):
        with open(path, encoding="utf-8") as f:
            lines += [line.strip() for line in f if line.strip()]
    return lines


def write_json(path, value, lines=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        if lines:
            f.write("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in value))
        else:
            json.dump(value, f, ensure_ascii=False)


def write_task_data(work):
    """chnsenticorp (the bundled sample), tiny cmrc2018 QA and ocnli JSON-lines tasks."""
    data = os.path.join(work, "finetuning_data")
    shutil.copytree(os.path.join(REPO, "sample_data", "finetuning_data", "chnsenticorp"),
                    os.path.join(data, "chnsenticorp"))
    lines = corpus_lines()
    paragraphs = [{"context": lines[3 * i] + lines[3 * i + 1], "qas": [{
        "id": "q%d" % i, "question": "哪个词出现在第一句？",
        "answers": [{"text": lines[3 * i][2:6], "answer_start": 2}]}]} for i in range(8)]
    for split, part in (("train", paragraphs[:6]), ("dev", paragraphs[6:])):
        write_json(os.path.join(data, "cmrc2018", split + ".json"),
                   {"version": "t", "data": [{"title": "t", "paragraphs": part}]})
    labels = ["entailment", "neutral", "contradiction"]
    pairs = [{"sentence1": lines[i], "sentence2": lines[i + 1], "label": labels[i % 3]}
             for i in range(24)]
    write_json(os.path.join(data, "ocnli", "train.json"), pairs[:16], lines=True)
    write_json(os.path.join(data, "ocnli", "dev.json"), pairs[16:], lines=True)
    write_json(os.path.join(work, "preds.json"),
               {"q%d" % i: lines[3 * i][2:6] for i in range(6, 8)})


def build_fixtures(root):
    """The starting state of every case, built at the case path D (so the paths the
    tools record stay valid in each copy) and then moved to F. Returns F."""
    import build_pretraining_dataset
    import export_savedmodel
    import run_finetuning
    import run_pretraining
    work, fixture = case_dir(root), os.path.join(root, "F")
    for path in (work, fixture):
        shutil.rmtree(path, ignore_errors=True)
    os.makedirs(work)
    shutil.copy(os.path.join(REPO, "sample_data", "vocab.txt"), work)
    shutil.copytree(os.path.join(REPO, "sample_data", "corpus"), os.path.join(work, "corpus"))
    write_task_data(work)
    for out, seed in (("pretrain_tfrecords", "1"), ("tfrecords_seed7", "7")):
        quietly(build_pretraining_dataset.main, [
            "--corpus-dir", os.path.join(work, "corpus"), "--vocab-file",
            os.path.join(work, "vocab.txt"), "--output-dir", os.path.join(work, out),
            "--max-seq-length", "64", "--num-out-files", "1", "--seed", seed])
    model = ["--data-dir", work, "--model-name", "M", "--hparams"]
    quietly(run_pretraining.main, model + [json.dumps(PRETRAIN)])
    quietly(run_finetuning.main, model + [json.dumps(FINETUNE)])
    quietly(export_savedmodel.main, [TRIAL.replace("@D", work), "--out",
                                     os.path.join(work, "export")])
    os.rename(work, fixture)
    return fixture


def case_dir(root):
    return os.path.join(root, "D")


# ----------------------------------------------------------------------------- running

@dataclasses.dataclass
class Outcome:
    case: Case
    kind: str  # CLEAR, TRACEBACK, WRONG or LOST
    detail: str  # what happened, for a case that is not a clear error
    error_line: str  # the first `error:` line seen ("" if none)
    volatile: dict  # run-specific text -> placeholder (see the setups)


def digest(root):
    """{path relative to root: sha256} of every file under root."""
    sums = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                sums[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return sums


def lost_files(case, before, after):
    """Protected files that changed or vanished."""
    def protected(path):
        return (any(path.startswith(p) for p in case.protect)
                and not any(path.startswith(w) for w in case.writes))
    return sorted(p for p, sha in before.items() if protected(p) and after.get(p) != sha)


def resolve_main(case):
    if callable(case.program):
        return case.program
    return importlib.import_module(case.program or PROGRAMS[case.tool]).main


def program_name(case):
    """The tool as typed: run_pretraining.py, predict.py, scripts/export_hf.py."""
    name = case.program if isinstance(case.program, str) else PROGRAMS.get(case.tool,
                                                                           case.tool)
    return name.replace(".", "/") + ".py"


def invoke(case, argv):
    """(exit status, stdout, stderr, escaped exception or "") of the case's main(argv),
    without TF_CONFIG (a case that needs it sets it) and named as on a command line."""
    main = resolve_main(case)
    out, err = io.StringIO(), io.StringIO()
    kwargs = {"stdin": io.BytesIO(case.stdin)} if case.stdin is not None else {}
    saved_config, saved_argv0 = os.environ.pop("TF_CONFIG", None), sys.argv[0]
    sys.argv[0] = program_name(case)
    status, escaped = None, ""
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv, **kwargs)
    except SystemExit as e:  # argparse, or a tool calling sys.exit
        status = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # the point: any exception escaping main is a finding
        escaped = "%s: %s" % (type(e).__name__, str(e).strip().split("\n")[0])
    finally:
        sys.argv[0] = saved_argv0
        if saved_config is not None:
            os.environ["TF_CONFIG"] = saved_config
    return status, out.getvalue(), err.getvalue(), escaped


def judge_error(case, status, err):
    """Why the result is not the expected clear error (None if it is)."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    if status == 0:
        return "exit 0, no error"
    if status != 2 or len(lines) != 1:
        return "exit %s with %d `error:` lines: %s" % (status, len(lines), last_line(err))
    if not re.search(case.message, lines[0], re.I):
        return "the error does not match /%s/: %s" % (case.message, lines[0])
    return None


def classify(case, status, out, err, escaped, lost, work):
    """(kind, detail): data lost outranks a traceback, which outranks a wrong result."""
    crashed = escaped or ("Traceback (most recent call last)" in out + err
                          and "traceback printed: %s" % last_line(err))
    wrong = None
    if not crashed:
        wrong = judge_error(case, status, err) if case.expect == "error" \
            else case.expect(work, status, out, err)
    changed = lost and "changed or removed: %s" % ", ".join(lost[:5])
    kind = LOST if lost else TRACEBACK if crashed else WRONG if wrong else CLEAR
    return kind, "; ".join(f for f in (changed, crashed, wrong) if f)


def run_case(case, fixture, work):
    """Copies the fixture to work, damages it, runs the case and classifies it."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(fixture, work)
    volatile = (case.setup(work) if case.setup else None) or {}
    argv = [arg.replace("@D", work) for arg in case.argv]
    before = digest(work)
    status, out, err, escaped = invoke(case, argv)
    lost = lost_files(case, before, digest(work))
    kind, detail = classify(case, status, out, err, escaped, lost, work)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    return Outcome(case, kind, detail, errors[0] if errors else "", volatile)


def run_campaign(root, cases, log=None):
    """Builds the fixtures under root and runs every case; returns the Outcomes."""
    os.makedirs(root, exist_ok=True)
    fixture = build_fixtures(os.path.abspath(root))
    outcomes = []
    for case in cases:
        outcome = run_case(case, fixture, case_dir(os.path.abspath(root)))
        outcomes.append(outcome)
        if log and outcome.kind != CLEAR:
            log(report_line(outcome, root))
    return outcomes


# ----------------------------------------------------------------------------- reports

def shorten(text, root, volatile):
    """Machine-independent text: the work dir is D, the repo REPO, run-specific values
    their placeholders."""
    work = case_dir(os.path.abspath(root))
    for path, name in ((work, "D"), (os.path.realpath(work), "D"), (REPO, "REPO")):
        text = text.replace(path, name)
    text = re.sub(r"(\.[\w.-]+\.)[a-z0-9_]{8}(\.tmp)", r"\1XXXXXXXX\2", text)  # mkstemp
    for value, placeholder in volatile.items():
        text = re.sub(r"(?<![\w.])%s(?![\w])" % re.escape(value), placeholder, text)
    return text


def report_line(outcome, root):
    return "%s (%s, %s): %s" % (outcome.case.id, outcome.case.when, outcome.kind,
                                shorten(outcome.detail, root, outcome.volatile))


def summary_line(outcomes):
    counts = [sum(o.kind == kind for o in outcomes) for kind in (CLEAR, TRACEBACK, WRONG, LOST)]
    return "%d cases: %d clear errors, %d tracebacks, %d silently wrong, %d data lost" % (
        (len(outcomes),) + tuple(counts))


def code(text):
    """text as a Markdown code span inside a table cell."""
    fence = "`" * (max([len(run) for run in re.findall("`+", text)] or [0]) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return "%s%s%s%s%s" % (fence, pad, text.replace("|", "\\|"), pad, fence)


DOC_INTRO = """\
# Troubleshooting: bad inputs

Every bad input stops with one line on stderr, `error: ...`, naming the file (line,
column) or hparam at fault and what was expected, exit status 2, before anything already
written is touched. The table lists the error line each case of the bad-input campaign
printed when this page was generated (`D` is the data dir); rows marked *not yet* are
inputs a tool does not yet handle as it should, with what it did instead.

Run the campaign (a minute or two on two cores; it builds a tiny model first):

    python scripts/bad_input_campaign.py [--work-dir DIR] [--only ID,ID] [--list]

It prints one line per case that is not a clear error and a summary line, and exits
non-zero unless every case is a clear error with its files intact. This page is
generated, and checked against the cases by `tests/test_bad_input_campaign.py`:

    python scripts/bad_input_campaign.py --write-docs docs/troubleshooting.md

| when... | tool | what you get | case |
|---|---|---|---|
"""


def render_docs(outcomes, root):
    rows = []
    for o in outcomes:
        if o.kind != CLEAR:
            got = "*not yet* (%s): %s" % (o.kind, code(shorten(o.detail, root, o.volatile)))
        elif o.case.expect == "error":
            got = code(shorten(o.error_line, root, o.volatile))
        else:
            got = o.case.message
        rows.append("| %s | %s | %s | %s |" % (o.case.when.replace("|", "\\|"),
                                                code(program_name(o.case)), got,
                                                code(o.case.id)))
    return DOC_INTRO + "\n".join(rows) + "\n"


def select(cases, only):
    """The cases named in only, a comma-separated id list (all if empty)."""
    if not only:
        return list(cases)
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    known = {case.id: case for case in cases}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError("unknown case id(s): %s (see --list)" % ", ".join(unknown))
    return [known[name] for name in wanted]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", help="scratch directory (default: a new temp dir)")
    parser.add_argument("--only", help="comma-separated case ids to run")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--write-docs", metavar="FILE",
                        help="write the troubleshooting page from this run")
    args = parser.parse_args(argv)
    if args.list:
        for case in CASES:
            print("%-32s %-9s %s" % (case.id, case.tool, case.when))
        return 0
    if args.write_docs and args.only:
        parser.error("--write-docs documents every case: drop --only")
    try:
        cases = select(CASES, args.only)
    except ValueError as e:
        parser.error(str(e))
    root = args.work_dir or tempfile.mkdtemp(prefix="bad_inputs_")
    try:
        outcomes = run_campaign(root, cases, log=lambda line: print(line, flush=True))
    finally:
        if not args.work_dir:  # ours: about 120 MB of copies
            shutil.rmtree(root, ignore_errors=True)
    print(summary_line(outcomes), flush=True)
    if args.write_docs:
        with open(args.write_docs, "w", encoding="utf-8") as f:
            f.write(render_docs(outcomes, root))
    return 0 if all(o.kind == CLEAR for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
