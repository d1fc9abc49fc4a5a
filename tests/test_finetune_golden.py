"""Golden values of the fine-tuning graph against a NumPy transcription of the official
formulas (../shared/reference/official-electra-facts.md, "The fine-tuning graph").

Each head runs on fixed small weights and a fixed batch of encoder outputs. The loss the
optimizer sees (finetune.model_fn.batch_loss: summed over the batch), and its gradient
with respect to every head weight, must equal the NumPy figures: analytic gradients for
the classification and tagging heads, central finite differences of the float64 NumPy
loss for the QA heads. Heads without dropout in the official code are checked in
training mode, so dropout added back would fail here. Last, one whole AdamW step (global
norm clipping of the summed gradient, per-variable layer-wise rates, decoupled weight
decay) against its NumPy transcription.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from finetune import heads
from finetune.model_fn import batch_loss
from model import optimization

B, L, H = 3, 7, 6
INPUT_MASK = np.array([[1] * 7, [1] * 6 + [0], [1] * 5 + [0] * 2])
SEGMENT_IDS = np.array([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 0, 0]])
SUM_CONFIG = SimpleNamespace(loss_reduction="sum", train_batch_size=B)


def np_gelu(x):
    return x * 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_softmax(x):
    return np.exp(np_log_softmax(x))


class FixedEncoder(object):
    """Stands in for modeling.BertModel: fixed final hidden states [B, L, H]."""

    def __init__(self, hidden):
        self.hidden = tf.constant(hidden, tf.float32)

    def get_sequence_output(self):
        return self.hidden

    def get_pooled_output(self):
        return self.hidden[:, 0]


def head_graph(task, hidden, features, is_training, values, hidden_act="gelu"):
    """Builds the task's head on hidden (the encoder's hidden_act given); sets its
    variables to values (name suffix after task_specific/<task>/ -> array). Returns
    (batch loss, {name: gradient}) evaluated."""
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        feats = {k: tf.constant(v, tf.int32) for k, v in features.items()}
        losses, _ = heads.build_head(task, FixedEncoder(hidden), SimpleNamespace(
            hidden_act=hidden_act), feats, is_training)
        loss = batch_loss(losses, SUM_CONFIG)
        prefix = "task_specific/%s/" % task.name
        variables = {v.op.name[len(prefix):]: v for v in tf.trainable_variables()}
        assert sorted(variables) == sorted(values), sorted(variables)
        grads = dict(zip(variables, tf.gradients(loss, list(variables.values()))))
        with tf.Session() as sess:
            for name, var in variables.items():
                var.load(values[name], sess)
            return sess.run([loss, grads])


def random_values(shapes, seed=0):
    rng = np.random.RandomState(seed)
    return {name: rng.normal(scale=0.5, size=shape).astype(np.float32)
            for name, shape in shapes.items()}


def task(name, task_type, num_labels=0, **config):
    return SimpleNamespace(name=name, task_type=task_type, head_name=None,
                           label_list=list(range(num_labels)), config=SimpleNamespace(**config))


def hidden_states(seed=1):
    return np.random.RandomState(seed).normal(size=(B, L, H)).astype(np.float32)


# ------------------------------------------------------------------ classification

def test_classification_loss_and_gradient_are_the_official_sums():
    hidden, labels = hidden_states(), np.array([0, 2, 1])
    values = random_values({"dense/kernel": [H, 3], "dense/bias": [3]})
    loss, grads = head_graph(task("xnli", "classification", 3), hidden,
                             {"label_ids": labels}, False, values)
    cls = hidden[:, 0].astype(np.float64)
    logits = cls @ values["dense/kernel"] + values["dense/bias"]
    one_hot = np.eye(3)[labels]
    expected = -(one_hot * np_log_softmax(logits)).sum()  # summed over the batch
    d_logits = np_softmax(logits) - one_hot
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads["dense/kernel"], cls.T @ d_logits, atol=1e-5)
    np.testing.assert_allclose(grads["dense/bias"], d_logits.sum(0), atol=1e-5)


def test_classification_drops_out_the_cls_vector_while_training_only():
    hidden, labels = hidden_states(), np.array([0, 2, 1])
    values = random_values({"dense/kernel": [H, 3], "dense/bias": [3]})
    args = (task("xnli", "classification", 3), hidden, {"label_ids": labels})
    eval_loss, _ = head_graph(*args, False, values)
    train_loss, _ = head_graph(*args, True, values)
    assert abs(train_loss - eval_loss) > 1e-3  # keep_prob 0.9 on [CLS]


def test_mean_reduction_is_the_sum_over_the_global_batch_size():
    with tf.Graph().as_default():
        losses = tf.constant([1.0, 2.0, 4.5])
        with tf.Session() as sess:
            total, mean = sess.run([batch_loss(losses, SUM_CONFIG), batch_loss(
                losses, SimpleNamespace(loss_reduction="mean", train_batch_size=4))])
    assert (total, mean) == (7.5, 7.5 / 4)


# ------------------------------------------------------------------------ tagging

def test_tagging_loss_is_summed_over_labelled_tokens_without_dropout():
    hidden = hidden_states(2)
    labels = np.random.RandomState(3).randint(0, 4, size=(B, L))
    label_mask = np.array([[0, 1, 1, 0, 1, 1, 0], [0, 1, 0, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0, 0]])
    values = random_values({"dense/kernel": [H, 4], "dense/bias": [4]}, seed=4)
    loss, grads = head_graph(task("msra-ner", "tagging", 4), hidden,
                             {"label_ids": labels, "label_mask": label_mask}, True, values)
    h = hidden.astype(np.float64)
    logits = h @ values["dense/kernel"] + values["dense/bias"]  # [B, L, 4]
    one_hot = np.eye(4)[labels]
    expected = -((one_hot * np_log_softmax(logits)).sum(-1) * label_mask).sum()
    d_logits = (np_softmax(logits) - one_hot) * label_mask[..., None]
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads["dense/kernel"],
                               np.einsum("blh,blk->hk", h, d_logits), atol=1e-5)
    np.testing.assert_allclose(grads["dense/bias"], d_logits.sum((0, 1)), atol=1e-5)


# ----------------------------------------------------------------------------- QA

QA_FEATURES = {"input_mask": INPUT_MASK, "segment_ids": SEGMENT_IDS,
               "start_positions": np.array([3, 0, 2]), "end_positions": np.array([5, 0, 3])}


def np_penalty():
    mask = INPUT_MASK * SEGMENT_IDS
    mask[:, 0] = 1
    return 1000.0 * (mask - 1.0)


def np_cross_entropy(logits, positions):
    return -np_log_softmax(logits)[np.arange(len(positions)), positions]


def np_joint_qa_loss(v, hidden):
    """The official joint head's training loss, summed over the batch (float64)."""
    h, pen = hidden.astype(np.float64), np_penalty()
    start_logits = h @ v["dense/kernel"][:, 0] + v["dense/bias"][0] + pen  # [B, L]
    gold = h[np.arange(B), QA_FEATURES["start_positions"]]  # [B, H]
    pairs = np.concatenate([np.repeat(gold[:, None], L, 1), h], -1)  # [B, L, 2H]
    end_hidden = np_gelu(pairs @ v["qa_hidden/kernel"] + v["qa_hidden/bias"])
    end_logits = end_hidden @ v["dense_1/kernel"][:, 0] + v["dense_1/bias"][0] + pen
    losses = 0.5 * (np_cross_entropy(start_logits, QA_FEATURES["start_positions"]) +
                    np_cross_entropy(end_logits, QA_FEATURES["end_positions"]))
    return (losses + np_answerable_term(v, h, start_logits)).sum()


