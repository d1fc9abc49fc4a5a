"""The fine-tuning graph: encoder, task head, loss and optimizer, as a model_fn.

One builder for every user of the graph: the runner (run_finetuning.py) trains and
evaluates with it, finetune/export.py and finetune/predict.py build its PREDICT mode,
bench/finetune_step.py times its training step. Also here: what ties a pre-trained
checkpoint to this graph (the encoder's scope, the shape check, the restore).
"""

import tensorflow.compat.v1 as tf

from finetune import heads
from finetune import preprocessing
from model import modeling
from model import optimization
from model import precision
from util import checkpoints
from util import fs
from util import modes
from util import tpu
from util import tpu_estimator
from util.distribute import cross_replica_sum, is_first_replica, micro_batch_size
from util.training_utils import LoopProgressHook, ProgressHook


def encoder_kwargs(config):
    """Scope and pooler of the encoder: ELECTRA (`electra/`, no pooler) or BERT-family
    checkpoints (BERT-wwm, RoBERTa-wwm-ext, MacBERT, PERT, LERT: `bert/` with a pooler)."""
    if config.model_type == "bert":
        return {"scope": "bert", "add_pooler": True}
    return {"scope": "electra", "add_pooler": False}


RTD_HEAD_MISSING = (
    "use_rtd_prompt scores with the pre-trained discriminator head, which {checkpoint} "
    "lacks: start from an ELECTRA pre-training checkpoint (run_pretraining.py's, or a "
    "released discriminator's with its discriminator_predictions/), or set "
    "\"use_rtd_prompt\": false")


def check_checkpoint(checkpoint, bert_config, config):
    """Encoder variables in the checkpoint must have this model's shapes, and it must hold
    some of them (a task head and an MLM-only run's pooler start fresh). With
    use_rtd_prompt it must also hold the whole discriminator head: that head is the
    classifier, and a fresh one would score at random."""
    with tf.Graph().as_default():
        features = {k: tf.zeros([1, 8], tf.int32) for k in ("input_ids", "input_mask")}
        bert = modeling.BertModel(bert_config, False, features["input_ids"],
                                  features["input_mask"], **encoder_kwargs(config))
        encoder = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
        if config.use_rtd_prompt:
            modeling.discriminator_logits(bert.get_sequence_output(), bert_config)
        head = {v.op.name: v.shape.as_list() for v in tf.global_variables()
                if v.op.name not in encoder}
    remedy = "set model_size (or model_hparam_overrides) to the pre-trained model's"
    checkpoints.check_variable_shapes(
        checkpoint, encoder, remedy, model_config=bert_config, require="some",
        vocab_remedy="use the vocab the model was pre-trained with",
        scope_remedy='set "model_type": "{scope}"')
    if head:
        checkpoints.check_variable_shapes(checkpoint, head, remedy, model_config=bert_config,
                                          require="all", missing_remedy=RTD_HEAD_MISSING)


def restore_pretrained(checkpoint):
    """Initialises the trainable variables found in the checkpoint; (restored, fresh) names."""
    return checkpoints.init_matching_variables(checkpoint, tf.trainable_variables())


def report_restored(config, init_checkpoint, restored, fresh):
    """Says what came from the checkpoint and warns about encoder variables that did not."""
    print("initialised %d variables from %s; %d trained from scratch%s" % (
        len(restored), init_checkpoint, len(fresh), ": " + ", ".join(fresh) if fresh else ""),
        flush=True)
    head_fresh = [n for n in fresh if modeling.DISCRIMINATOR_HEAD_SCOPE + "/" in n]
    if config.use_rtd_prompt and head_fresh:  # (check_checkpoint saw the head there)
        raise RuntimeError("rtd-prompt: %s not restored from %s: the prompt classifies with "
                           "the pre-trained head" % (", ".join(head_fresh), init_checkpoint))
    scope = encoder_kwargs(config)["scope"]
    encoder_fresh = [n for n in fresh if n.startswith(scope + "/")]
    pooler = [n for n in encoder_fresh if n.startswith(scope + "/pooler/")]
    if pooler and len(pooler) == len([n for n in fresh + restored
                                      if n.startswith(scope + "/pooler/")]):
        # An MLM-only pre-training (ours with electra_objective false) trains no
        # pooler: it starts fresh like the task head, which is not a missing weight.
        print("note: the checkpoint has no %s/pooler (MLM-only pre-training): the "
              "pooler is trained from scratch" % scope, flush=True)
        encoder_fresh = [n for n in encoder_fresh if n not in pooler]
    if encoder_fresh:
        print("WARNING: %d encoder variables were not in the checkpoint: %s" % (
            len(encoder_fresh), ", ".join(encoder_fresh[:20])), flush=True)


def write_initial_checkpoint(config, task, bert_config, init_checkpoint, model_dir):
    """model_dir/model.ckpt-0: task's model as init_checkpoint holds it, nothing trained
    (zero_shot: the dev/test predictions read their weights from the trial dir, as after
    training). Restores and reports as a training trial's start does."""
    with tf.Graph().as_default():
        tf.train.create_global_step()
        features = {spec.name: tf.zeros([1] + list(spec.shape), tf.int32)
                    for spec in task.feature_specs()}
        model_fn_builder(config, [task], bert_config, None, 1)(
            features, None, modes.PREDICT, {})
        if init_checkpoint:
            restored, fresh = restore_pretrained(init_checkpoint)
            report_restored(config, init_checkpoint, restored, fresh)
        saver = tf.train.Saver(sharded=True, save_relative_paths=True)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return saver.save(session, fs.join(model_dir, "model.ckpt"), global_step=0,
                              write_meta_graph=False)


