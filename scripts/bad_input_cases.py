"""The cases of the bad-input campaign (scripts/bad_input_campaign.py): each a bad input to one
tool, the setup that makes it from the shared fixtures, and the right result.

A setup(work) damages the copy of the fixtures at work (D); it may return {run-specific
text: placeholder} for values an error may quote (the docs scrub them). A case's argv uses
"@D" for that copy.
"""

import dataclasses
import json
import os
import re
import shutil
import socket
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRETRAIN = {"model_size": "tiny", "max_seq_length": 64, "train_batch_size": 8,
            "num_train_steps": 10, "num_warmup_steps": 2, "save_checkpoints_steps": 10,
            "keep_checkpoint_max": 1, "learning_rate": 1e-3, "seed": 1, "save_graph_def": False}
FINETUNE = {"model_size": "tiny", "task_names": ["chnsenticorp"], "max_seq_length": 64,
            "train_batch_size": 8, "eval_batch_size": 16, "num_train_epochs": 1.0,
            "learning_rate": 1e-3, "log_every_steps": 100, "save_graph_def": False}
QA = dict(FINETUNE, task_names=["cmrc2018"], max_query_length=16, doc_stride=32,
          do_eval=False)
# The featurisation cache is rebuilt whenever its inputs change: not user data.
CACHES = ("models/M/finetuning_tfrecords/",)
TFRECORD = "pretrain_data.tfrecord-0-of-1"
TRIAL = "@D/models/M/finetuning_models/chnsenticorp_model_1"


# ----------------------------------------------------------------------------- setups
# Each returns a setup(work): it damages the copy, and may return {run-specific text:
# placeholder} for values an error may quote (they are scrubbed from the docs).

