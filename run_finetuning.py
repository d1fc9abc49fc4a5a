"""Fine-tunes a pre-trained ELECTRA discriminator on Chinese benchmark tasks.

    python run_finetuning.py --data-dir D --model-name M --hparams params_cmrc2018.json

Reads the pre-trained checkpoint and vocab from D/models/M/ and task data from
D/finetuning_data/<task>/; writes fine-tuned checkpoints to D/models/M/finetuning_models/,
metrics (JSON per trial, a Markdown table over trials) to D/models/M/results/ and QA
predictions to D/models/M/results/<task>_qa/<task>_<split>_preds.json.
"""

import collections
import contextlib
import hashlib
import json
import os
import sys
import time

from util import interrupt  # noqa: E402
if __name__ == "__main__":  # a stop while TensorFlow loads: one line, no traceback
    interrupt.stop_cleanly_before_start()
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import tensorflow.compat.v1 as tf  # noqa: E402

import configure_finetuning  # noqa: E402
import runner_cli  # noqa: E402
from finetune import model_info  # noqa: E402
from finetune.model_fn import (check_checkpoint, model_fn_builder,  # noqa: E402
                               write_initial_checkpoint)
from finetune import preprocessing  # noqa: E402
from finetune import task_builder  # noqa: E402
from model import modeling  # noqa: E402
from model import precision  # noqa: E402
from model.configs import discriminator_config  # noqa: E402
from util import checkpoints  # noqa: E402
from util import distribute  # noqa: E402
from util import fs  # noqa: E402
from util import lock  # noqa: E402
from util import tfrecords  # noqa: E402
from util import results as results_lib  # noqa: E402
from util import tpu  # noqa: E402
from util import training_loop  # noqa: E402
from util import summaries  # noqa: E402
from util.progress import Progress  # noqa: E402
from util.errors import InputError  # noqa: E402
from util.io import atomic_write_json  # noqa: E402

DAMAGED_CACHE_REMEDY = ("delete it and rerun: it is a cache, rebuilt from the task's data "
                        "(finished trials are kept)")
PARAMS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "params")


def find_pretrained_checkpoint(config):
    """The checkpoint to start from: init_checkpoint, else the newest in D/models/M."""
    if config.random_init:
        return None
    if config.init_checkpoint:
        checkpoints.check_not_hf(config.init_checkpoint, "init_checkpoint")
        if not tf.train.checkpoint_exists(config.init_checkpoint):
            raise InputError("init_checkpoint %s not found" % config.init_checkpoint)
        return config.init_checkpoint
    return checkpoints.find_checkpoint(config.pretrained_model_dir, missing=(
        "no pre-trained checkpoint in {dir} (expected model.ckpt-N.* or electra_model.* "
        "files); pre-train with run_pretraining.py, unzip a released model there, set "
        "init_checkpoint, or set \"random_init\": true for a from-scratch baseline"))


def build_trainer(config, model_fn, model_dir, seed, strategy=None):
    """The training loop for training and prediction (util/training_loop.py; the
    TPUEstimator for the TPU graph: use_tpu, use_tpu_estimator). strategy: a tf.distribute
    strategy (distribution hparam) for training, or None for one device. Evaluation goes
    through predict, which is never distributed: dev/test predictions run on one device
    (any predict_batch_size works)."""
    return training_loop.build_trainer(
        config, model_fn, model_dir, seed, config.train_batch_size, config.eval_batch_size,
        config.predict_batch_size, precision.session_config(config.use_xla),
        train_distribute=strategy)


def featurize_split(config, task, split, examples):
    """All features of a dev/test split's examples; with log_examples, shows the first few."""
    features, progress = [], Progress(len(examples), "featurising %s %s" % (task.name, split),
                                      "examples", interval=10.0, quiet_if_short=True)
    for example in examples:
        features.extend(task.featurize(example, False))
        progress.update()
    progress.finish()
    log_features(config, task, split, features)
    return features


