"""What a fine-tuned model needs besides its weights, so it can be exported and used alone.

run_finetuning.py writes `model_info.json` (and a copy of the vocab) into every trial dir
(D/models/M/finetuning_models/<task>_model_<i>/, or <task1>_<task2>_model_<i>/ for a
multi-task model); finetune/export.py copies both into the
SavedModel dir. With them a trial dir or an export can be moved anywhere: the task's label
list, the featurisation settings and the model shape no longer depend on D/. Trial dirs
written before model_info.json existed are described from their trial_hparams.json and the
data and vocab it points at (which must then still be in place).

Loading rebuilds a fine-tuning config from the recorded hparams with the `make_config` its
caller passes (configure_finetuning.FinetuningConfig: the configs live at the top level,
above this package).

model_info.json:
    format_version  1
    task            the task name the model was fine-tuned on (its head's variable scope)
    task_type       "classification", "tagging" or "qa"
    label_list      the labels in head order (null for QA)
    sentence_pair   classification: the inputs are text_a/text_b pairs
    hparams         the fine-tuning hparams that shape features and the graph
    bert_config     the encoder's BertConfig
    vocab_file      file name (in the same dir) of the WordPiece vocab, or null
    spm_model_file  file name (in the same dir) of the SentencePiece model, or null
    featurization_version  the task type's featurisation version at training time (tagging:
                    2, segment ids 1 on real tokens as officially); absent: 1
    qa_head_activation  QA: "gelu", the exact GELU of the official head whatever hidden_act;
                    absent: a model from before, whose head followed hidden_act
    tasks           multi-task models only: {task name: the keys above for that task};
                    the top-level keys describe the first task
    rtd_prompt      true for a model fine-tuned with use_rtd_prompt (absent otherwise):
                    loading refuses it (export and predict.py build the standard heads)
"""

from finetune import task_builder
from model import modeling
from model import tokenization
from util import fs
from util.errors import InputError
from util.hparams import parse_json
from util.io import atomic_copy, atomic_write_json

INFO_FILE = "model_info.json"
TRIAL_HPARAMS_FILE = "trial_hparams.json"  # written by run_finetuning.prepare_trial_dir
FORMAT_VERSION = 1

# Fine-tuning hparams that change the features or the graph of a trained model.
SHAPING_HPARAMS = ("model_type", "model_size", "model_hparam_overrides", "embedding_size",
                   "vocab_size", "do_lower_case", "strip_accents", "max_seq_length",
                   "max_query_length", "doc_stride", "n_best_size", "max_answer_length",
                   "joint_prediction", "beam_size", "answerable_classifier",
                   "answerable_uses_start_logits")
# Models saved before the joint QA head existed have the independent one.
_EARLIER_DEFAULTS = {"joint_prediction": False}

# Keys of trial_hparams.json that are not FinetuningConfig arguments: derived paths and
# the fingerprint's own additions.
_NOT_ARGUMENTS = ("pretrained_model_dir", "results_dir", "preprocessed_data_dir", "task",
                  "trial", "init_checkpoint", "train_data", "inherited_shape",
                  "record_version")


def describe(config, task, bert_config):
    """The model_info dict of a model fine-tuned on task with config (vocab file names
    are the base names the vocab is copied under)."""
    spm = config.spm_model_file
    info = {
        "format_version": FORMAT_VERSION,
        "task": task.name,
        "task_type": task.task_type,
        "label_list": None if task.task_type == "qa" else list(task.label_list),
        "sentence_pair": bool(getattr(task, "sentence_pair", False)),
        "hparams": {key: getattr(config, key) for key in SHAPING_HPARAMS},
        "bert_config": bert_config.to_dict(),
        "vocab_file": None if spm else "vocab.txt",
        "spm_model_file": fs.basename(spm) if spm else None,
        "featurization_version": getattr(task, "featurization_version", 1),
        "qa_head_activation": "gelu" if task.task_type == "qa" else None,
    }
    if task.head_name == "rtd_prompt":
        info["rtd_prompt"] = True
    return info


def vocab_source(config):
    """The file the tokenizer of config reads (copied beside model_info.json)."""
    return config.spm_model_file or config.vocab_file


def write(model_dir, info, vocab_path):
    """Writes model_info.json and a copy of the vocab (or SentencePiece model) into
    model_dir, each atomically."""
    name = info["spm_model_file"] or info["vocab_file"]
    target = fs.join(model_dir, name)
    if fs.abspath(vocab_path) != fs.abspath(target):
        atomic_copy(vocab_path, target)
    atomic_write_json(fs.join(model_dir, INFO_FILE), info)