def put(rel, data):
    def setup(work):
        path = os.path.join(work, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return setup


def edit(rel, change):
    """change(text) -> new text of the UTF-8 file D/rel."""
    def setup(work):
        with open(os.path.join(work, rel), encoding="utf-8") as f:
            text = f.read()
        put(rel, change(text))(work)
    return setup


def edit_bytes(rel, change):
    """change(bytes) -> new bytes of the file D/rel."""
    def setup(work):
        with open(os.path.join(work, rel), "rb") as f:
            data = f.read()
        put(rel, change(data))(work)
    return setup


def edit_json(rel, change):
    """change(value) mutates the parsed JSON file D/rel in place."""
    def json_change(text):
        value = json.loads(text)
        change(value)
        return json.dumps(value, ensure_ascii=False)
    return edit(rel, json_change)


def chain(*setups):
    """One setup running several; their placeholders merged."""
    def setup(work):
        merged = {}
        for step in setups:
            merged.update(step(work) or {})
        return merged
    return setup


def first_tokens(rel, count):
    """D/rel: the first count lines of D/vocab.txt (a smaller vocab)."""
    def setup(work):
        with open(os.path.join(work, "vocab.txt"), encoding="utf-8") as f:
            put(rel, "".join(f.readlines()[:count]))(work)
    return setup


def copy_from_repo(rel):
    def setup(work):
        shutil.copy(os.path.join(REPO, rel), work)
    return setup


def copy_hf_fixture(kind, fmt, rel):
    """A Hugging Face model dir written by transformers (tests/fixtures/hf) at D/rel."""
    def setup(work):
        shutil.copytree(os.path.join(REPO, "tests", "fixtures", "hf", kind, fmt),
                        os.path.join(work, rel))
    return setup


def both(*setups):
    def setup(work):
        for one in setups:
            one(work)
    return setup


def remove(rel):
    return lambda work: os.remove(os.path.join(work, rel))


def replace_lines(rel, lines_of):
    """lines_of(list of lines) -> new list, for a text file."""
    return edit(rel, lambda text: "\n".join(lines_of(text.split("\n"))))


def swap_tfrecords(work):
    """The data rebuilt with another seed, as `build ... --overwrite` would leave it."""
    shutil.rmtree(os.path.join(work, "pretrain_tfrecords"))
    os.rename(os.path.join(work, "tfrecords_seed7"), os.path.join(work, "pretrain_tfrecords"))


def damage_tfrecord(how):
    """Cuts the shard in the middle, or flips bytes there (inside some record's data)."""
    def setup(work):
        path = os.path.join(work, "pretrain_tfrecords", TFRECORD)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        middle = len(data) // 2
        if how == "cut":
            del data[middle:]
        else:
            data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
        with open(path, "wb") as f:
            f.write(bytes(data))
    return setup


def hold_lock(name, script):
    """Setup: the lock a first run holds (a live process that is not us, on this host):
    models/M/.lock for pre-training, models/M/.finetune_<task>.lock for fine-tuning."""
    def setup(work):
        started = time.strftime("%Y-%m-%dT%H:%M:%S")
        pid, host = os.getppid(), socket.gethostname()
        put("models/M/" + name, json.dumps({
            "host": host, "pid": pid, "started": started,
            "command": "python %s --data-dir %s --model-name M" % (script, work)}))(work)
        return {started: "STARTED", host: "HOST", str(pid): "PID"}
    return setup


def qa_answers(change):
    """change(qa dict) for every question of the cmrc2018 training file."""
    def each(dataset):
        for paragraph in dataset["data"][0]["paragraphs"]:
            for qa in paragraph["qas"]:
                change(qa)
    return edit_json("finetuning_data/cmrc2018/train.json", each)


def set_answers(qa, **fields):
    qa["answers"] = [dict(a, **fields) for a in qa["answers"]]


# ----------------------------------------------------------------------------- cases

@dataclasses.dataclass
class Case:
    id: str
    tool: str  # builder, pretrain, finetune, evaluate, predict or export
    when: str  # the bad input, as the troubleshooting table says it
    setup: object  # setup(work) as above, or None
    argv: list  # "@D" stands for the work dir
    expect: object = "error"  # or check(work, status, stdout, stderr) -> problem or None
    message: str = ""  # regex for the error line; for a check, the right result in words
    stdin: bytes = None  # predict's input
    protect: tuple = ("",)  # paths (relative to D) whose files must survive
    writes: tuple = CACHES  # ... except these, which the tool may legitimately rewrite
    program: object = None  # the CLI module name (default: the tool's) or a main callable


BUILD = {"--corpus-dir": "@D/corpus", "--vocab-file": "@D/vocab.txt",
         "--output-dir": "@D/out", "--max-seq-length": "64"}


def flags(base, changes):
    """argv of a flag dict; a None value is a bare flag."""
    merged = dict(base, **changes)
    return [item for key, value in merged.items()
            for item in ([key] if value is None else [key, value])]


def builder(id, when, message, setup=None, **changes):
    argv = flags(BUILD, {"--" + k.replace("_", "-"): v for k, v in changes.items()})
    return Case(id, "builder", when, setup, argv, message=message)


def pretrain(id, when, message, setup=None, model="fresh", hparams=None, data_dir="@D",
             **changes):
    hparams = hparams or json.dumps(dict(PRETRAIN, **changes))
    return Case(id, "pretrain", when, setup, ["--data-dir", data_dir, "--model-name", model,
                                               "--hparams", hparams], message=message)


def finetune(id, when, message, setup=None, model="M", hparams=None, base=FINETUNE,
             **changes):
    hparams = hparams or json.dumps(dict(base, **changes))
    return Case(id, "finetune", when, setup, ["--data-dir", "@D", "--model-name", model,
                                               "--hparams", hparams], message=message)


def evaluate(id, when, message, setup=None, dataset="@D/finetuning_data/cmrc2018/dev.json",
             preds="@D/preds.json", extra=()):
    return Case(id, "evaluate", when, setup, [dataset, preds] + list(extra), message=message)


def predict(id, when, message, lines, model="@D/export", extra=()):
    stdin = lines if isinstance(lines, bytes) else "".join(
        line + "\n" for line in lines).encode("utf-8")
    return Case(id, "predict", when, None, [model] + list(extra), message=message,
                stdin=stdin)


def export(id, when, message, setup=None, model=TRIAL, out="@D/export2", extra=()):
    return Case(id, "export", when, setup, [model, "--out", out] + list(extra),
                message=message)


def export_hf(id, when, message, setup=None, model="@D/models/M", out="@D/hf", extra=()):
    return Case(id, "export", when, setup, [model, out] + list(extra), message=message,
                program="scripts.export_hf")


def import_hf(id, when, message, setup=None, hf="@D/hf_in", out="@D/models/imported",
              extra=()):
    return Case(id, "import", when, setup, [hf, "--out", out] + list(extra), message=message,
                program="scripts.import_hf")


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing on stderr)"


