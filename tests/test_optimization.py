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


def _numpy_lamb_step(params, grads, slots, lr, decay, excluded, beta_1=0.9, beta_2=0.999,
                     eps=1e-6, trust_ratio=True):
    """One LAMB step in NumPy, float64, transcribed from the LAMB of BERT/ALBERT: AdamW's
    update without bias correction, decoupled weight decay, and the trust ratio
    ||w|| / ||update|| (1 where a norm is zero, and for variables excluded from decay)."""
    out = {}
    for name, w in params.items():
        g = grads[name]
        m, v = slots[name]
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        update = m / (np.sqrt(v) + eps)
        ratio = 1.0
        if not any(fragment in name for fragment in excluded):
            update = update + decay * w
            w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(update)
            if trust_ratio and w_norm > 0 and u_norm > 0:
                ratio = w_norm / u_norm
        slots[name] = (m, v)
        out[name] = w - lr * ratio * update
    return out


def test_lamb_matches_a_numpy_lamb_with_its_exclusions_and_zero_norms():
    rng = np.random.RandomState(0)
    params = {"layer/kernel": rng.randn(3, 4), "layer/bias": rng.randn(4),
              "layer/LayerNorm/gamma": 1.0 + 0.1 * rng.randn(4),
              "zero/kernel": np.zeros((2, 2))}  # ||w|| = 0: ratio 1
    grads = [{name: rng.randn(*w.shape) for name, w in params.items()} for _ in range(3)]
    grads[1]["layer/kernel"] = np.zeros((3, 4))  # a zero gradient for one step
    lr, decay = 0.05, 0.01
    with tf.Graph().as_default():
        variables, feeds = {}, {}
        for name, w in params.items():
            scope, leaf = name.rsplit("/", 1)
            with tf.variable_scope(scope):
                variables[name] = tf.get_variable(leaf, initializer=w.astype(np.float32))
            feeds[name] = tf.placeholder(tf.float32, w.shape)
        opt = optimization.LambOptimizer(learning_rate=lr, weight_decay_rate=decay,
                                         exclude_from_weight_decay=["LayerNorm", "bias"])
        train_op = opt.apply_gradients([(feeds[n], variables[n]) for n in params])
        slot_names = sorted(v.op.name for v in tf.global_variables() if "adam" in v.op.name)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for step_grads in grads:
                sess.run(train_op, {feeds[n]: step_grads[n] for n in params})
            got = sess.run(variables)
    assert slot_names == sorted(n + s for n in params for s in ("/adam_m", "/adam_v"))
    expected = dict(params)
    slots = {n: (np.zeros_like(w), np.zeros_like(w)) for n, w in params.items()}
    for step_grads in grads:
        expected = _numpy_lamb_step(expected, step_grads, slots, lr, decay,
                                    ["LayerNorm", "bias"])
    for name in params:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    # The trust ratio is active: AdamW's result differs for the decayed kernel.
    adamw = dict(params)
    adam_slots = {n: (np.zeros_like(w), np.zeros_like(w)) for n, w in params.items()}
    for step_grads in grads:
        adamw = _numpy_lamb_step(adamw, step_grads, adam_slots, lr, decay,
                                 ["LayerNorm", "bias"], trust_ratio=False)
    assert np.abs(adamw["layer/kernel"] - got["layer/kernel"]).max() > 1e-3


def test_create_optimizer_refuses_an_unknown_optimizer():
    with tf.Graph().as_default():
        w = tf.get_variable("w", initializer=1.0)
        with pytest.raises(ValueError, match="lamb"):
            optimization.create_optimizer(w * w, 0.1, 10, optimizer="lars")


def _two_term_model(ids, x, weights):
    """A toy with what the ELECTRA and LERT losses have: a word-embedding table both terms
    look up, which the first also reads densely (the generator's tied output layer); a table
    read only by one gather whose output both terms use (sparse gradients, the rows of the
    two terms adding up, as LERT's heads on one encoder); a LayerNorm-named and a bias
    variable (no decay, no trust ratio); and two loss terms, each a sum over its positions
    divided by its own count of the batch."""
    table = tf.get_variable("embeddings/word", initializer=np.linspace(
        -1, 1, 40, dtype=np.float32).reshape(10, 4))
    kernel = tf.get_variable("dense/kernel", initializer=np.eye(4, 3, dtype=np.float32) + 0.5)
    bias = tf.get_variable("dense/bias", initializer=np.float32([0.1, -0.2, 0.3]))
    gamma = tf.get_variable("LayerNorm/gamma", initializer=np.ones(3, np.float32))
    types = tf.get_variable("embeddings/types", initializer=np.float32([[0.3, -0.3, 0.2, 0.1],
                                                                         [-0.1, 0.2, 0.4, 0.3]]))

    def encode(vectors):  # [b, 4] -> [b, 3]
        return ((vectors + x) @ kernel + bias) * gamma

    type_vectors = tf.nn.embedding_lookup(types, tf.math.floormod(ids, 2))  # one gather, 2 terms
    hidden = encode(tf.nn.embedding_lookup(table, ids) + type_vectors)
    logits = tf.matmul(hidden, table[:, :3], transpose_b=True)  # [b, 10], the tied output
    per_row = tf.reduce_sum(tf.square(hidden - 1.0), -1) + tf.reduce_logsumexp(logits, -1)
    fake_ids = tf.math.floormod(ids * 3 + 1, 10)
    fakes = encode(tf.nn.embedding_lookup(table, fake_ids) + 2.0 * type_vectors)
    first = (tf.reduce_sum(weights * per_row), tf.reduce_sum(weights))
    second = (tf.reduce_sum(tf.abs(fakes[:, 0])), tf.cast(tf.shape(fakes)[0], tf.float32))
    return [(2.0, first[0], first[1]), (50.0, second[0], second[1])]


