"""Pre-trains an ELECTRA (or BERT-MLM) model on tfrecords from build_pretraining_dataset.py.

    python run_pretraining.py --data-dir D --model-name M --hparams '{"model_size": "small"}'

Reads D/pretrain_tfrecords/pretrain_data.tfrecord* and D/vocab.txt; writes checkpoints,
TensorBoard summaries and results to D/models/M/. Running the same command again after
an interruption resumes from the newest checkpoint there.
"""

import json
import os
import sys

from util import interrupt  # noqa: E402
if __name__ == "__main__":  # a stop while TensorFlow loads: one line, no traceback
    interrupt.stop_cleanly_before_start()
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import tensorflow.compat.v1 as tf  # noqa: E402

import configure_pretraining
import runner_cli
from model import optimization
from model import precision
from model import tokenization
from model.configs import discriminator_config
from pretrain import model_dir
from pretrain import objective
from pretrain import pretrain_data
from util import distribute
from util import checkpoints
from util import fs
from util import lock
from util import modes
from util import tfrecords
from util import tpu
from util import tpu_estimator
from util import training_loop
from util.distribute import cross_replica_sum, is_first_replica
from util.errors import InputError
from util.io import atomic_write_json
from util.progress import Progress
from util.training_utils import (CheckpointLogger, CountingHook, LoopProgressHook,
                                 ProgressHook)

DAMAGED_TFRECORD_REMEDY = (
    "rebuild the tfrecords (build_pretraining_dataset.py ... --overwrite) or leave the file "
    "out of pretrain_tfrecords; the checkpoints written so far are kept and a rerun resumes")
EMBEDDING_VARIABLES = ("electra/embeddings/word_embeddings", "bert/embeddings/word_embeddings")
VOCAB_REMEDY = "use the vocab it was trained with, or a fresh model_name"
RESUME_SHAPE_REMEDY = ("set the model_size and model_hparam_overrides it was trained with, "
                       "or use a new --model-name")
INIT_SHAPE_REMEDY = ("set model_size (and model_hparam_overrides, embedding_size) to the "
                     "checkpoint's: a warm start takes its weights as they are")
RESUME_MISSING_REMEDY = (
    "it was not written by this pre-training (a released checkpoint has no optimizer "
    "slots). To continue from its weights, use a new --model-name with "
    "\"init_checkpoint\": \"{checkpoint}\"")


def load_special_ids(config):
    """Vocab check (size must equal vocab_size) and the ids masking needs."""
    tokenizer = tokenization.build_tokenizer(vocab_file=config.vocab_file,
                                             do_lower_case=config.do_lower_case,
                                             spm_model_file=config.spm_model_file)
    source = config.spm_model_file or config.vocab_file
    if len(tokenizer) != config.vocab_size:
        raise InputError(
            "%s has %d tokens but vocab_size is %d: set \"vocab_size\": %d in --hparams, "
            "or use the vocab the model was meant for"
            % (source, len(tokenizer), config.vocab_size, len(tokenizer)))
    return {t: tokenizer.vocab[t] for t in ("[MASK]", "[CLS]", "[SEP]")}


def check_checkpoint_vocab(checkpoint, vocab_size, what):
    """A checkpoint's word-embedding table must have vocab_size rows (checked before the
    hparams record of a resume: another vocab is the likelier mistake, and this says so)."""
    checkpoints.check_variable_shapes(
        checkpoint, {name: [vocab_size, None] for name in EMBEDDING_VARIABLES},
        VOCAB_REMEDY, require="present", what=what, vocab_remedy=VOCAB_REMEDY)


def is_optimizer_state(name):
    """The step counter and Adam's moments: a warm-started run starts them afresh."""
    return name == "global_step" or name.endswith(optimization.SLOT_SUFFIXES)


