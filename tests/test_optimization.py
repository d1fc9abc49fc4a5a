"""AdamW update rule, learning-rate schedule and layer-wise decay (model/optimization.py)."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import optimization


def test_adamw_matches_reference_update_and_names_its_slots():
    w0 = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    b0 = np.array([0.1, -0.2], np.float32)
    x = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    lr, decay, steps = 0.01, 0.1, 3
    with tf.Graph().as_default():
        with tf.variable_scope("layer"):
            w = tf.get_variable("kernel", initializer=w0)
            b = tf.get_variable("bias", initializer=b0)
        loss = tf.reduce_sum(tf.square(tf.matmul(x, w) + b))
        opt = optimization.AdamWeightDecayOptimizer(
            learning_rate=lr, weight_decay_rate=decay, exclude_from_weight_decay=["bias"])
        grads = tf.gradients(loss, [w, b])
        train_op = opt.apply_gradients(zip(grads, [w, b]))
        slot_names = sorted(v.op.name for v in tf.global_variables() if "adam" in v.op.name)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(steps):
                sess.run(train_op)
            w_tf, b_tf = sess.run([w, b])
    assert slot_names == ["layer/bias/adam_m", "layer/bias/adam_v",
                          "layer/kernel/adam_m", "layer/kernel/adam_v"]

    # numpy reference: Adam without bias correction + decoupled decay (not on bias)
    w_np, b_np = w0.astype(np.float64), b0.astype(np.float64)
    m = [np.zeros_like(w_np), np.zeros_like(b_np)]
    v = [np.zeros_like(w_np), np.zeros_like(b_np)]
    for _ in range(steps):
        err = 2 * (x @ w_np + b_np)
        grads = [x.T @ err, err.sum(0)]
        for i, (p, g) in enumerate(zip([w_np, b_np], grads)):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            update = m[i] / (np.sqrt(v[i]) + 1e-6)
            if i == 0:
                update = update + decay * p
            p -= lr * update
    np.testing.assert_allclose(w_tf, w_np, rtol=1e-5)
    np.testing.assert_allclose(b_tf, b_np, rtol=1e-5)


def test_learning_rate_warms_up_then_decays_linearly_to_zero():
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        lr = optimization.learning_rate_schedule(1.0, num_train_steps=100, num_warmup_steps=10)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = {}
            for s in (0, 5, 10, 50, 100):
                sess.run(step.assign(s))
                values[s] = sess.run(lr)
    # warm-up multiplies the decayed rate: at step 5, 0.5 * (1 - 5/100)
    np.testing.assert_allclose([values[s] for s in (0, 5, 10, 50, 100)],
                               [0.0, 0.5 * 0.95, 0.9, 0.5, 0.0], atol=1e-6)


def test_layerwise_multipliers_lower_layers_learn_slower():
    mult = optimization.layerwise_lr_multipliers(n_layers=2, layer_decay=0.8)
    assert mult["/embeddings/"] == 0.8 ** 4
    assert mult["encoder/layer_0/"] == 0.8 ** 3
    assert mult["encoder/layer_1/"] == 0.8 ** 2
    assert mult["task_specific/"] == 1.0
    opt = optimization.AdamWeightDecayOptimizer(learning_rate=2.0, lr_multipliers=mult)
    assert opt._lr_for("electra/embeddings/word_embeddings") == 2.0 * 0.8 ** 4
    assert opt._lr_for("electra/encoder/layer_1/output/dense/kernel") == 2.0 * 0.8 ** 2
    assert opt._lr_for("bert/pooler/dense/kernel") == 2.0 * 0.8
    with pytest.raises(ValueError, match="No learning rate specified for variable"):
        opt._lr_for("something_else/kernel")


def test_layerwise_decay_refuses_a_variable_outside_the_known_scopes():
    """As the official optimizer: an unmatched variable is an error, not the full rate."""
    with tf.Graph().as_default():
        with tf.variable_scope("electra/encoder/layer_0"):
            w = tf.get_variable("w", initializer=np.ones([2], np.float32))
        stray = tf.get_variable("stray", initializer=np.ones([2], np.float32))
        loss = tf.reduce_sum(w * stray)
        with pytest.raises(ValueError, match="No learning rate specified for variable stray"):
            optimization.create_optimizer(loss, 1e-3, 10, layerwise_lr_decay_power=0.8,
                                          n_transformer_layers=1)


def test_create_optimizer_clips_and_steps_global_step():
    with tf.Graph().as_default():
        w = tf.get_variable("w", initializer=np.array([1000.0], np.float32))
        loss = tf.reduce_sum(1e6 * w)  # a huge gradient: clipping bounds the Adam input
        train_op, _ = optimization.create_optimizer(loss, 0.1, num_train_steps=10)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train_op)
            sess.run(train_op)
            assert sess.run(tf.train.get_global_step()) == 2
            m = sess.run(tf.global_variables("w/adam_m")[0])
    # clipped gradient is 1.0, so m after two steps = 0.1 + 0.9 * 0.1
    np.testing.assert_allclose(m, [0.19], rtol=1e-5)