def _train_toy(optimizer, k, batches, loss_scaling=False):
    """Variables after len(batches) runs of train_op, each fed one batch (ids, x, weights)."""
    with tf.Graph().as_default():
        ids = tf.placeholder(tf.int32, [None])
        x = tf.placeholder(tf.float32, [None, 4])
        weights = tf.placeholder(tf.float32, [None])
        terms = _two_term_model(ids, x, weights)
        loss = tf.add_n([w * n / (d + 1e-6) for w, n, d in terms])
        train_op, lr = optimization.create_optimizer(
            loss, 0.01, num_train_steps=10, weight_decay_rate=0.01, clip_norm=1.0,
            optimizer=optimizer, accumulation_steps=k, loss_terms=terms,
            loss_scaling=loss_scaling)
        grad_norm = tf.global_norm(tf.gradients(loss, tf.trainable_variables()))
        step = tf.train.get_global_step()
        with tf.Session() as sess:
            sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
            trace, norms = [], []
            for b_ids, b_x, b_w in batches:
                feed = {ids: b_ids, x: b_x, weights: b_w}
                norms.append(sess.run(grad_norm, feed))
                sess.run(train_op, feed)
                trace.append(sess.run([step, lr]))
            return sess.run({v.op.name: v for v in tf.trainable_variables()}), trace, norms


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_four_micro_batches_of_four_make_the_update_of_one_batch_of_sixteen(optimizer):
    rng = np.random.RandomState(3)
    ids = rng.randint(0, 10, 32)
    x = rng.randn(32, 4).astype(np.float32)
    weights = (rng.rand(32) < 0.3).astype(np.float32)  # unequal counts per micro-batch
    big = [(ids[i:i + 16], x[i:i + 16], weights[i:i + 16]) for i in (0, 16)]
    micro = [(ids[i:i + 4], x[i:i + 4], weights[i:i + 4]) for i in range(0, 32, 4)]
    assert len({w.sum() for _, _, w in micro}) > 1
    want, _, norms = _train_toy(optimizer, 1, big[:1])
    got, _, _ = _train_toy(optimizer, 4, micro[:4])
    assert min(norms) > 1.0  # global-norm clipping at 1.0 is active
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7, err_msg=name)
    # global_step and the learning rate follow updates, not micro-batches; a second update
    # stays with the large batch's too
    want, big_trace, _ = _train_toy(optimizer, 1, big)
    got, micro_trace, _ = _train_toy(optimizer, 4, micro)
    assert [s for s, _ in micro_trace] == [0, 0, 0, 1, 1, 1, 1, 2]
    assert [s for s, _ in big_trace] == [1, 2]
    assert micro_trace[3][1] == big_trace[0][1] and micro_trace[7][1] == big_trace[1][1]
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7, err_msg=name)
    # and the accumulation did something: the first big step alone differs from two
    first_only, _, _ = _train_toy(optimizer, 1, big[:1])
    assert max(np.abs(first_only[n] - want[n]).max() for n in want) > 1e-3


def test_accumulation_under_loss_scaling_unscales_each_micro_batch_and_skips_bad_windows():
    """float16's loss scale (2^15, exact in float32) leaves the accumulated update as it is;
    a window with one non-finite micro-batch gradient makes no update at all."""
    rng = np.random.RandomState(5)
    ids, x = rng.randint(0, 10, 16), rng.randn(16, 4).astype(np.float32)
    weights = (rng.rand(16) < 0.5).astype(np.float32)
    micro = [(ids[i:i + 4], x[i:i + 4], weights[i:i + 4]) for i in range(0, 16, 4)]
    plain, _, _ = _train_toy("adamw", 4, micro)
    scaled, trace, _ = _train_toy("adamw", 4, micro, loss_scaling=True)
    for name in plain:  # (a sparse gradient stays sparse through the unscaling, too)
        np.testing.assert_array_equal(scaled[name], plain[name], err_msg=name)
    assert [s for s, _ in trace] == [0, 0, 0, 1]
    bad = list(micro)
    bad[1] = (bad[1][0], np.full_like(bad[1][1], np.inf), bad[1][2])
    skipped, trace, _ = _train_toy("adamw", 4, bad, loss_scaling=True)
    initial, _, _ = _train_toy("adamw", 4, [])
    for name in initial:
        np.testing.assert_array_equal(skipped[name], initial[name], err_msg=name)
    assert trace[-1][0] == 1  # the step still counts, as a skipped float16 step does