def log_features(config, task, split, features):
    """With log_examples: the first three features as tokens and their scalars."""
    if not config.log_examples:
        return
    for feature in features[:3]:
        n = sum(feature["input_mask"])
        tokens = task.tokenizer.convert_ids_to_tokens(feature["input_ids"][:n])
        scalars = {spec.name: feature[spec.name] for spec in task.feature_specs()
                   if not spec.shape}  # labels, answer positions, ids
        print("%s %s example: %s %s" % (task.name, split, " ".join(tokens), scalars))


def evaluate_split(config, task, trainer, split, trial, write_outputs=True):
    """Predicts every feature of split, feeds the task's scorer, writes the predictions
    (unless not write_outputs: a score along the way) and returns the scorer's results
    (None for a split without labels: not scored). In the TPU graph the split is padded to
    whole batches; the padding's predictions are dropped here, before any scorer sees
    them."""
    examples = task.get_examples(split)
    labelled = task.check_split(split, examples, need_labels=split == "dev")
    features = featurize_split(config, task, split, examples)
    path, _ = preprocessing.featurized_tfrecord(task, split, config, lambda: features)
    padding = None
    if tpu.tpu_graph(config):
        padding = preprocessing.num_padding(len(features), config.predict_batch_size)
        print("predicting %d %s %s features + %d padding (whole batches of %d)" % (
            len(features), task.name, split, padding, config.predict_batch_size), flush=True)
    input_fn = preprocessing.get_input_fn(path, task.feature_specs(), False,
                                          config.predict_batch_size, padding=padding)
    scorer = task.get_scorer(split)
    real = 0
    progress = Progress(len(features), "predicting %s %s" % (task.name, split), "features",
                        interval=10.0, quiet_if_short=True)
    with tfrecords.name_damaged_file([path], DAMAGED_CACHE_REMEDY):
        for outputs in trainer.predict(input_fn, yield_single_examples=True):
            if not outputs.pop(preprocessing.REAL_EXAMPLE, 1):
                continue  # padding: it follows the real features and is never scored
            if real < len(features):
                scorer.update(features[real], outputs)
                progress.update()
            real += 1
    progress.finish()
    if real != len(features):
        raise RuntimeError("%s %s: %d predictions for %d features" % (
            task.name, split, real, len(features)))
    if not write_outputs:
        return scorer.get_results() if labelled else None
    preds_file = config.preds_file(task.name, split, trial)
    atomic_write_json(preds_file, scorer.get_predictions())
    print("wrote %s" % preds_file, flush=True)
    if task.task_type == "qa" and config.joint_prediction and config.answerable_classifier:
        na_file = config.qa_file(config.qa_na_file, "null_odds", task.name, split, trial)
        atomic_write_json(na_file, scorer.null_odds())
    if not labelled:  # an unlabelled test set: predictions only, never a metric
        print("%s %s: not scored (%s has no labels); predictions in %s"
              % (task.name, split, task.split_path(split), preds_file), flush=True)
        return None
    if labelled < len(examples):
        print("%s %s: scored on the %d of %d examples that have labels"
              % (task.name, split, labelled, len(examples)), flush=True)
    results = scorer.get_results()
    if task.task_type == "qa" and (split != "test" or config.do_test):
        atomic_write_json(config.qa_file(config.qa_eval_file, "eval", task.name, split,
                                         trial), results)
    return results


# Hparams that do not change the trained weights: a rerun differing only in these may
# reuse (or resume) a trial's checkpoint.
EVAL_ONLY_HPARAMS = frozenset([
    "inherited_shape", "do_eval", "do_test", "write_test_outputs", "eval_batch_size",
    "num_trials", "keep_all_models", "log_every_steps", "log_examples", "task_names",
    "use_tfrecords_if_existing", "predict_batch_size", "n_writes_test",
    "write_distill_outputs", "beam_size", "qa_na_threshold", "model_dir", "results_txt",
    "results_pkl", "qa_preds_file", "qa_eval_file", "qa_na_file", "test_predictions",
    "save_graph_def", "keep_checkpoint_max", "eval_each_checkpoint"])