def np_answerable_term(v, h, start_logits):
    """0.5 x the sigmoid cross-entropy (label 0) of the answerable logit, per example."""
    weighted = np.einsum("bl,blh->bh", np_softmax(start_logits), h)
    answerable_hidden = np_gelu(np.concatenate([h[:, 0], weighted], -1) @ v["dense_2/kernel"]
                                + v["dense_2/bias"])
    logit = answerable_hidden @ v["dense_3/kernel"][:, 0] + v["dense_3/bias"][0]
    return 0.5 * np.log1p(np.exp(logit))


def np_independent_qa_loss(v, hidden):
    h, pen = hidden.astype(np.float64), np_penalty()
    start_logits = h @ v["dense/kernel"][:, 0] + v["dense/bias"][0] + pen
    end_logits = h @ v["dense_1/kernel"][:, 0] + v["dense_1/bias"][0] + pen
    losses = 0.5 * (np_cross_entropy(start_logits, QA_FEATURES["start_positions"]) +
                    np_cross_entropy(end_logits, QA_FEATURES["end_positions"]))
    return (losses + np_answerable_term(v, h, start_logits)).sum()


def finite_difference_check(np_loss, values, hidden, grads, coords_per_variable=40):
    """Central differences of the float64 NumPy loss at sampled coordinates."""
    rng = np.random.RandomState(0)
    v64 = {k: x.astype(np.float64) for k, x in values.items()}
    for name, value in v64.items():
        flat = value.reshape(-1)
        picks = rng.choice(flat.size, min(coords_per_variable, flat.size), replace=False)
        for i in picks:
            old = flat[i]
            flat[i] = old + 1e-6
            up = np_loss(v64, hidden)
            flat[i] = old - 1e-6
            down = np_loss(v64, hidden)
            flat[i] = old
            numeric = (up - down) / 2e-6
            got = grads[name].reshape(-1)[i]
            assert got == pytest.approx(numeric, abs=1e-5, rel=1e-4), (name, i)