def undecodable_counted(work, status, out, err):
    """Without --strict, undecodable corpus bytes are replaced and counted."""
    if status != 0:
        return "exit %s: %s" % (status, last_line(err))
    if not re.search(r"\d+ undecodable byte sequences replaced in \d+ files?", out + err):
        return "the replaced bytes were not counted"
    return None


def unlabelled_test_predicted(work, status, out, err):
    """do_test on a test set without labels: predictions, but no score of them."""
    if status != 0:
        return "exit %d: %s" % (status, last_line(err))
    results = os.path.join(work, "models", "M", "results")
    preds = os.path.join(results, "chnsenticorp_test_preds.json")
    if not os.path.exists(preds):
        return "no test predictions written"
    with open(os.path.join(work, "finetuning_data", "chnsenticorp", "test.tsv"),
              encoding="utf-8") as f:
        rows = len(f.read().splitlines()) - 1  # the header
    with open(preds, encoding="utf-8") as f:
        if len(json.load(f)) != rows:
            return "not one prediction per test row"
    with open(os.path.join(results, "chnsenticorp_results.json"), encoding="utf-8") as f:
        record = json.load(f)
    scores = [t["results"]["test"] for t in record["trials"] if t["results"].get("test")]
    if scores or record["summary"].get("test"):
        return "a score of the unlabelled test set was recorded: %s" % scores
    if re.search(r"^chnsenticorp: .*(accuracy|loss)", out, re.M):
        return "a score of the unlabelled test set was printed"
    return None


# What an error about a split with no examples must match: `no (usable )?examples|empty`,
# also when the message names the split.
NO_EXAMPLES = r"no (usable )?((train|dev|test|training) )?examples|empty"
BAD_CORPUS = "好的东西".encode("utf-8") + b"\xff\xfe" + "很好。\n".encode("utf-8")
TRAILING_COMMA = '{"model_size": "tiny",\n "learning_rate": 1e-3,\n}\n'
GOOD_INPUT = '{"text": "房间很干净。"}'
UNLABELLED_TEST = edit("finetuning_data/chnsenticorp/test.tsv", lambda text: "\n".join(
    ["qid\ttext_a"] + ["%d\t%s" % (i, row.split("\t")[1])
                       for i, row in enumerate(text.splitlines()[1:])]) + "\n")