# ... nor do where things are (a data dir moved, or spelt ./D instead of D: the data and
# the starting checkpoint count by their content, train_data and init_checkpoint below),
# how often checkpoints are saved, or which machine trains.
PLACE_AND_CADENCE_HPARAMS = frozenset([
    "data_dir", "model_name", "vocab_file", "spm_model_file", "raw_data_dir",
    "preprocessed_data_dir", "pretrained_model_dir", "results_dir", "init_checkpoint",
    "save_checkpoints_steps", "save_checkpoints_secs", "iterations_per_loop", "gcp_project",
    "tpu_name", "tpu_zone", "tpu_job_name"])
TRIAL_RECORD_VERSION = 2  # records without it (earlier versions) held paths: see below


def prepare_trial_dir(config, model_dir, fingerprint, legacy_fingerprint):
    """Resumes a trial interrupted with the same settings; trains it again if they changed,
    keeping the earlier model (moved aside, never deleted).

    The official code always wiped the directory, so a killed run lost its progress; we
    keep it unless what shapes the weights (trial_fingerprint) differs from the record.
    legacy_fingerprint(): the fingerprint as earlier versions wrote it (paths included),
    compared with a record of theirs, so that upgrading retrains nothing.
    """
    record = fs.join(model_dir, "trial_hparams.json")
    if fs.isdir(model_dir):
        previous = json.loads(fs.read_text(record)) if fs.exists(record) else None
        # Compared without the keys that do not shape the weights, which a record
        # written by an earlier version may still hold.
        if previous is not None and previous.get("record_version") != TRIAL_RECORD_VERSION:
            ignored, expected = EVAL_ONLY_HPARAMS | {"save_checkpoints_secs"}, \
                legacy_fingerprint()
        else:
            ignored = EVAL_ONLY_HPARAMS | PLACE_AND_CADENCE_HPARAMS - {"init_checkpoint"}
            expected = dict(fingerprint, record_version=TRIAL_RECORD_VERSION)
        if previous is not None:
            previous = {k: v for k, v in previous.items() if k not in ignored}
        latest = checkpoints.latest_checkpoint(model_dir)
        if previous == expected:
            if latest:
                print("resuming from %s" % latest, flush=True)
            else:
                print("%s: the earlier run stopped before its first checkpoint: training "
                      "from the start" % model_dir, flush=True)
            atomic_write_json(record, dict(fingerprint, record_version=TRIAL_RECORD_VERSION))
            return
        changed = sorted(k for k in set(previous or {}) | set(expected)
                         if (previous or {}).get(k) != expected.get(k))
        if latest:  # a trained model: moved aside, never deleted
            # (a dir of its own: a name that began with the trial's would share its prefix,
            # and a bucket lists and deletes by prefix)
            kept = fs.join(fs.dirname(model_dir), "superseded-" + time.strftime(
                "%Y%m%d-%H%M%S", time.gmtime()), fs.basename(model_dir))
            move_tree(model_dir, kept)
            print("settings changed since %s was trained (%s): training it again; the "
                  "earlier model is kept in %s (delete it when no longer needed) and its "
                  "results in %s" % (model_dir, ", ".join(changed), kept, config.results_dir),
                  flush=True)
        else:  # nothing trained in it yet
            fs.rmtree(model_dir)
    fs.makedirs(model_dir)
    atomic_write_json(record, dict(fingerprint, record_version=TRIAL_RECORD_VERSION))


def move_tree(src, dst):
    """Moves a trial dir: one rename on a local disk; on a bucket (and ram://), where a
    directory cannot be renamed as one, a copy and then the original's removal, so that a
    stop in between leaves the original whole."""
    if fs.is_local(src):
        fs.makedirs(fs.dirname(dst))
        fs.rename(src, dst)
        return
    fs.copy_tree(src, dst)
    fs.rmtree(src)


def trial_fingerprint(config, tasks, trial, init_identity, train_key):
    """What shapes a trial's weights: the hparams that change training, the tasks, the
    starting checkpoint's content (init_identity: checkpoints.identity) and the training
    data's (train_key: any training file's content, the vocab's, the featurisation)."""
    hparams = {k: v for k, v in config.to_dict().items()
               if k not in EVAL_ONLY_HPARAMS | PLACE_AND_CADENCE_HPARAMS}
    return json.loads(json.dumps(dict(hparams, task=run_name(tasks), trial=trial,
                                      init_checkpoint=init_identity, train_data=train_key),
                                 default=str))


