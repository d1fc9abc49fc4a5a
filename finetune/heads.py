"""Task heads on top of the encoder, one per task type (the TF side of finetune/).

Each head lives under `task_specific/<task name>/` (so layer-wise lr decay gives it the
full learning rate) and returns (per-example loss [B], outputs), where outputs are the
per-example tensors the task's Scorer reads (see finetune/task.py).
"""

import tensorflow.compat.v1 as tf

from finetune.qa_head import joint_qa_head
from model import modeling

HEAD_DROPOUT = 0.1  # dropout on the encoder output feeding each head, as in ELECTRA


def _dense(x, units, bert_config, name="dense"):
    return modeling.dense(x, units, name,
                          kernel_initializer=modeling.create_initializer(
                              bert_config.initializer_range))


def classification_head(task, bert_model, bert_config, features, is_training):
    """[CLS] vector -> label logits [B, num_labels]; softmax cross-entropy."""
    num_labels = len(task.label_list)
    reprs = bert_model.get_pooled_output()  # [B, H]
    if is_training:
        reprs = modeling.dropout(reprs, HEAD_DROPOUT)
    logits = _dense(reprs, num_labels, bert_config)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=features["label_ids"], logits=logits)  # [B]
    return losses, {"logits": logits}


def tagging_head(task, bert_model, bert_config, features, is_training):
    """Every token -> label logits [B, L, num_labels]; loss over first sub-tokens only."""
    num_labels = len(task.label_list)
    reprs = bert_model.get_sequence_output()  # [B, L, H]
    if is_training:
        reprs = modeling.dropout(reprs, HEAD_DROPOUT)
    logits = _dense(reprs, num_labels, bert_config)
    weights = tf.cast(features["label_mask"], tf.float32)  # [B, L]
    token_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=features["label_ids"], logits=logits) * weights
    losses = tf.reduce_sum(token_losses, -1) / (1e-6 + tf.reduce_sum(weights, -1))
    return losses, {"logits": logits}


def qa_head(task, bert_model, bert_config, features, is_training):
    """The official joint head (finetune/qa_head.py), or with joint_prediction false
    the independent one."""
    if task.config.joint_prediction:
        return joint_qa_head(bert_model.get_sequence_output(), features, task.config,
                             modeling.get_activation(bert_config.hidden_act), is_training)
    return independent_qa_head(task, bert_model, bert_config, features, is_training)


def independent_qa_head(task, bert_model, bert_config, features, is_training):
    """BERT's head (joint_prediction false): every token -> start and end logits [B, L];
    mean of the two cross-entropies."""
    reprs = bert_model.get_sequence_output()  # [B, L, H]
    if is_training:
        reprs = modeling.dropout(reprs, HEAD_DROPOUT)
    logits = _dense(reprs, 2, bert_config)  # [B, L, 2]
    # Padding can never hold an answer: push its logits far down.
    padding = (1.0 - tf.cast(features["input_mask"], tf.float32)) * -10000.0
    start_logits = logits[:, :, 0] + padding
    end_logits = logits[:, :, 1] + padding
    losses = 0.5 * (
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=features["start_positions"], logits=start_logits) +
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=features["end_positions"], logits=end_logits))
    return losses, {"start_logits": start_logits, "end_logits": end_logits}


HEADS = {"classification": classification_head, "tagging": tagging_head, "qa": qa_head}


def build_head(task, bert_model, bert_config, features, is_training):
    with tf.variable_scope("task_specific/" + task.name):
        return HEADS[task.task_type](task, bert_model, bert_config, features, is_training)