def write_trial_info(model_dir, config, tasks, bert_config):
    """model_info.json + vocab for a trial dir (called by run_finetuning.py). A model
    trained on several tasks is described as its first task's model, with every task's
    description under "tasks" (load picks one by name)."""
    info = describe(config, tasks[0], bert_config)
    if len(tasks) > 1:
        info["tasks"] = {task.name: describe(config, task, bert_config) for task in tasks}
    write(model_dir, info, vocab_source(config))


class LoadedModel(object):
    """A fine-tuned model's description, rebuilt for featurising new inputs.

    Attributes: info (the model_info dict), config (the FinetuningConfig built by load's
    make_config, with the model's featurisation settings), task (its Task, label list
    restored), tokenizer, bert_config, vocab_path (the vocab file to copy into an export).
    """

    def __init__(self, info, config, task, tokenizer, bert_config, vocab_path):
        self.info = info
        self.config = config
        self.task = task
        self.tokenizer = tokenizer
        self.bert_config = bert_config
        self.vocab_path = vocab_path


def load(model_dir, make_config, task_name=None):
    """LoadedModel of a trial dir or an export; task_name (optional) must match its task.

    make_config(model_name, data_dir, **hparams) builds the fine-tuning config
    (configure_finetuning.FinetuningConfig)."""
    if not fs.isdir(model_dir):
        raise InputError("%s is not a directory; expected a fine-tuned trial dir "
                         "(D/models/M/finetuning_models/<task>_model_<i>) or an export"
                         % model_dir)
    info_path = fs.join(model_dir, INFO_FILE)
    if fs.exists(info_path):
        model = _load_info(model_dir, info_path, make_config, task_name)
    elif fs.exists(fs.join(model_dir, TRIAL_HPARAMS_FILE)):
        model = _load_trial_hparams(model_dir, make_config)
    else:
        raise InputError("%s has neither %s nor %s; expected a trial dir written by "
                         "run_finetuning.py or a dir written by export_savedmodel.py"
                         % (model_dir, INFO_FILE, TRIAL_HPARAMS_FILE))
    if task_name is not None and _canonical(task_name) != _canonical(model.task.name):
        raise InputError("%s holds a model fine-tuned on %s, not %s (omit --task to use "
                         "the model's own task)" % (model_dir, model.task.name, task_name))
    return model


def _canonical(name):
    return task_builder.ALIASES.get(name, name)


def _read_json(path):
    try:
        text = fs.read_text(path)
    except fs.errors() + (UnicodeDecodeError,) as err:
        raise InputError("cannot read %s: %s" % (path, fs.error_text(err)))
    return parse_json(text, path)  # errors name the file, line and column


def _load_info(model_dir, info_path, make_config, task_name=None):
    info = _read_json(info_path)
    if "tasks" in info:  # a multi-task model: one task's head and labels (default: the first)
        by_canonical = {_canonical(name): name for name in info["tasks"]}
        if task_name is not None and _canonical(task_name) not in by_canonical:
            raise InputError("%s holds a model fine-tuned on %s, not %s" % (
                model_dir, " and ".join(info["tasks"]), task_name))
        info = info["tasks"][by_canonical[_canonical(task_name or info["task"])]]
    if info.get("rtd_prompt"):
        raise InputError(
            "%s holds a model fine-tuned with use_rtd_prompt (it classifies through the "
            "discriminator head, label words in a template); export_savedmodel.py and "
            "predict.py serve the standard heads only: score files with run_finetuning.py "
            "(do_eval, do_test, write_test_outputs)" % model_dir)
    missing = [key for key in ("task", "task_type", "label_list", "hparams", "bert_config")
               if key not in info]
    if missing or info.get("format_version") != FORMAT_VERSION:
        raise InputError("%s: not a model_info.json of format %d (missing %s)"
                         % (info_path, FORMAT_VERSION, ", ".join(missing) or
                            "nothing, but format_version is %r" % info.get("format_version")))
    name = info.get("spm_model_file") or info.get("vocab_file")
    vocab_path = fs.join(model_dir, name or "vocab.txt")
    if not fs.isfile(vocab_path):
        raise InputError("%s names the vocab %s, which is missing" % (info_path, vocab_path))
    spm = vocab_path if info.get("spm_model_file") else None
    config = make_config(
        "predict", model_dir, task_names=[info["task"]],
        vocab_file=None if spm else vocab_path, spm_model_file=spm,
        **dict(_EARLIER_DEFAULTS, **info["hparams"]))
    bert_config = modeling.BertConfig.from_dict(info["bert_config"], source=info_path)
    return _build(info, config, bert_config, vocab_path)