def warm_start(init_checkpoint):
    """Initialises the model's weights from init_checkpoint where name and shape match. The
    step and the optimizer state are not taken: a continued pre-training is a fresh run
    (step 0, the whole warm-up and decay), not a resume of the source's schedule."""
    weights = [v for v in tf.global_variables() if not is_optimizer_state(v.op.name)]
    restored, skipped = checkpoints.init_matching_variables(init_checkpoint, weights)
    if not is_first_replica():  # the other replicas' copies start from the first's values
        return
    print("warm start from %s: %d variables restored, %d not found (kept at their "
          "initialisation)%s" % (init_checkpoint, len(restored), len(skipped),
                                 ": " + ", ".join(skipped[:10]) if skipped else ""), flush=True)


def initial_step(config):
    """The step a warm-started run starts at (init_checkpoint_step): 0, N, or the
    checkpoint's own global_step."""
    step = config.init_checkpoint_step
    if step != "checkpoint":
        return step or 0
    checkpoints.check_not_hf(config.init_checkpoint, "init_checkpoint")
    if not tf.train.checkpoint_exists(config.init_checkpoint):
        raise InputError("init_checkpoint %s not found: with \"init_checkpoint_step\": "
                         "\"checkpoint\" its global_step is where this run's schedule starts"
                         % config.init_checkpoint)
    reader = tf.train.load_checkpoint(fs.tf_checkpoint_path(config.init_checkpoint))
    if not reader.has_tensor("global_step"):
        raise InputError(
            "init_checkpoint %s has no global_step (a released model's checkpoint holds only "
            "weights): set \"init_checkpoint_step\" to the steps it was trained for (e.g. "
            "1000000 for the released ELECTRA-small), or null for a fresh schedule"
            % config.init_checkpoint)
    step = int(reader.get_tensor("global_step"))
    if step >= config.num_train_steps:
        raise InputError(
            "init_checkpoint %s is at step %d, not below num_train_steps %d: nothing would be "
            "trained; raise num_train_steps past it (the schedule decays to 0 there)"
            % (config.init_checkpoint, step, config.num_train_steps))
    return step


def start_at(global_step, step):
    """The init_fn(session) of a fresh run that starts its schedule at `step`: it runs after
    the initialisers and before any hook, so the first checkpoint, progress line and
    learning rate are step's."""
    set_step = global_step.assign(step)
    return lambda session: session.run(set_step)


def start_scaffold(step):
    """start_at in a Scaffold, for the TPU graph's scaffold_fn."""
    init = start_at(tf.train.get_global_step(), step)
    return tf.train.Scaffold(init_fn=lambda scaffold, session: init(session))


