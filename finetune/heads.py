"""Task heads on top of the encoder, one per task type (the TF side of finetune/).

The official ELECTRA heads, layer for layer: `tf.layers.dense` layers (kernel Glorot
uniform, bias zeros) named in creation order `dense`, `dense_1`, ... under
`task_specific/<task name>/` (so layer-wise lr decay gives them the full learning rate),
dropout only where the official head has it (classification). Each head returns
(per-example loss [B], outputs), where outputs are the per-example tensors the task's
Scorer reads (see finetune/task.py); finetune/model_fn.py sums the losses over the batch.
The rtd-prompt head (use_rtd_prompt, not official) is no new head: it is the pre-training
discriminator head under its own names (discriminator_predictions/), a "loss" per sequence.
"""

import tensorflow.compat.v1 as tf

from finetune.qa_head import independent_qa_head, joint_qa_head
from model import modeling

CLASSIFIER_DROPOUT = 0.1  # official: keep_prob 0.9 on the [CLS] vector while training


def classification_head(task, bert_model, bert_config, features, is_training):
    """[CLS] vector -> dropout -> dense(num_labels) `dense`; softmax cross-entropy."""
    num_labels = len(task.label_list)
    reprs = bert_model.get_pooled_output()  # [B, H]
    if is_training:
        reprs = modeling.dropout(reprs, CLASSIFIER_DROPOUT)
    logits = modeling.dense(reprs, num_labels, "dense")  # [B, num_labels]
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=features["label_ids"], logits=logits)  # [B]
    return losses, {"logits": logits}


def tagging_head(task, bert_model, bert_config, features, is_training):
    """Every token -> dense(num_labels) `dense` (no dropout); the cross-entropy of the
    labelled tokens (first sub-token of each word) summed per example, as the official
    tagging head does (not averaged over them)."""
    num_labels = len(task.label_list)
    reprs = bert_model.get_sequence_output()  # [B, L, H]
    logits = modeling.dense(reprs, num_labels, "dense")  # [B, L, num_labels]
    weights = tf.cast(features["label_mask"], tf.float32)  # [B, L]
    token_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=features["label_ids"], logits=logits) * weights  # [B, L]
    return tf.reduce_sum(token_losses, -1), {"logits": logits}


def qa_head(task, bert_model, bert_config, features, is_training):
    """The official joint head (finetune/qa_head.py), or with joint_prediction false
    the official independent one; both use the exact GELU whatever bert_config's
    hidden_act, as the official heads do."""
    hidden = bert_model.get_sequence_output()  # [B, L, H]
    if task.config.joint_prediction:
        return joint_qa_head(hidden, features, task.config, is_training)
    return independent_qa_head(hidden, features, task.config)


def rtd_prompt_head(task, bert_model, bert_config, features, is_training):
    """ELECTRA's pre-training discriminator head as it is (modeling.discriminator_logits,
    restored from the pre-trained checkpoint), on sequences that each hold one candidate
    label word in the prompt (finetune/rtd_prompt.py). Per sequence: word_score = the mean
    over the word's tokens of log P(original) = log sigmoid(-logit), what the scorer
    ranks labels by; loss = the sigmoid cross-entropy of those tokens' logits against
    "original" (the gold label's word) or "replaced" (any other label's), averaged over
    the word's tokens, times 1 / (labels x the label's words): an example's sequences add
    up to the mean over its labels of the mean over their words."""
    logits = modeling.discriminator_logits(bert_model.get_sequence_output(),
                                           bert_config)  # [B, L]
    mask = tf.cast(features["label_word_mask"], tf.float32)  # [B, L]
    n_tokens = tf.maximum(tf.reduce_sum(mask, -1), 1.0)  # [B] (padding records have none)
    word_score = tf.reduce_sum(tf.math.log_sigmoid(-logits) * mask, -1) / n_tokens  # [B]
    replaced = 1.0 - tf.cast(features["is_gold"], tf.float32)  # [B]
    token_losses = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.ones_like(logits) * replaced[:, None], logits=logits)  # [B, L]
    word_loss = tf.reduce_sum(token_losses * mask, -1) / n_tokens  # [B]
    share = len(task.label_list) * tf.maximum(
        tf.cast(features["words_in_label"], tf.float32), 1.0)  # [B]
    return word_loss / share, {"word_score": word_score}


HEADS = {"classification": classification_head, "tagging": tagging_head, "qa": qa_head,
         "rtd_prompt": rtd_prompt_head}


def build_head(task, bert_model, bert_config, features, is_training):
    head = HEADS[task.head_name or task.task_type]
    if head is rtd_prompt_head:  # the pre-trained head: its own names, no task scope
        return head(task, bert_model, bert_config, features, is_training)
    with tf.variable_scope("task_specific/" + task.name):
        return head(task, bert_model, bert_config, features, is_training)