def legacy_trial_fingerprint(config, tasks, trial, init_checkpoint, train_set):
    """trial_fingerprint as earlier versions wrote it: every hparam but the eval-only
    ones, the starting checkpoint's path, the training set's key with the vocab's path."""
    hparams = {k: v for k, v in config.to_dict().items()
               if k not in EVAL_ONLY_HPARAMS | {"save_checkpoints_secs"}}
    return json.loads(json.dumps(dict(hparams, task=run_name(tasks), trial=trial,
                                      init_checkpoint=init_checkpoint,
                                      train_data=train_set and preprocessing.training_set_key(
                                          tasks, config, with_vocab_path=True)),
                                 default=str))


# The featurised training set of a run: its tfrecord, record count (padding included) and
# the key of the inputs it was made from (preprocessing.training_tfrecord).
TrainingSet = collections.namedtuple("TrainingSet", ["path", "num_records", "key"])


def run_name(tasks):
    """The name of the model trained on tasks: one model for all of them (the official
    multi-task model when there are several), in <model_dir or <task>_model>_<trial>;
    a task's model_suffix follows its name (rtd-prompt runs: <task>_rtd_prompt, zero-shot
    ones <task>_rtd_prompt_zero_shot)."""
    return "_".join(task.name + task.model_suffix for task in tasks)


def eval_splits(config, trial=1):
    """Splits to predict after training: dev (do_eval), test (do_test, or
    write_test_outputs in the first n_writes_test trials)."""
    writes_test = config.write_test_outputs and trial <= config.n_writes_test
    return (["dev"] if config.do_eval else []) + \
        (["test"] if config.do_test or writes_test else [])


def prepare_trial(config, tasks, bert_config, init_checkpoint, trial, train_set):
    """The trial dir, ready to train in (resumed or emptied) and self-describing."""
    model_dir = config.trial_model_dir(run_name(tasks), trial)
    prepare_trial_dir(config, model_dir,
                      trial_fingerprint(config, tasks, trial, init_identity(init_checkpoint),
                                        train_set and train_set.key),
                      lambda: legacy_trial_fingerprint(config, tasks, trial,
                                                       init_checkpoint, train_set))
    # Label lists, featurisation settings, model shape and vocab: what export_savedmodel.py
    # and predict.py need, so the trial dir works without D/.
    model_info.write_trial_info(model_dir, config, tasks, bert_config)


def build_training_set(config, tasks):
    """The featurised training set of tasks (cached unless its inputs changed), built
    before any trial dir is touched: a bad training row stops the run with finished
    trials intact."""
    return TrainingSet(*preprocessing.training_tfrecord(
        tasks, config, lambda task, features: log_features(config, task, "train", features)))


def init_identity(init_checkpoint):
    """The starting checkpoint as the fingerprint knows it: its content, not its path."""
    return checkpoints.identity(init_checkpoint) if init_checkpoint else None


def trains(config):
    """Whether a run trains: do_train, unless zero_shot (which trains nothing)."""
    return config.do_train and not config.zero_shot


def zero_shot_trial(config, tasks, bert_config, init_checkpoint, trial):
    """A trial that trains nothing (zero_shot): its dir holds the starting checkpoint's
    weights as model.ckpt-0, which the dev/test predictions then read."""
    model_dir = config.trial_model_dir(run_name(tasks), trial)
    prepare_trial(config, tasks, bert_config, init_checkpoint, trial, None)
    latest = checkpoints.latest_checkpoint(model_dir)
    if latest:
        print("%s trial %d/%d: zero-shot, reusing %s" % (
            run_name(tasks), trial, config.num_trials, latest), flush=True)
        return
    print("%s trial %d/%d: zero-shot: no training, the model scores as pre-trained"
          % (run_name(tasks), trial, config.num_trials), flush=True)
    write_initial_checkpoint(config, tasks[0], bert_config, init_checkpoint, model_dir)