def model_fn_builder(config, special_ids, warm_start_from, start_step=0, warmup_from=0):
    """start_step: the first step of a fresh warm-started run (init_checkpoint_step);
    warmup_from: where the schedule's warm-up starts (that step, in its resumes too)."""
    def model_fn(features, labels, mode, params):
        is_training = mode == modes.TRAIN
        with precision.xla_scope(config.use_xla):  # its gradients are compiled with it
            model = objective.PretrainingModel(config, features, is_training, special_ids)
        scaffold_fn = tpu.restore_in_scaffold(
            config, lambda: warm_start(warm_start_from),
            lambda: start_scaffold(start_step) if start_step else None) \
            if warm_start_from else None
        init_fn = start_at(tf.train.get_global_step(), start_step) \
            if start_step and is_training and not tpu.tpu_graph(config) else None
        disc_loss = (model.disc_output.loss if model.disc_output is not None
                     else tf.constant(0.0))
        if is_training:
            with precision.xla_scope(config.use_xla):
                train_op, lr = optimization.create_optimizer(
                    model.total_loss, config.learning_rate, config.num_train_steps,
                    weight_decay_rate=config.weight_decay_rate, use_tpu=config.use_tpu,
                    num_warmup_steps=config.num_warmup_steps,
                    lr_decay_power=config.lr_decay_power,
                    loss_scaling=config.mixed_precision == "fp16", optimizer=config.optimizer,
                    accumulation_steps=config.gradient_accumulation_steps,
                    loss_terms=model.loss_terms, warmup_from=warmup_from)
            if tpu.tpu_graph(config):  # no summaries on a TPU; its tensors stay there
                hook = LoopProgressHook(config.num_train_steps, config.log_every_steps,
                                        config.train_batch_size)
                return tpu_estimator.tpu_estimator_spec(
                    mode, loss=model.total_loss, train_op=train_op, scaffold_fn=scaffold_fn,
                    training_hooks=[hook])
            losses = {"loss/total": model.total_loss, "loss/generator": model.gen_loss,
                      "loss/discriminator": disc_loss}
            for out in model.linguistic_outputs:  # LERT: each head's loss
                losses["loss/" + out.name] = out.loss
            # On several replicas each loss is the replica's share of the batch's: sum them.
            losses = dict(zip(losses, cross_replica_sum(list(losses.values()))))
            # That all-reduce runs in every session run: fetched only by the hooks (the
            # chief's summaries, the progress lines: at other runs with accumulation or
            # log_every_steps > 1), a worker of a cluster would wait in it for the others.
            train_op = tf.group(train_op, *losses.values())
            if is_first_replica():  # one set of summaries, not one per replica
                for name, value in sorted(losses.items()) + [("learning_rate", lr)]:
                    tf.summary.scalar(name, value)
                for out in model.linguistic_outputs:  # and each head's schedule weight
                    tf.summary.scalar("lert_weight/" + out.name, out.weight)
            progress = {"loss": losses["loss/total"], "gen": losses["loss/generator"]}
            if model.disc_output is not None:
                progress["disc"] = losses["loss/discriminator"]
            for out in model.linguistic_outputs:
                progress[out.name] = losses["loss/" + out.name]
            progress["lr"] = lr
            hook = ProgressHook(progress, config.num_train_steps, config.log_every_steps,
                                config.train_batch_size,
                                runs_per_step=config.gradient_accumulation_steps)
            return modes.ModelSpec(mode, loss=model.total_loss, train_op=train_op,
                                   training_hooks=[hook], init_fn=init_fn)
        tensors = model.eval_tensors()
        if tpu.tpu_graph(config):
            return tpu_estimator.tpu_estimator_spec(
                mode, loss=model.total_loss, eval_metrics=(objective.metric_fn, tensors),
                scaffold_fn=scaffold_fn)
        # The eval loss metric averages over replicas: give each the batch's whole loss.
        return modes.ModelSpec(mode, loss=cross_replica_sum(model.total_loss),
                               eval_metric_ops=objective.metric_fn(**tensors))
    return model_fn


def build_trainer(config, special_ids, warm_start_from, strategy=None, start_step=0,
                  warmup_from=0):
    """The training loop (util/training_loop.py; the TPUEstimator for the TPU graph).
    strategy: a tf.distribute strategy (distribution hparam) or None for one device.
    Multi-worker evaluation is not distributed (the chief evaluates alone). start_step: the
    schedule's first step for a fresh warm-started run (init_checkpoint_step)."""
    return training_loop.build_trainer(
        config, model_fn_builder(config, special_ids, warm_start_from, start_step, warmup_from),
        config.model_dir,
        config.seed, config.train_batch_size, config.eval_batch_size,
        session_config=precision.session_config(config.use_xla), train_distribute=strategy,
        eval_distribute=strategy if config.distribution == "mirrored" else None)


def run_eval(trainer, config, eval_files, checkpoint_path=None):
    """Evaluates a checkpoint (default: the newest); prints and appends the metrics."""
    print("evaluating %d batches of %d from %s" % (
        config.num_eval_steps, config.eval_batch_size, ", ".join(eval_files[:3])), flush=True)
    input_fn = pretrain_data.get_input_fn(eval_files, config.max_seq_length, is_training=False,
                                          batch_size=config.eval_batch_size,
                                          extra_features=extra_features(config))
    progress = Progress(config.num_eval_steps, "evaluating", "batches", interval=10.0,
                        quiet_if_short=True)
    with tfrecords.name_damaged_file(eval_files, DAMAGED_TFRECORD_REMEDY):
        results = trainer.evaluate(input_fn=input_fn, steps=config.num_eval_steps,
                                   checkpoint_path=checkpoint_path,
                                   hooks=[CountingHook(progress)])
    results = {k: float(v) for k, v in results.items()}
    lines = ["%s: %.4f" % (k, v) for k, v in sorted(results.items())]
    print("eval results at step %d:\n  %s" % (results["global_step"], "\n  ".join(lines)),
          flush=True)
    fs.makedirs(fs.dirname(config.results_txt))
    fs.append_text(config.results_txt, "step %d: %s\n" % (results["global_step"], ", ".join(lines)))
    history = []
    if fs.exists(config.results_json):
        history = json.loads(fs.read_text(config.results_json))
    history.append(results)
    atomic_write_json(config.results_json, history)
    return results