def qa_values(seed):
    shapes = {"dense/kernel": [H, 1], "dense/bias": [1], "qa_hidden/kernel": [2 * H, 512],
              "qa_hidden/bias": [512], "dense_1/kernel": [512, 1], "dense_1/bias": [1],
              "dense_2/kernel": [2 * H, 512], "dense_2/bias": [512],
              "dense_3/kernel": [512, 1], "dense_3/bias": [1]}
    values = random_values(shapes, seed)
    for name in ("qa_hidden/kernel", "dense_1/kernel", "dense_2/kernel", "dense_3/kernel"):
        values[name] *= 0.1  # keep the 512-wide layers' outputs of order 1
    return values


JOINT_QA = dict(joint_prediction=True, beam_size=4, answerable_classifier=True,
                answerable_uses_start_logits=True, answerable_weight=0.5)
INDEPENDENT_QA = dict(JOINT_QA, joint_prediction=False)


def independent_qa_values(seed):
    values = qa_values(seed)
    del values["qa_hidden/kernel"], values["qa_hidden/bias"]
    values["dense_1/kernel"] = values["dense_1/kernel"][:H] * 10.0  # [H, 1] here
    return values


def test_joint_qa_head_is_the_official_one_with_its_variable_names():
    hidden = hidden_states(5)
    values = qa_values(6)
    loss, grads = head_graph(task("cmrc2018", "qa", **JOINT_QA), hidden, QA_FEATURES,
                             True, values)
    np.testing.assert_allclose(loss, np_joint_qa_loss(values, hidden), rtol=1e-5, atol=1e-5)
    finite_difference_check(np_joint_qa_loss, values, hidden, grads)


def test_independent_qa_head_is_the_official_one():
    hidden = hidden_states(7)
    values = independent_qa_values(8)
    loss, grads = head_graph(task("drcd", "qa", **INDEPENDENT_QA), hidden, QA_FEATURES,
                             True, values)
    np.testing.assert_allclose(loss, np_independent_qa_loss(values, hidden), rtol=1e-5,
                               atol=1e-5)
    finite_difference_check(np_independent_qa_loss, values, hidden, grads)