def train_trial(config, tasks, bert_config, init_checkpoint, trial, strategy, train_set):
    """Trains one model on the training sets of tasks (from init_checkpoint)."""
    seed = config.seed + trial - 1
    model_dir = config.trial_model_dir(run_name(tasks), trial)
    multi_worker = config.distribution == "multi_worker_mirrored"
    if not multi_worker:  # (a cluster's chief prepared every trial dir up front)
        prepare_trial(config, tasks, bert_config, init_checkpoint, trial, train_set)
    # As the official code counts: the padded training set, num_train_epochs times.
    num_train_steps = max(1, int(train_set.num_records // config.train_batch_size
                                 * config.num_train_epochs))
    print("%s trial %d/%d (seed %d): %d training features (padded to whole batches), "
          "%d steps of %d%s%s" % (run_name(tasks), trial, config.num_trials, seed,
                                  train_set.num_records, num_train_steps,
                                  config.train_batch_size,
                                  distribute.describe_batch_split(config, strategy),
                                ", %s" % config.optimizer if config.optimizer != "adamw" else ""),
          flush=True)
    # A resumed trial restores everything from its own checkpoint (the pre-trained one
    # would only be overwritten, and naming it would contradict "resuming from"); it goes
    # on in the shuffled stream where it stopped (not in the TPU graph, whose hosts feed
    # the TPUEstimator: there it starts the stream again).
    latest = checkpoints.latest_checkpoint(model_dir)
    model_fn = model_fn_builder(config, tasks, bert_config, None if latest else init_checkpoint,
                                num_train_steps)
    trainer = build_trainer(config, model_fn, model_dir, seed, strategy)
    done = checkpoints.global_step(latest) if latest and not tpu.tpu_graph(config) else 0
    input_fn = preprocessing.get_input_fn(train_set.path, preprocessing.training_specs(tasks),
                                          True, distribute.micro_batch_size(config), seed=seed,
                                          skip_steps=done,
                                          runs_per_step=config.gradient_accumulation_steps)
    listeners = ([DevEachCheckpoint(config, tasks, bert_config, model_dir, trial,
                                    num_train_steps)]
                 if config.do_eval and config.eval_each_checkpoint else [])
    with tfrecords.name_damaged_file([train_set.path], DAMAGED_CACHE_REMEDY):
        trainer.train(input_fn=input_fn, max_steps=num_train_steps, saving_listeners=listeners)


class DevEachCheckpoint(tf.train.CheckpointSaverListener):
    """eval_each_checkpoint: scores dev with each checkpoint as it is saved (step 0 and the
    step a resume starts at included), printing the line and writing TensorBoard's eval_dev
    scalars; the last step's is left to run_trial, whose results are the trial's."""

    def __init__(self, config, tasks, bert_config, model_dir, trial, num_train_steps):
        self._args = (config, tasks, bert_config, model_dir, trial)
        self._num_train_steps = num_train_steps

    def after_save(self, session, global_step_value):
        if global_step_value >= self._num_train_steps:
            return
        config, tasks, bert_config, model_dir, trial = self._args
        for task in tasks:  # as run_trial scores them
            trainer = scoring_trainer(config, task, bert_config, model_dir,
                                      config.seed + trial - 1)
            results = evaluate_split(config, task, trainer, "dev", trial, write_outputs=False)
            write_eval_summary(model_dir, task, "dev", results)
            print("dev at step %d: %s" % (global_step_value,
                                          results_lib.format_line(task.name, results)),
                  flush=True)