CASES = [
    builder("builder-corpus-missing", "the corpus dir does not exist", "does not exist",
            corpus_dir="@D/no_corpus"),
    builder("builder-corpus-empty", "the corpus dir holds only empty files",
            "no non-empty files", put("empty/a.txt", ""), corpus_dir="@D/empty"),
    builder("builder-output-exists", "the output dir already holds tfrecords (no "
            "--overwrite)", "--overwrite", output_dir="@D/pretrain_tfrecords"),
    builder("builder-output-is-file", "--output-dir is an existing file",
            "not a directory", put("notes.txt", "keep me"), output_dir="@D/notes.txt"),
    builder("builder-output-in-corpus", "--output-dir is inside --corpus-dir",
            "inside --corpus-dir", output_dir="@D/corpus/out"),
    builder("builder-vocab-missing", "the vocab file does not exist", "vocab file not found",
            vocab_file="@D/no_vocab.txt"),
    builder("builder-vocab-empty-line", "the vocab has an empty line between tokens",
            r"line 1001: empty line", replace_lines("vocab.txt", lambda ls: ls[:1000] + [""]
                                                  + ls[1000:])),
    builder("builder-vocab-no-mask", "the vocab lacks [MASK]", r"\[MASK\]",
            replace_lines("vocab.txt", lambda ls: [t for t in ls if t != "[MASK]"])),
    builder("builder-vocab-not-utf8", "the vocab is not UTF-8", "not valid UTF-8",
            put("latin1_vocab.txt", "[PAD]\n[UNK]\ncaf\xe9\n".encode("latin-1")),
            vocab_file="@D/latin1_vocab.txt"),
    builder("builder-seq-too-short", "--max-seq-length is too short for [CLS] and [SEP]",
            "--max-seq-length must be at least", max_seq_length="2"),
    builder("builder-processes-zero", "--num-processes is 0",
            "--num-processes must be at least 1", num_processes="0"),
    builder("builder-ref-short", "the --ref-file has fewer lines than its corpus file",
            "differ in length", chain(put("small/a.txt", "北京是首都。\n上海很大。\n"),
                                        put("ref/a.txt", "北京 是 首都 。\n")),
            corpus_dir="@D/small", segmenter="ref", ref_file="@D/ref/{path}"),
    builder("builder-dep-label", "a --dep-file item has an unknown DEP label",
            "unknown DEP label", chain(put("small/a.txt", "他来了。\n"),
                                         put("dep/a.txt", "他/SBV 来/XYZ 了/RAD 。/WP\n")),
            corpus_dir="@D/small", segmenter="jieba", linguistic_labels=None,
            dep_file="@D/dep/{path}"),
    dataclasses.replace(
        builder("builder-undecodable-counted", "the corpus has undecodable bytes (no "
                "--strict)", "", put("bad/a.txt", BAD_CORPUS), corpus_dir="@D/bad"),
        expect=undecodable_counted, message="exit 0; the bytes are replaced and counted: "
        "`N undecodable byte sequences replaced in M files (first: path:line)`"),
    builder("builder-undecodable-strict", "the corpus has undecodable bytes and --strict "
            "is given", "undecodable|UTF-8", put("bad/a.txt", BAD_CORPUS),
            corpus_dir="@D/bad", strict=None),

    pretrain("pretrain-trailing-comma", "the hparams JSON has a trailing comma",
             "invalid JSON", put("params.json", TRAILING_COMMA), hparams="@D/params.json"),
    pretrain("pretrain-key-twice", "an hparams JSON gives a key twice", "given twice",
             hparams='{"learning_rate": 1e-3, "model_size": "tiny", "learning_rate": 2e-3}'),
    pretrain("pretrain-unknown-key", "an hparam key is misspelt", "learning_rate",
             hparams='{"learnig_rate": 1e-3}'),
    pretrain("pretrain-wrong-type", "an hparam has the wrong type", "num_train_steps",
             num_train_steps="100"),
    pretrain("pretrain-hparams-missing", "--hparams names a file that does not exist",
             "no_params.json", hparams="@D/no_params.json"),
    pretrain("pretrain-hparams-not-object", "--hparams is JSON but not an object",
             "JSON object", hparams="[1, 2]"),
    pretrain("pretrain-vocab-size", "the vocab has another size than vocab_size",
             "vocab_size", vocab_size=30522),
    pretrain("pretrain-bucket-no-vocab", "a bucket data dir has no vocab",
             "vocab file not found: ram://", data_dir="ram://campaign/D"),
    pretrain("pretrain-vocab-missing", "the data dir has no vocab.txt", "vocab file not found",
             remove("vocab.txt")),
    pretrain("pretrain-checkpoint-vocab", "the model dir's checkpoint has another vocab size",
             "embedding table", first_tokens("vocab.txt", 5000), model="M",
             vocab_size=5000),
    pretrain("pretrain-other-vocab", "a model dir is reused with another vocab of the same "
             "size", "another vocab", replace_lines("vocab.txt", lambda ls: ls[:200]
                                                   + ls[201:202] + ls[200:201] + ls[202:]),
             model="M"),
    pretrain("pretrain-no-tfrecords", "no tfrecords match pretrain_tfrecords",
             "no tfrecords found", pretrain_tfrecords="@D/nothing/*.tfrecord"),
    pretrain("pretrain-seq-length", "the tfrecords' length differs from max_seq_length",
             "length 64 but max_seq_length is 128", max_seq_length=128),
    pretrain("pretrain-wwm-no-word-starts", "whole_word_masking is set but the tfrecords "
             "lack word_starts", "word_starts", whole_word_masking=True),
    pretrain("pretrain-ngram-no-wwm", "ngram_max > 1 without whole_word_masking",
             "whole_word_masking", ngram_max=2),
    pretrain("pretrain-lert-electra", "lert_objective with the ELECTRA objective",
             "electra_objective", lert_objective=True, whole_word_masking=True),
    pretrain("pretrain-mixed-precision", "mixed_precision is not none, bf16 or fp16",
             "mixed_precision", mixed_precision="float16"),
    pretrain("pretrain-fp16-cpu", "mixed_precision fp16 on a machine without a GPU", "GPU",
             mixed_precision="fp16"),
    pretrain("pretrain-distribution", "distribution is unknown", "distribution",
             distribution="mirrorred"),
    pretrain("pretrain-tpu-batch", "use_tpu with a batch that does not split over "
             "num_tpu_cores", "num_tpu_cores", use_tpu=True, num_tpu_cores=3),
    pretrain("pretrain-no-tf-config", "multi_worker_mirrored without TF_CONFIG", "TF_CONFIG",
             distribution="multi_worker_mirrored"),
    pretrain("pretrain-model-dir-file", "the model dir cannot be created (a file is in "
             "the way)", "cannot write to the model dir", put("models/blocked", "keep me"),
             model="blocked"),
    pretrain("pretrain-init-checkpoint", "init_checkpoint does not exist", "not found",
             init_checkpoint="@D/nowhere/model.ckpt"),
    pretrain("pretrain-derived-key", "max_predictions_per_seq is set (it is derived)",
             "derived", max_predictions_per_seq=20),
    pretrain("pretrain-model-size", "model_size is unknown", "model_size", model_size="huge"),
    pretrain("pretrain-heads", "hidden_size is not a multiple of num_attention_heads",
             "num_attention_heads", model_hparam_overrides={"num_attention_heads": 3}),
    pretrain("pretrain-zero-layers", "model_hparam_overrides sets num_hidden_layers 0",
             "num_hidden_layers", model_hparam_overrides={"num_hidden_layers": 0}),
    pretrain("pretrain-size-changed", "a finished model dir is rerun with another "
             "model_size", "shape|discriminator|hidden_size|model_size", model="M",
             model_size="small"),
    pretrain("pretrain-data-changed", "a model dir is rerun after its tfrecords were "
             "rebuilt differently", r"\bdata\b.*(chang|differ|replac|rebuil)|"
             r"(chang|differ|replac|rebuil)\w*.*\bdata\b", swap_tfrecords, model="M"),
    pretrain("pretrain-locked", "another run holds the model dir", "in use",
             hold_lock(".lock", "run_pretraining.py"), model="M"),
    pretrain("pretrain-truncated-tfrecord", "a tfrecord file is cut off in the middle",
             re.escape(TFRECORD), damage_tfrecord("cut")),
    pretrain("pretrain-corrupt-tfrecord", "a tfrecord file has flipped bytes in a record",
             re.escape(TFRECORD), damage_tfrecord("flip")),

    finetune("finetune-trailing-comma", "the hparams JSON has a trailing comma",
             "invalid JSON", put("params.json", TRAILING_COMMA), hparams="@D/params.json"),
    finetune("finetune-unknown-key", "an hparam key is misspelt", "num_train_epochs",
             num_train_epoch=1),
    finetune("finetune-unknown-task", "the task name is unknown", "unknown task",
             task_names=["chnsenticrop"]),
    finetune("finetune-task-twice", "task_names lists a task twice (also as its alias)",
             "twice", task_names=["msra-ner", "msra_ner"]),
    finetune("finetune-no-tasks", "task_names is empty", "at least one task", task_names=[]),
    finetune("finetune-tsv-columns", "a TSV row has the wrong number of columns",
             r"train.tsv:3: 3 tab-separated columns", replace_lines(
                 "finetuning_data/chnsenticorp/train.tsv",
                 lambda ls: ls[:2] + [ls[2] + "\textra"] + ls[3:])),
    finetune("finetune-unknown-label", "a label is not in the task's label set",
             r"dev.tsv:2: unknown label '2'", replace_lines(
                 "finetuning_data/chnsenticorp/dev.tsv",
                 lambda ls: ls[:1] + ["2" + ls[1][1:]] + ls[2:])),
    finetune("finetune-not-utf8", "a task file is not UTF-8", "not UTF-8",
             put("finetuning_data/chnsenticorp/train.tsv", b"label\ttext_a\n1\t\xff\xfe\n")),
    finetune("finetune-missing-split", "a split file is missing", "no dev file found",
             remove("finetuning_data/chnsenticorp/dev.tsv")),
    finetune("finetune-bad-json-line", "a JSON-lines task file has a broken line",
             r"train.json:2: invalid JSON", replace_lines(
                 "finetuning_data/ocnli/train.json", lambda ls: ls[:1] + [ls[1][:20]]
                 + ls[2:]), task_names=["ocnli"]),
    finetune("finetune-json-missing-field", "a JSON-lines record lacks a field",
             "missing field 'sentence2'", edit("finetuning_data/ocnli/dev.json", lambda t:
                                               re.sub(r', "sentence2": "[^"]*"', "", t,
                                                      count=1)), task_names=["ocnli"]),
    finetune("finetune-qa-missing-key", "a QA file lacks data/paragraphs/context/qas",
             r"paragraphs\[1\] has no 'context' key", edit_json(
                 "finetuning_data/cmrc2018/train.json",
                 lambda d: d["data"][0]["paragraphs"][1].pop("context")), base=QA),
    finetune("finetune-qa-duplicate-id", "two QA questions share an id",
             "repeats question id", qa_answers(lambda qa: qa.update(id="q")), base=QA),
    finetune("finetune-no-checkpoint", "there is no pre-trained checkpoint",
             "no pre-trained checkpoint", model="nothing", vocab_file="@D/vocab.txt"),
    finetune("finetune-other-size", "the checkpoint has another model size", "model_size",
             model_size="small"),
    finetune("finetune-vocab-size", "the vocab has another size than vocab_size",
             "vocab_size", vocab_size=5000),
    finetune("finetune-seq-too-long", "max_seq_length exceeds the position embeddings",
             "max_position_embeddings", max_seq_length=600),
    finetune("finetune-mixed-precision", "mixed_precision is not none, bf16 or fp16",
             "mixed_precision", mixed_precision="float16"),
    finetune("finetune-fp16-cpu", "mixed_precision fp16 on a machine without a GPU", "GPU",
             mixed_precision="fp16"),
    finetune("finetune-tpu-distribution", "distribution is combined with use_tpu",
             "distribution", use_tpu=True, distribution="mirrored"),
    finetune("finetune-tpu-batch", "use_tpu with a batch that does not split over "
             "num_tpu_cores", "num_tpu_cores", use_tpu=True, num_tpu_cores=3),
    finetune("finetune-no-tf-config", "multi_worker_mirrored without TF_CONFIG",
             "TF_CONFIG", distribution="multi_worker_mirrored"),
    finetune("finetune-model-type", "model_type is neither electra nor bert", "model_type",
             model_type="roberta"),
    finetune("finetune-rtd-prompt-too-long", "an rtd-prompt template and its longest label "
             "word leave no room for the text in max_seq_length", "rtd_prompt_template",
             use_rtd_prompt=True, rtd_prompt_template="{text_a}这家酒店的服务总之很{label}。",
             rtd_prompt_label_words={"0": "差", "1": "好"}, max_seq_length=12),
    finetune("finetune-rtd-prompt-unknown-word", "an rtd-prompt label word is not in the "
             "vocab ([UNK])", "rtd_prompt_label_words", use_rtd_prompt=True,
             rtd_prompt_template="{text_a}总之很{label}。",
             rtd_prompt_label_words={"0": "差", "1": "☃"}),
    finetune("finetune-path-pattern", "a path hparam has an unknown {placeholder}",
             "cannot fill in the path", model_dir="@D/out/{tsk}"),
    finetune("finetune-zero-layers", "model_hparam_overrides sets num_hidden_layers 0",
             "num_hidden_layers", model_hparam_overrides={"num_hidden_layers": 0}),
    finetune("finetune-header-only-train", "train.tsv has a header but no rows",
             NO_EXAMPLES, put("finetuning_data/chnsenticorp/train.tsv", "label\ttext_a\n")),
    finetune("finetune-header-only-dev", "dev.tsv has a header but no rows",
             NO_EXAMPLES, put("finetuning_data/chnsenticorp/dev.tsv", "label\ttext_a\n")),
    finetune("finetune-qa-no-answers", "no training answer is in its context",
             "no (usable )?(training )?examples|answer",
             qa_answers(lambda qa: set_answers(qa, text="不在文中的答案")), base=QA),
    finetune("finetune-strict-answer-start", "a QA answer_start does not point at its "
             "answer (strict_input)", "answer_start",
             qa_answers(lambda qa: set_answers(qa, answer_start=0)), base=QA,
             strict_input=True),
    finetune("finetune-locked", "another run fine-tunes the same task on the model", "in use",
             hold_lock(".finetune_chnsenticorp.lock", "run_finetuning.py")),
    dataclasses.replace(
        finetune("finetune-unlabelled-test", "do_test on a test file without labels", "",
                 UNLABELLED_TEST, do_train=False, do_eval=False, do_test=True),
        expect=unlabelled_test_predicted, writes=CACHES + ("models/M/results/",),
        message="exit 0; test predictions written; no accuracy or loss of the test set"),

    evaluate("evaluate-preds-not-json", "the predictions are not valid JSON",
             r"preds.json:1:\d+", put("preds.json", '{"q6": "x",')),
    evaluate("evaluate-preds-not-object", "the predictions are a JSON list, not an object",
             "preds.json", put("preds.json", '["x"]')),
    evaluate("evaluate-dataset-missing", "the dataset file does not exist",
             "no_dev.json", dataset="@D/no_dev.json"),
    evaluate("evaluate-dataset-no-data", "the dataset lacks its 'data' key", "data",
             put("bad_dev.json", '{"version": "1"}'), dataset="@D/bad_dev.json"),
    evaluate("evaluate-dataset-not-utf8", "the dataset is not UTF-8", "not valid UTF-8",
             put("bad_dev.json", b'{"data": "\xff"}'), dataset="@D/bad_dev.json"),
    evaluate("evaluate-output-dir", "--output names a directory", "is a directory",
             extra=["--output", "@D/finetuning_data"]),

    predict("predict-not-json", "a predict input line is not JSON",
            r"<stdin>:2: invalid JSON", [GOOD_INPUT, '{"text": "好']),
    predict("predict-missing-field", "a predict input line lacks its field",
            "<stdin>:1: missing field 'text'", ['{"txt": "好"}']),
    predict("predict-not-object", "a predict input line is not an object",
            "<stdin>:1: expected a JSON object", ['["好"]']),
    predict("predict-not-string", "a predict input field is not a string",
            "should be a string", ['{"text": 5}']),
    predict("predict-not-utf8", "predict input is not UTF-8", "not UTF-8",
            b'{"text": "\xff"}\n'),
    predict("predict-other-task", "predict is given --task other than the model's",
            "not xnli", [GOOD_INPUT], extra=["--task", "xnli"]),
    predict("predict-no-model", "the predict model dir does not exist", "not a directory",
            [GOOD_INPUT], model="@D/no_export"),
    predict("predict-batch-size", "--batch-size is 0", "--batch-size must be >= 1",
            [GOOD_INPUT], extra=["--batch-size", "0"]),
    predict("predict-pretraining-dir", "predict is given a pre-training model dir",
            "has neither", [GOOD_INPUT], model="@D/models/M"),

    export("export-out-exists", "export --out exists (no --overwrite)", "already exists",
           out="@D/export"),
    export("export-out-not-export", "export --out is a dir that is not an export",
           "not a SavedModel export", out="@D/corpus", extra=["--overwrite"]),
    export("export-other-task", "export is given --task other than the model's",
           "not xnli", extra=["--task", "xnli"]),
    export("export-checkpoint-missing", "export --checkpoint does not exist", "not found",
           extra=["--checkpoint", "@D/nowhere/model.ckpt-1"]),
    export("export-pretraining-dir", "export is given a pre-training model dir",
           "has neither", model="@D/models/M"),
    export_hf("export-hf-no-dir", "export_hf's checkpoint dir does not exist",
              "does not exist", model="@D/models/none"),
    export_hf("export-hf-vocab", "export_hf --vocab has another size than the model",
              r"has \d+ tokens but", first_tokens("small_vocab.txt", 5000),
              extra=["--vocab", "@D/small_vocab.txt"]),
    export_hf("export-hf-config", "export_hf --config is of another model size",
              "does not describe it", copy_from_repo("config/small_discriminator_config.json"),
              extra=["--config", "@D/small_discriminator_config.json"]),
    export_hf("export-hf-out-file", "export_hf's output dir is a file", "cannot write",
              put("notes.txt", "keep me"), out="@D/notes.txt"),
    export_hf("export-hf-given-hf", "export_hf is given a Hugging Face model dir",
              "is a Hugging Face model.*import_hf", copy_hf_fixture(
                  "electra-discriminator", "bin-zip", "hf_in"), model="@D/hf_in"),
    finetune("finetune-hf-model-dir", "the model dir holds a Hugging Face model, not a "
             "TF checkpoint", "is a Hugging Face model.*import_hf", copy_hf_fixture(
                 "electra-discriminator", "safetensors", "models/HF"), model="HF"),
    pretrain("pretrain-init-checkpoint-hf", "init_checkpoint is a Hugging Face weight file",
             "is a Hugging Face model.*import_hf", copy_hf_fixture(
                 "electra-discriminator", "bin-legacy", "hf_in"),
             init_checkpoint="@D/hf_in/pytorch_model.bin"),
    import_hf("import-no-config", "import_hf's dir has no config.json", "no config.json",
              both(copy_hf_fixture("electra-discriminator", "safetensors", "hf_in"),
                   remove("hf_in/config.json"))),
    import_hf("import-pickle-global", "import_hf's pytorch_model.bin names a global that "
              "is not a tensor's (code that unpickling would run)",
              "names the Python global .*system.*refused, nothing of the file was run",
              both(copy_hf_fixture("electra-discriminator", "bin-zip", "hf_in"),
                   put("hf_in/pytorch_model.bin", b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00"
                       b"true\x85R."))),
    import_hf("import-truncated-bin", "import_hf's pytorch_model.bin is cut short",
              "truncated|not a readable torch state dict",
              both(copy_hf_fixture("electra-discriminator", "bin-legacy", "hf_in"),
                   edit_bytes("hf_in/pytorch_model.bin", lambda data: data[:len(data) // 2]))),
    import_hf("import-missing-tensor", "import_hf's weights lack a tensor of the model",
              r"lacks \d+ tensors", both(copy_hf_fixture("electra-discriminator", "h5", "hf_in"),
                                       edit_json("hf_in/config.json", lambda c: c.update(
                                           num_hidden_layers=3)))),
    import_hf("import-generator-untied", "import_hf --generator has embeddings of its own",
              "differs from the discriminator's", both(
                  copy_hf_fixture("electra-discriminator", "safetensors", "hf_in"),
                  copy_hf_fixture("electra-generator-untied", "safetensors", "hf_gen")),
              extra=["--generator", "@D/hf_gen"]),
    import_hf("import-generator-as-discriminator", "import_hf is given the generator as "
              "HF_DIR", "pass the discriminator as HF_DIR", copy_hf_fixture(
                  "electra-generator", "safetensors", "hf_in")),
    import_hf("import-into-trained-dir", "import_hf's --out holds a trained model",
              "is not empty", copy_hf_fixture(
                  "electra-discriminator", "safetensors", "hf_in"), out="@D/models/M"),
]