def _load_trial_hparams(model_dir, make_config):
    """A trial dir from before model_info.json: rebuilt from its recorded hparams, reading
    the label list from the task's data (tnews, cail2018, labels.txt) as training did."""
    from model.configs import discriminator_config  # TF graph code: load late
    path = fs.join(model_dir, TRIAL_HPARAMS_FILE)
    record = _read_json(path)
    if "task" not in record:
        raise InputError("%s has no 'task' key; expected the record run_finetuning.py "
                         "writes" % path)
    kwargs = dict(_EARLIER_DEFAULTS, **{k: v for k, v in record.items()
                                        if k not in _NOT_ARGUMENTS})
    config = make_config(
        kwargs.pop("model_name", "predict"), kwargs.pop("data_dir", model_dir),
        **dict(kwargs, task_names=[record["task"]]))
    for vocab in filter(None, [config.spm_model_file, config.vocab_file]):
        if not fs.isfile(vocab):
            raise InputError("%s: the vocab %s it was trained with is missing (the trial "
                             "dir predates model_info.json, so it is read from there)"
                             % (path, vocab))
    tokenizer = tokenizer_for(config)
    task = task_builder.get_task(config, record["task"], tokenizer)
    info = describe(config, task, discriminator_config(config))
    info["featurization_version"] = 1  # trained before model_info.json existed
    info["qa_head_activation"] = None  # and before the QA head's activation was fixed
    bert_config = modeling.BertConfig.from_dict(info["bert_config"], source=path)
    return _build(info, config, bert_config, vocab_source(config))


def tokenizer_for(config):
    """The tokenizer a fine-tuning config names (WordPiece vocab or SentencePiece model)."""
    return tokenization.build_tokenizer(
        vocab_file=config.vocab_file, do_lower_case=config.do_lower_case,
        strip_accents=config.strip_accents, spm_model_file=config.spm_model_file)


def load_tokenizer(config):
    """config's tokenizer; InputError unless its vocab fills the word-embedding table."""
    tokenizer = tokenizer_for(config)
    if len(tokenizer) != config.vocab_size:
        raise InputError("%s has %d tokens but vocab_size is %d: set \"vocab_size\": %d"
                         % (config.spm_model_file or config.vocab_file, len(tokenizer),
                            config.vocab_size, len(tokenizer)))
    return tokenizer


def _build(info, config, bert_config, vocab_path):
    tokenizer = tokenizer_for(config)
    task = task_builder.get_task(config, info["task"], tokenizer)
    if task.task_type != info["task_type"]:
        raise InputError("model_info.json says task %s is %s, but it is a %s task"
                         % (info["task"], info["task_type"], task.task_type))
    trained_with = info.get("featurization_version", 1)
    current = getattr(task, "featurization_version", 1)
    if trained_with != current:
        # Features made today would not be the ones the model learnt from (tagging before
        # version 2: segment ids 0, where the official code and this version feed 1).
        raise InputError(
            "%s was fine-tuned on %s features of version %d, but this version of the "
            "toolkit makes version %d (%s): its predictions here would be off without "
            "an error; fine-tune it again" % (
                info["task"], info["task_type"], trained_with, current,
                getattr(task, "featurization_change", "other inputs")))
    if (task.task_type == "qa" and info.get("qa_head_activation") != "gelu"
            and bert_config.hidden_act != "gelu"):
        # Its head was trained with hidden_act; the graph built now has the exact GELU there.
        raise InputError(
            "%s was fine-tuned with a QA head using hidden_act %r, but this version of the "
            "toolkit builds the official head, which always uses the exact GELU: its "
            "predictions here would be off without an error; fine-tune it again"
            % (info["task"], bert_config.hidden_act))
    if info["label_list"] is not None:
        # The head's rows follow the label list of training time; never re-derive it
        # from data files that may have changed (or be absent).
        task.label_list = list(info["label_list"])
    return LoadedModel(info, config, task, tokenizer, bert_config, vocab_path)