def batch_loss(losses, config):
    """The loss the optimizer minimises, from the per-example losses [B] of this replica.

    "sum" (official): the sum over the batch. Under a tf.distribute strategy each replica
    sums its share and optimization.py sums the replicas' gradients before clipping, so
    the global loss and gradient are the one-device ones. On a TPU each core sums its
    share and CrossShardOptimizer sums the cores' (clipped) gradients, as the official
    code does there. "mean": that sum divided by the global train_batch_size (training
    batches are always full), the same quantity over the same replicas.
    """
    total = tf.reduce_sum(losses)
    if config.loss_reduction == "mean":
        return total / float(config.train_batch_size)
    return total


def multitask_losses(tasks, bert, bert_config, features, is_training):
    """Per-example losses [B] of a training batch: one head per task on the shared
    encoder, each example's loss from its own task's head (its task_id, as in the
    official model); padding records (task_id len(tasks)) add nothing. Batches without
    task_id (bench/finetune_step.py's) are all of the one task."""
    per_task = []
    for task in tasks:
        task_features = dict(features, **{
            spec.name: features[preprocessing.task_feature_name(tasks, task, spec.name)]
            for spec in task.feature_specs()})
        losses, _ = heads.build_head(task, bert, bert_config, task_features, is_training)
        per_task.append(losses)  # [B] each
    if preprocessing.TASK_ID not in features:
        return per_task[0]
    owner = tf.one_hot(features[preprocessing.TASK_ID], len(tasks))  # [B, T]
    return tf.reduce_sum(tf.stack(per_task, -1) * owner, -1)


def model_fn_builder(config, tasks, bert_config, init_checkpoint, num_train_steps):
    """A model_fn (features, labels, mode, params) for tasks (a list): TRAIN
    the AdamW step of the (multi-task) model, PREDICT (one task) the head's outputs plus
    the per-example loss. In the TPU graph
    (util/tpu.py: use_tpu, use_tpu_estimator) it returns TPUEstimatorSpecs, looks the
    embeddings up one-hot, restores the checkpoint in a scaffold_fn and reports progress
    without the loss (LoopProgressHook)."""
    tpu_graph = tpu.tpu_graph(config)

    def model_fn(features, labels, mode, params):
        is_training = mode == modes.TRAIN
        with precision.xla_scope(config.use_xla):  # its gradients are compiled with it
            bert = modeling.BertModel(
                bert_config, is_training, features["input_ids"], features["input_mask"],
                features["segment_ids"], use_one_hot_embeddings=tpu_graph,
                compute_dtype=precision.compute_dtype(config.mixed_precision),
                **encoder_kwargs(config))
            if is_training:
                losses = multitask_losses(tasks, bert, bert_config, features, True)
            else:
                if len(tasks) != 1:
                    raise ValueError("predictions are made one task at a time")
                losses, outputs = heads.build_head(tasks[0], bert, bert_config, features,
                                                   False)
            loss = batch_loss(losses, config)
        if mode == modes.PREDICT:
            predictions = dict(outputs, loss=losses)
            if preprocessing.REAL_EXAMPLE in features:  # padded eval batches (TPU graph)
                predictions[preprocessing.REAL_EXAMPLE] = features[preprocessing.REAL_EXAMPLE]
            if tpu_graph:
                return tpu_estimator.tpu_estimator_spec(mode, predictions=predictions)
            return modes.ModelSpec(mode, predictions=predictions)
        scaffold_fn = None
        if init_checkpoint:
            def restore():
                restored, fresh = restore_pretrained(init_checkpoint)  # every replica (synced)
                if is_first_replica():  # report once, not once per replica
                    report_restored(config, init_checkpoint, restored, fresh)
            scaffold_fn = tpu.restore_in_scaffold(config, restore)
        with precision.xla_scope(config.use_xla):
            train_op, lr = optimization.create_optimizer(
                loss, config.learning_rate, num_train_steps,
                weight_decay_rate=config.weight_decay_rate, use_tpu=config.use_tpu,
                warmup_proportion=config.warmup_proportion,
                layerwise_lr_decay_power=config.layerwise_lr_decay,
                n_transformer_layers=bert_config.num_hidden_layers,
                loss_scaling=config.mixed_precision == "fp16", optimizer=config.optimizer,
                accumulation_steps=config.gradient_accumulation_steps)
        if tpu_graph:  # a TPU's tensors stay on the device: progress without the loss
            hook = LoopProgressHook(num_train_steps, config.log_every_steps,
                                    config.train_batch_size)
            return tpu_estimator.tpu_estimator_spec(mode, loss=loss, train_op=train_op,
                                                    scaffold_fn=scaffold_fn,
                                                    training_hooks=[hook])
        # The progress line shows the mean per-example loss of the whole batch (whatever
        # loss_reduction), from the sum of the replicas' per-example losses.
        mean_loss = (cross_replica_sum(tf.reduce_sum(losses))
                     / float(micro_batch_size(config)))  # (this micro-batch's)
        # Its all-reduce runs in every session run (see run_pretraining.py: fetched only by
        # the hooks, at different runs, it would leave a worker of a cluster waiting).
        train_op = tf.group(train_op, mean_loss)
        if is_first_replica():  # TensorBoard, every log_every_steps (save_summary_steps);
            tf.summary.scalar("mean_example_loss", mean_loss)  # ("loss": the loop's,
            tf.summary.scalar("learning_rate", lr)  # the batch loss as reduced)
        hook = ProgressHook({"loss": mean_loss, "lr": lr}, num_train_steps,
                            config.log_every_steps, config.train_batch_size,
                            runs_per_step=config.gradient_accumulation_steps)
        return modes.ModelSpec(mode, loss=loss, train_op=train_op, training_hooks=[hook])
    return model_fn