def run_trial(config, tasks, bert_config, init_checkpoint, trial, strategy=None, chief=True,
              train_set=None):
    """strategy: the distribution's (None: one device); chief: False on the hosts of a
    multi-host cluster that only train; train_set: the TrainingSet (do_train). Returns
    {task name: the trial's record} (None off the chief)."""
    seed = config.seed + trial - 1
    model_dir = config.trial_model_dir(run_name(tasks), trial)
    if config.zero_shot:
        zero_shot_trial(config, tasks, bert_config, init_checkpoint, trial)
    elif config.do_train:
        train_trial(config, tasks, bert_config, init_checkpoint, trial, strategy, train_set)
    splits = eval_splits(config, trial)
    if config.distribution == "multi_worker_mirrored" and not chief:
        if splits:  # the chief predicts alone, on one device
            print("%s trial %d: the chief predicts %s with the final checkpoint"
                  % (run_name(tasks), trial, " and ".join(splits)), flush=True)
        return None
    if not checkpoints.latest_checkpoint(model_dir):
        raise InputError("no fine-tuned checkpoint in %s to evaluate: set \"do_train\": true"
                         % model_dir)
    records = {}
    for task in tasks:
        trainer = scoring_trainer(config, task, bert_config, model_dir, seed)
        trial_results = {}
        for split in splits:
            results = evaluate_split(config, task, trainer, split, trial)
            if results is None:  # a test set without labels: predictions only
                continue
            write_eval_summary(model_dir, task, split, results)
            if split != "test" or config.do_test:  # write_test_outputs alone: predictions only
                trial_results[split] = results
                print(results_lib.format_line(results_lib.setting_name(
                    task.name, config.to_dict()), results), flush=True)
        records[task.name] = {"trial": trial, "seed": seed, "model_dir": model_dir,
                              "results": trial_results}
    return records


def scoring_trainer(config, task, bert_config, model_dir, seed):
    """The trainer that predicts task's splits from model_dir's newest checkpoint, through
    the task's own head of the (maybe multi-task) model, on one device."""
    model_fn = model_fn_builder(config, [task], bert_config, None, num_train_steps=1)
    return build_trainer(config, model_fn, model_dir, seed)


def write_eval_summary(model_dir, task, split, results):
    """A split's metrics as TensorBoard scalars (<trial dir>/eval_<split>/, tags
    <task>/<metric>) at the scored checkpoint's step, beside the training curves."""
    step = checkpoints.global_step(checkpoints.latest_checkpoint(model_dir))
    summaries.write_scalars(fs.join(model_dir, "eval_" + split), {
        "%s/%s" % (task.name, key): value for key, value in results.items()}, step)


def run_trials(config, tasks, bert_config, init_checkpoint, strategy=None, chief=True,
               train_set=None):
    """num_trials models on tasks; {task name: [trial records]}, results written per task
    after every trial, beside the results of earlier runs with other settings."""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    # What the trained models depend on: a rerun with the same replaces its results.
    settings = hashlib.sha1(json.dumps(trial_fingerprint(
        config, tasks, 0, init_identity(init_checkpoint), train_set and train_set.key),
        sort_keys=True).encode()).hexdigest()
    trials = {task.name: [] for task in tasks}
    for trial in range(1, config.num_trials + 1):
        records = run_trial(config, tasks, bert_config, init_checkpoint, trial, strategy,
                            chief, train_set)
        if not chief:  # a cluster's other hosts only train: the chief writes the results
            continue
        for task in tasks:
            trials[task.name].append(records[task.name])
            if any(t["results"] for t in trials[task.name]):  # (a run that scores nothing
                results_lib.write_task_results(  # leaves earlier results as they were)
                    config, task, trials[task.name], settings, started)
        if not config.keep_all_models and trial < config.num_trials:
            fs.rmtree(config.trial_model_dir(run_name(tasks), trial))
    return trials