class EvalEachCheckpoint(tf.train.CheckpointSaverListener):
    """Evaluates every checkpoint right after it is saved: a learning curve for do_eval."""

    def __init__(self, trainer, config, eval_files):
        self._args = (trainer, config, eval_files)
        self.evaluated_steps = set()

    def after_save(self, session, global_step_value):
        trainer, config, eval_files = self._args
        checkpoint = os.path.join(config.model_dir, "model.ckpt-%d" % global_step_value)
        run_eval(trainer, config, eval_files, checkpoint_path=checkpoint)
        self.evaluated_steps.add(global_step_value)


def graph_variable_shapes(config, special_ids):
    """{name: shape} of every variable the training graph holds (weights, optimizer
    slots, global_step), built on dummy features in a throwaway graph."""
    with tf.Graph().as_default():
        features = {name: tf.zeros([1, config.max_seq_length], tf.int32)
                    for name in pretrain_data.FEATURE_NAMES + extra_features(config)}
        tf.train.get_or_create_global_step()
        model_fn_builder(config, special_ids, None)(features, None,
                                                    modes.TRAIN, {})
        return {v.op.name: v.shape.as_list() for v in tf.global_variables()}


def extra_features(config):
    """Features beyond input_ids/input_mask/segment_ids that the objective reads."""
    names = []
    if config.whole_word_masking:
        names.append(pretrain_data.WORD_STARTS)
    if config.lert_objective:
        names.extend(pretrain_data.LINGUISTIC_FEATURES)
    return tuple(names)


def check_extra_features(config, files):
    """whole_word_masking / lert_objective need tfrecords built for them: say so up front."""
    if config.whole_word_masking:
        pretrain_data.check_features(files, [pretrain_data.WORD_STARTS], "whole_word_masking",
                                     "--segmenter jieba (or --segmenter ref --ref-file ...)")
    if config.lert_objective:
        pretrain_data.check_features(files, list(pretrain_data.LINGUISTIC_FEATURES),
                                     "lert_objective",
                                     "--segmenter jieba --linguistic-labels")


