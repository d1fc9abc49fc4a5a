"""What a pre-training model dir holds, and whether a run may resume it.

D/models/M describes itself: the vocab, discriminator.json and generator.json (HF-style
shapes), pretrain_hparams.json (every hparam of the run) and train_data.json (the identity
of each training tfrecord). A rerun on a dir with a checkpoint resumes that model, so it
must be the same run: the same hparams (except those in RESUMABLE_HPARAMS), the same
training data and variables of the same shapes (the runner checks those with
util/checkpoints.check_variable_shapes). Anything else is refused, naming each
difference, before a byte of the dir is rewritten.
"""

import json
import os

from model import configs
from util import fs
from util.errors import InputError
from util.io import atomic_copy, atomic_write_json

# Hparams a resumed run may change: where files are and how the run is watched, the
# devices it runs on (train_batch_size stays the global batch), and num_train_steps
# (continuing a finished run further; the learning-rate schedule then spans the new total).
RESUMABLE_HPARAMS = frozenset([
    "model_name", "model_dir", "debug", "do_train", "do_eval", "eval_each_checkpoint",
    "iterations_per_loop", "save_checkpoints_steps", "save_checkpoints_secs",
    "keep_checkpoint_max", "save_graph_def",
    "num_train_steps", "num_eval_steps", "log_every_steps", "eval_batch_size",
    "eval_tfrecords", "pretrain_tfrecords", "vocab_file", "spm_model_file", "results_txt",
    "results_json", "results_pkl", "use_xla", "distribution", "num_gpus", "mirrored_devices",
    "use_tpu", "use_tpu_estimator", "num_tpu_cores", "tpu_job_name", "tpu_name", "tpu_zone",
    "gcp_project", "gradient_accumulation_steps"])  # (the update is the same whatever k)
TFRECORD_SAMPLE_BYTES = 2 ** 20  # train_data.json hashes each tfrecord's first and last MiB


def model_configs(config):
    """{file name: content} of discriminator.json and generator.json for config."""
    disc = configs.discriminator_config(config)
    disc.embedding_size = disc.embedding_size or disc.hidden_size
    if config.electra_objective and config.untied_generator:
        gen = configs.generator_config(config, disc)
        if config.untied_generator_embeddings:  # its own table, as wide as its hidden
            gen.embedding_size = gen.hidden_size
    else:  # BERT MLM (or tied weights): the masked-LM model is the full-size one
        gen = disc
    # The BERT objective's checkpoint is a Google-BERT-named one (bert/, cls/predictions).
    model_type = "electra" if config.electra_objective else "bert"
    return {name: dict(bert_config.to_dict(), model_type=model_type)
            for name, bert_config in (("discriminator.json", disc), ("generator.json", gen))}


def data_record(files):
    """[[file name, bytes, sampled SHA-256], ...] of the training tfrecords, by name: the
    same data moved to another directory (or a bucket) is the same data."""
    return sorted([fs.basename(path), fs.getsize(path),
                   fs.digest(path, TFRECORD_SAMPLE_BYTES)] for path in files)


def _read_json(path):
    try:
        return json.loads(fs.read_text(path)) if fs.exists(path) else None
    except ValueError:
        raise InputError("%s is not valid JSON: the model dir is damaged; restore the file "
                         "or use a new model_name" % path)


def _normalised(value):
    return json.loads(json.dumps(value, default=str))


def hparam_changes(previous, config):
    """['key: old -> new', ...] for recorded hparams that a resumed run may not change."""
    current = _normalised(config.to_dict())
    return ["%s: %r -> %r" % (key, previous[key], current[key])
            for key in sorted(current)
            if key in previous and key not in RESUMABLE_HPARAMS
            and previous[key] != current[key]]


def data_changes(previous, current):
    """['name: what changed', ...] between two data_record lists."""
    before = {name: (size, digest) for name, size, digest in previous}
    after = {name: (size, digest) for name, size, digest in current}
    changes = ["%s: gone" % name for name in sorted(set(before) - set(after))]
    changes += ["%s: new" % name for name in sorted(set(after) - set(before))]
    for name in sorted(set(before) & set(after)):
        if before[name] != after[name]:
            changes.append("%s: other content (%d -> %d bytes)"
                           % (name, before[name][0], after[name][0]))
    return changes


def check_resume(config, train_record):
    """Refuses to resume the checkpoint in config.model_dir with other hparams or data.

    Called only when the dir holds a checkpoint; train_record: data_record of this run's
    training tfrecords (None without do_train). Prints the resumable changes it accepts
    (e.g. a longer num_train_steps).
    """
    previous = _read_json(fs.join(config.model_dir, "pretrain_hparams.json")) or {}
    problems = hparam_changes(previous, config)
    recorded_data = _read_json(fs.join(config.model_dir, "train_data.json"))
    if train_record is not None and recorded_data is not None:
        changes = data_changes(recorded_data, train_record)
        if changes:
            problems.append("training data changed (%s)" % "; ".join(changes[:5]))
    if problems:
        raise InputError(
            "%s holds a checkpoint of another run, which these settings would change: %s. "
            "Use a new --model-name (add \"init_checkpoint\": \"%s\" to start from this "
            "model's weights), or rerun with the recorded settings (%s); nothing in the "
            "model dir was changed"
            % (config.model_dir, "; ".join(problems), config.model_dir,
               fs.join(config.model_dir, "pretrain_hparams.json")))
    old_steps = previous.get("num_train_steps")
    if old_steps is not None and old_steps != config.num_train_steps:
        print("num_train_steps %d -> %d: the learning rate now decays over %d steps"
              % (old_steps, config.num_train_steps, config.num_train_steps), flush=True)


def write_model_files(config, train_record):
    """Makes the model dir self-describing: vocab, HF-style configs, hparams, data record
    (train_record, as check_resume got it; None without do_train).

    A model dir that already holds a different vocab is refused: mixing vocabs would
    silently scramble the embeddings.
    """
    fs.makedirs(config.model_dir)
    vocab_source = config.spm_model_file or config.vocab_file
    vocab_copy = fs.join(config.model_dir, fs.basename(vocab_source))
    if fs.exists(vocab_copy):
        if not fs.same_bytes(vocab_copy, vocab_source):
            raise InputError("%s differs from %s: this model was trained with another vocab; "
                             "use a new model_name" % (vocab_copy, vocab_source))
    else:
        atomic_copy(vocab_source, vocab_copy)
    for name, content in model_configs(config).items():
        atomic_write_json(fs.join(config.model_dir, name), content)
    atomic_write_json(fs.join(config.model_dir, "pretrain_hparams.json"), config.to_dict())
    if train_record is not None:
        atomic_write_json(fs.join(config.model_dir, "train_data.json"), train_record)