@pytest.mark.parametrize("hidden_act", ["gelu_new", "relu", "linear"])
def test_qa_heads_use_exact_gelu_whatever_the_encoders_hidden_act(hidden_act):
    """The official QA heads call modeling.gelu (exact erf) for qa_hidden and the
    answerable classifier's dense(512), never the encoder's hidden_act: a released model
    fine-tuned with "gelu_new", "relu" or "linear" in its config gets the same head. The
    loss equals the "gelu" graph's to the bit (gelu_new moves it by only ~2e-6 relative)
    and the NumPy transcription with exact GELU."""
    hidden = hidden_states(5)
    for name, config, values, np_loss in [
            ("cmrc2018", JOINT_QA, qa_values(6), np_joint_qa_loss),
            ("drcd", INDEPENDENT_QA, independent_qa_values(8), np_independent_qa_loss)]:
        args = (task(name, "qa", **config), hidden, QA_FEATURES, True, values)
        loss, _ = head_graph(*args, hidden_act=hidden_act)
        assert loss == head_graph(*args, hidden_act="gelu")[0], name
        np.testing.assert_allclose(loss, np_loss(values, hidden), rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------- initialisers

def test_head_kernels_start_glorot_uniform_and_biases_zero():
    """tf.layers.dense's defaults, which the official heads use: U(-a, a) with
    a = sqrt(6 / (fan_in + fan_out)), not a truncated normal of stddev 0.02."""
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        hidden = hidden_states()
        heads.build_head(task("tnews", "classification", 15), FixedEncoder(
            np.repeat(hidden, 1, 0)), None, {"label_ids": tf.zeros([B], tf.int32)}, False)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            kernel, bias = sess.run(tf.trainable_variables())
    limit = math.sqrt(6.0 / (H + 15))
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.8 * limit  # 90 draws: some lie near the edge
    assert kernel.std() == pytest.approx(limit / math.sqrt(3), rel=0.25)
    assert not bias.any()


# ---------------------------------------------------------------- one AdamW step

def test_one_training_step_is_adamw_on_the_clipped_summed_gradient():
    """An encoder layer (tanh(x W), under electra/encoder/layer_0/) and the
    classification head, one step of create_optimizer as the fine-tuning graph calls it
    (layer-wise decay 0.8 over 1 layer, weight decay 0.01, no warm-up): each variable
    moves by the NumPy AdamW update of the summed gradient clipped to global norm 1."""
    rng = np.random.RandomState(9)
    x = rng.normal(size=(B, L, H)).astype(np.float32)
    labels = np.array([1, 0, 1])
    w0 = rng.normal(scale=0.5, size=(H, H)).astype(np.float32)
    k0 = rng.normal(scale=0.5, size=(H, 2)).astype(np.float32)
    b0 = np.array([0.1, -0.2], np.float32)
    lr, decay, wd = 0.01, 0.8, 0.01
    with tf.Graph().as_default():
        with tf.variable_scope("electra/encoder/layer_0/dense"):
            w = tf.get_variable("kernel", initializer=w0)
        encoder = FixedEncoder(x)
        encoder.hidden = tf.tanh(tf.einsum("blh,hk->blk", tf.constant(x), w))
        losses, _ = heads.build_head(task("chnsenticorp", "classification", 2), encoder,
                                     None, {"label_ids": tf.constant(labels)}, False)
        train_op, _ = optimization.create_optimizer(
            batch_loss(losses, SUM_CONFIG), lr, num_train_steps=10, weight_decay_rate=wd,
            layerwise_lr_decay_power=decay, n_transformer_layers=1)
        kernel, bias = [v for v in tf.trainable_variables() if "task_specific" in v.name]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            kernel.load(k0, sess)
            bias.load(b0, sess)
            sess.run(train_op)
            got = sess.run({"w": w, "k": kernel, "b": bias})

    # NumPy: forward, backward of the summed loss, clipping, AdamW (first step: m, v = 0).
    cls_in = x[:, 0].astype(np.float64)
    reprs = np.tanh(cls_in @ w0)  # [B, H]: only [CLS] reaches the loss
    logits = reprs @ k0 + b0
    d_logits = np_softmax(logits) - np.eye(2)[labels]
    grads = {"k": reprs.T @ d_logits, "b": d_logits.sum(0),
             "w": cls_in.T @ ((d_logits @ k0.T) * (1 - reprs ** 2))}
    norm = math.sqrt(sum((g ** 2).sum() for g in grads.values()))
    assert norm > 1.0  # the summed gradient is clipped on this batch
    params = {"w": w0, "k": k0, "b": b0}
    rates = {"w": lr * decay ** 2, "k": lr, "b": lr}  # layer 0 at depth 1 of n_layers + 2 = 3
    for name, g in grads.items():
        g = g / norm
        m, v = 0.1 * g, 0.001 * g ** 2
        update = m / (np.sqrt(v) + 1e-6)
        if name != "b":  # no weight decay on biases
            update = update + wd * params[name]
        np.testing.assert_allclose(got[name], params[name] - rates[name] * update,
                                   atol=1e-6, err_msg=name)