def warn_about_warmup(config):
    """A warm-up of more than half the run (e.g. the default 10,000 steps kept for a short
    run) leaves the learning rate far from its peak: say so, with the numbers."""
    warmup, steps = config.num_warmup_steps, config.num_train_steps
    if warmup <= steps // 2:
        return
    # The schedule's highest point: decay (1 - t/T)^power times warm-up min(1, t/W).
    highest = max((1 - t / steps) ** config.lr_decay_power * min(1.0, t / warmup)
                  for t in range(0, steps + 1, max(1, steps // 1000)))
    print("WARNING: num_warmup_steps %d is %.0f%% of num_train_steps %d: the learning rate "
          "never passes %.2g%% of learning_rate %g; set \"num_warmup_steps\" to about 10%% "
          "of the run, e.g. %d" % (warmup, 100.0 * warmup / steps, steps, 100 * highest,
                                   config.learning_rate, max(1, steps // 10)), flush=True)


def train_and_eval(config):
    """Checks the inputs, then (holding the model dir's lock on the chief: a second run on
    it stops, naming this one) the model dir, then trains and/or evaluates."""
    tpu.check_tensorflow(config)
    precision.check_supported(config.mixed_precision, config.use_tpu, "pre-training hparams")
    if config.do_train:
        warn_about_warmup(config)
    special_ids = load_special_ids(config)
    train_files = eval_files = None
    if config.do_train:
        train_files = pretrain_data.find_tfrecords(config.pretrain_tfrecords)
        pretrain_data.check_seq_length(train_files, config.max_seq_length)
        check_extra_features(config, train_files)
    if config.do_eval:
        eval_files = find_eval_tfrecords(config)
        pretrain_data.check_seq_length(eval_files, config.max_seq_length)
        check_extra_features(config, eval_files)
    chief = distribute.is_chief(config)
    if not chief:  # the other hosts of a cluster only train
        return train_and_eval_in_model_dir(config, special_ids, train_files, eval_files, chief)
    with lock.hold(config.model_dir, "model dir"):
        return train_and_eval_in_model_dir(config, special_ids, train_files, eval_files, chief)


def find_eval_tfrecords(config):
    """do_eval's data: eval_tfrecords if set, else the examples the builder held out beside
    the training tfrecords (--eval-share), else the training tfrecords, as the official
    code (saying so: its metrics then flatter the model)."""
    if config.eval_tfrecords:
        return pretrain_data.find_tfrecords(config.eval_tfrecords)
    held_out = pretrain_data.held_out_tfrecords(config.pretrain_tfrecords)
    if held_out:
        return held_out
    print("do_eval: evaluating on the training tfrecords (no eval_tfrecords, no held-out "
          "examples beside them: build the data with --eval-share 0.02 to hold some out)",
          flush=True)
    return pretrain_data.find_tfrecords(config.pretrain_tfrecords)


def train_and_eval_in_model_dir(config, special_ids, train_files, eval_files, chief):
    # The strategy first: multi-worker collectives must be configured before anything
    # starts TensorFlow's runtime (the checks below build a graph to read its shapes).
    batches = distribute.training_batch_sizes(config)
    if config.distribution == "mirrored" and config.do_eval:
        batches["eval_batch_size"] = config.eval_batch_size
    strategy = distribute.build_checked_strategy(config, batches)
    latest = checkpoints.latest_checkpoint(config.model_dir)
    if latest:
        check_checkpoint_vocab(latest, config.vocab_size, "checkpoint")
    # A first run starts from init_checkpoint, else from the weights an import (or an
    # unzipped released model) put into the model dir.
    init_from = None if latest else (
        config.init_checkpoint or checkpoints.starting_checkpoint(config.model_dir))
    if init_from:
        checkpoints.check_not_hf(init_from, "init_checkpoint")
        if not tf.train.checkpoint_exists(init_from):
            raise InputError("init_checkpoint %s not found" % init_from)
        check_checkpoint_vocab(init_from, config.vocab_size, "init_checkpoint")
        # Another model size would be skipped variable by variable: stop here instead.
        checkpoints.check_variable_shapes(
            init_from,
            {name: shape for name, shape in graph_variable_shapes(config, special_ids).items()
             if not is_optimizer_state(name)}, INIT_SHAPE_REMEDY,
            model_config=discriminator_config(config), require="some", what="init_checkpoint")
    # The schedule of a run continuing init_checkpoint's starts (and warms up) at its step,
    # in this run's resumes too.
    warmup_from = initial_step(config) if config.init_checkpoint else 0
    start_step = 0 if latest else warmup_from
    # Each training tfrecord's identity, read once: compared on a resume, then recorded.
    train_record = model_dir.data_record(train_files) if train_files else None
    if latest:  # a resume: the same run, or nothing is touched
        model_dir.check_resume(config, train_record)
        # Every variable of the training graph (weights, optimizer slots, global_step):
        # a released checkpoint or another model size fails here, not mid-restore.
        checkpoints.check_variable_shapes(
            latest, graph_variable_shapes(config, special_ids), RESUME_SHAPE_REMEDY,
            model_config=discriminator_config(config), require="all",
            missing_remedy=RESUME_MISSING_REMEDY)
    if chief:
        model_dir.write_model_files(config, train_record)

    trainer = build_trainer(config, special_ids, init_from, strategy, start_step, warmup_from)
    if config.do_train:
        if latest:
            print("resuming from %s" % latest, flush=True)
        elif init_from and not config.init_checkpoint:
            print("starting from the weights in the model dir: %s (set \"init_checkpoint\" "
                  "to start from another checkpoint)" % init_from, flush=True)
        elif start_step:
            print("starting at step %d of the schedule of %s (init_checkpoint_step)"
                  % (start_step, config.init_checkpoint), flush=True)
        print("training %s (%s objective) to step %d on %d tfrecord files, batch %d x %d "
              "tokens%s%s; model dir %s" % (
                  config.model_size, objective_label(config),
                  config.num_train_steps, len(train_files), config.train_batch_size,
                  config.max_seq_length, distribute.describe_batch_split(config, strategy),
                  ", %s" % config.optimizer if config.optimizer != "adamw" else "",
                  config.model_dir), flush=True)
        input_fn = pretrain_data.get_input_fn(train_files, config.max_seq_length,
                                              is_training=True,
                                              batch_size=distribute.micro_batch_size(config),
                                              extra_features=extra_features(config),
                                              seed=data_seed(config),
                                              shuffle_buffer_size=config.shuffle_buffer_size)
        if config.distribution == "multi_worker_mirrored":
            with tfrecords.name_damaged_file(train_files, DAMAGED_TFRECORD_REMEDY):
                trainer.train(input_fn=input_fn, max_steps=config.num_train_steps)
            return eval_on_chief(config, special_ids, eval_files, chief)
        listeners = [CheckpointLogger()]
        if config.do_eval and config.eval_each_checkpoint:
            listeners.append(EvalEachCheckpoint(trainer, config, eval_files))
        with tfrecords.name_damaged_file(train_files, DAMAGED_TFRECORD_REMEDY):
            trainer.train(input_fn=input_fn, max_steps=config.num_train_steps,
                          saving_listeners=listeners)
        final_step = trainer.get_variable_value("global_step")
        if len(listeners) > 1 and final_step in listeners[1].evaluated_steps:
            return None  # the last checkpoint has been evaluated already
    if config.do_eval:
        if config.distribution == "multi_worker_mirrored":
            return eval_on_chief(config, special_ids, eval_files, chief)
        return run_eval(trainer, config, eval_files)
    return None


def data_seed(config):
    """The shuffle seed: explicit when batches must not depend on the graph (several hosts
    shuffle alike and take disjoint shares; per_example_randomness runs are reproducible
    across device counts); otherwise None, derived from the graph seed as before."""
    if config.distribution != "none" or config.per_example_randomness:
        return config.seed
    return None


def eval_on_chief(config, special_ids, eval_files, chief):
    """do_eval after multi-host training: the chief evaluates alone, on one device."""
    if not config.do_eval:
        return None
    if not chief:
        print("do_eval: the chief evaluates the final checkpoint", flush=True)
        return None
    return run_eval(build_trainer(config, special_ids, None), config, eval_files)


def objective_label(config):
    label = ("ELECTRA" if config.electra_objective
             else "LERT" if config.lert_objective else "BERT MLM")
    return label + (", whole-word masking" if config.whole_word_masking else "")


def start(model_name, data_dir, hparams):
    config = configure_pretraining.PretrainingConfig(model_name, data_dir, **hparams)
    if config.results_pkl:
        print("results_pkl: results are written as JSON (%s), no pickles"
              % config.results_json, flush=True)
    train_and_eval(config)


def main(argv=None):
    return runner_cli.runner_main(
        argv, __doc__, start,
        data_dir_help="holds pretrain_tfrecords/, vocab.txt and models/ (a local dir, "
                      "gs://bucket/... or any TensorFlow file system)",
        model_name_help="checkpoints and results go to DATA_DIR/models/MODEL_NAME",
        hparams_help="JSON objects or paths of JSON files overriding configure_pretraining.py "
                     "defaults; several are merged in order, later keys winning")


if __name__ == "__main__":
    sys.exit(main())