def run(config):
    tpu.check_tensorflow(config)
    precision.check_supported(config.mixed_precision, config.use_tpu, "fine-tuning hparams")
    if config.inherited_shape:
        print("model shape from %s: %s" % (
            os.path.join(config.pretrained_model_dir, "pretrain_hparams.json"),
            ", ".join("%s %s" % (k, json.dumps(v)) for k, v in
                      sorted(config.inherited_shape.items()))), flush=True)
    if config.results_pkl:
        print("results_pkl: results are written as JSON (%s), no pickles"
              % os.path.join(config.results_dir, "<task>_results.json"), flush=True)
    if config.write_distill_outputs:
        print("write_distill_outputs: no effect (the official code writes distillation "
              "outputs for GLUE tasks only)", flush=True)
    bert_config = discriminator_config(config)
    # A missing model first (its vocab usually comes with it), then the vocab against
    # vocab_size, then the checkpoint's shapes against both.
    init_checkpoint = (find_pretrained_checkpoint(config)
                       if config.do_train or config.zero_shot else None)
    tokenizer = model_info.load_tokenizer(config)
    if init_checkpoint:
        check_checkpoint(init_checkpoint, bert_config, config)
    # Before anything is written (the graph checks it too, but only once a trial dir is
    # prepared).
    modeling.check_sequence_length(bert_config, config.max_seq_length,
                                   "fine-tuning hparams: max_seq_length")
    tasks = task_builder.get_tasks(config, tokenizer)
    chief = distribute.is_chief(config)
    # What a run writes is per task (its results, predictions and caches; the trial dirs
    # of its task set): it holds one lock per task, so a run on cmrc2018 and one on
    # cmrc2018+drcd exclude each other, and runs on other tasks of one model go on side
    # by side. The chief holds them; a cluster's other hosts only train.
    with contextlib.ExitStack() as held:
        if chief:
            for task in sorted(tasks, key=lambda t: t.name):
                held.enter_context(lock.hold(
                    config.pretrained_model_dir, "%s fine-tuning in the model dir" % task.name,
                    name=lock_name(task.name)))
        return validate_and_run(config, tasks, bert_config, init_checkpoint, chief)


def lock_name(task_name):
    """The file in the pre-trained model dir that a fine-tuning run on task_name holds."""
    return ".finetune_%s.lock" % task_name


def validate_and_run(config, tasks, bert_config, init_checkpoint, chief):
    for task in tasks:  # fail on a missing, malformed or empty eval file now, not after
        for split in eval_splits(config):  # training (an unlabelled test set is predicted)
            task.check_split(split, task.get_examples(split), need_labels=split == "dev")
    # ... and on a bad training row before any trial dir is emptied.
    train_set = build_training_set(config, tasks) if trains(config) else None
    if trains(config) and config.distribution == "multi_worker_mirrored" and chief:
        # Every trial dir now, before the hosts meet (building the strategy waits for
        # them): the others write into a trial dir (tmp_worker_<i>/) as soon as they start
        # its training, maybe while the chief still predicts the previous trial, so the
        # chief must not empty or create it then.
        for trial in range(1, config.num_trials + 1):
            prepare_trial(config, tasks, bert_config, init_checkpoint, trial, train_set)
    # Built once, for every task and trial; only training is distributed.
    strategy = distribute.build_checked_strategy(
        config, distribute.training_batch_sizes(config)) if trains(config) else None
    trials = run_trials(config, tasks, bert_config, init_checkpoint, strategy, chief,
                        train_set)
    report_repairs(tasks)
    return trials


def report_repairs(tasks):
    """Repeats, at the end where it is seen, what the readers repaired in the data."""
    for task in tasks:
        for split in ("train", "dev", "test"):
            for note in task.repairs(split):
                print("WARNING: %s %s: %s (\"strict_input\": true refuses such data)"
                      % (task.name, split, note), flush=True)


def main(argv=None):
    return runner_cli.runner_main(
        argv, __doc__,
        lambda model_name, data_dir, hparams: run(configure_finetuning.FinetuningConfig(
            model_name, data_dir, **hparams)),
        data_dir_help="holds models/MODEL_NAME/ and finetuning_data/<task>/ (a local dir, "
                      "gs://bucket/... or any TensorFlow file system)",
        model_name_help="the pre-trained model in DATA_DIR/models/MODEL_NAME",
        hparams_help="JSON objects, JSON files or file names in params/ (e.g. "
                     "params_cmrc2018.json '{\"num_train_epochs\": 10}') overriding "
                     "configure_finetuning.py; merged in order, later keys winning",
        search_dirs=[PARAMS_DIR])


if __name__ == "__main__":
    sys.exit(main())
