"""Dynamic masking, scatter/gather and generator sampling (pretrain/pretrain_helpers.py)."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from pretrain import pretrain_data
from pretrain import pretrain_helpers

PAD, CLS, SEP, MASK = 0, 101, 102, 103
MAX_LEN = 64
MASK_PROB = 0.15
N_SLOTS = int((MASK_PROB + 0.005) * MAX_LEN)


def make_batch(rng, batch_size=32):
    """Examples of varied length: [CLS] A [SEP] (B [SEP]) then padding."""
    ids = np.zeros([batch_size, MAX_LEN], np.int32)
    mask = np.zeros_like(ids)
    for b in range(batch_size):
        length = int(rng.integers(4, MAX_LEN + 1))
        tokens = rng.integers(1000, 5000, size=length).astype(np.int32)
        tokens[0] = CLS
        tokens[-1] = SEP
        if length > 8:
            tokens[length // 2] = SEP
        ids[b, :length] = tokens
        mask[b, :length] = 1
    return ids, mask


@pytest.fixture(scope="module")
def masking_runs():
    """Many masking draws over fixed batches, evaluated in one graph."""
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)  # reproducible draws: the statistical checks cannot flake
        ids_ph = tf.placeholder(tf.int32, [None, MAX_LEN])
        mask_ph = tf.placeholder(tf.int32, [None, MAX_LEN])
        inputs = pretrain_data.Inputs(ids_ph, mask_ph, tf.zeros_like(ids_ph), None, None, None)
        masked = pretrain_helpers.mask(inputs, MASK_PROB, N_SLOTS, MASK, [CLS, SEP, MASK])
        restored = pretrain_helpers.unmask(masked)
        with tf.Session() as sess:
            runs = []
            for _ in range(60):
                ids, mask = make_batch(rng)
                out = sess.run([masked, restored.input_ids], {ids_ph: ids, mask_ph: mask})
                runs.append((ids, mask) + tuple(out))
    return runs


def test_masked_count_per_example_is_exact(masking_runs):
    for ids, mask, masked, restored in masking_runs:
        num_tokens = mask.sum(-1)
        expected = np.maximum(1, np.minimum(N_SLOTS, np.round(num_tokens * MASK_PROB)))
        weights = masked.masked_lm_weights
        np.testing.assert_array_equal(weights.sum(-1), expected)
        for b in range(len(ids)):
            used = masked.masked_lm_positions[b][weights[b] > 0]
            assert len(set(used.tolist())) == len(used), "a position was masked twice"
            # Slots are filled front to back; unused slots point at position 0.
            assert np.all(weights[b][:len(used)] == 1)
            assert np.all(masked.masked_lm_positions[b][weights[b] == 0] == 0)


def test_cls_sep_and_padding_are_never_masked(masking_runs):
    for ids, mask, masked, _ in masking_runs:
        for b in range(len(ids)):
            used = masked.masked_lm_positions[b][masked.masked_lm_weights[b] > 0]
            assert np.all(mask[b][used] == 1), "padding was masked"
            assert not np.isin(ids[b][used], [CLS, SEP]).any(), "[CLS]/[SEP] was masked"
            untouched = np.ones(MAX_LEN, bool)
            untouched[used] = False
            np.testing.assert_array_equal(masked.input_ids[b][untouched], ids[b][untouched])


def test_mask_token_share_is_85_percent(masking_runs):
    n_mask = n_total = 0
    for ids, _, masked, _ in masking_runs:
        for b in range(len(ids)):
            used = masked.masked_lm_positions[b][masked.masked_lm_weights[b] > 0]
            now = masked.input_ids[b][used]
            # A masked position either shows [MASK] or keeps its original token.
            assert np.all((now == MASK) | (now == ids[b][used]))
            n_mask += int((now == MASK).sum())
            n_total += len(used)
    share = n_mask / n_total
    sigma = np.sqrt(0.85 * 0.15 / n_total)
    assert n_total > 5000
    assert abs(share - 0.85) < 4 * sigma, (share, n_total)


def test_masked_lm_ids_are_the_original_tokens_and_unmask_restores(masking_runs):
    for ids, _, masked, restored in masking_runs:
        for b in range(len(ids)):
            w = masked.masked_lm_weights[b] > 0
            pos = masked.masked_lm_positions[b][w]
            np.testing.assert_array_equal(masked.masked_lm_ids[b][w], ids[b][pos])
            assert np.all(masked.masked_lm_ids[b][~w] == 0)
        np.testing.assert_array_equal(restored, ids)


def test_positions_are_uniform_over_candidates(masking_runs):
    """Every candidate position is chosen about equally often (no position bias)."""
    counts = np.zeros(MAX_LEN)
    opportunities = np.zeros(MAX_LEN)
    for ids, mask, masked, _ in masking_runs:
        for b in range(len(ids)):
            candidates = (mask[b] == 1) & ~np.isin(ids[b], [CLS, SEP])
            n = masked.masked_lm_weights[b].sum()
            opportunities[candidates] += n / candidates.sum()
            used = masked.masked_lm_positions[b][masked.masked_lm_weights[b] > 0]
            counts[used] += 1
    seen = opportunities > 50
    # Each count is ~Poisson(opportunities): allow 5 standard deviations per position
    # (a biased sampler, e.g. one never picking late positions, is off by far more).
    z = (counts[seen] - opportunities[seen]) / np.sqrt(opportunities[seen])
    assert seen.sum() > 40
    assert np.all(np.abs(z) < 5), z


def test_scatter_update_and_gather():
    seq = np.arange(20, dtype=np.int32).reshape(2, 10)
    positions = np.array([[3, 5, 0], [9, 0, 0]], np.int32)
    updates = np.array([[-3, -5, -99], [-9, -98, -97]], np.int32)
    with tf.Graph().as_default(), tf.Session() as sess:
        updated, updated_mask = sess.run(pretrain_helpers.scatter_update(
            tf.constant(seq), tf.constant(updates), tf.constant(positions)))
        gathered = sess.run(pretrain_helpers.gather_positions(
            tf.constant(seq), tf.constant(positions)))
    expected = seq.copy()
    expected[0, 3], expected[0, 5], expected[1, 9] = -3, -5, -9  # position 0 never written
    np.testing.assert_array_equal(updated, expected)
    np.testing.assert_array_equal(updated_mask, (expected != seq).astype(np.int32))
    np.testing.assert_array_equal(gathered, [[3, 5, 0], [19, 10, 10]])


def test_sample_from_softmax_follows_probabilities_and_disallow():
    probs = np.array([0.7, 0.2, 0.1, 0.0], np.float32)
    logits = np.log(np.maximum(probs, 1e-30))[None, None, :].repeat(4000, axis=1)
    disallow = np.zeros_like(logits)
    disallow[..., 0] = 1.0
    with tf.Graph().as_default(), tf.Session() as sess:
        free = sess.run(pretrain_helpers.sample_from_softmax(tf.constant(logits)))
        banned = sess.run(pretrain_helpers.sample_from_softmax(
            tf.constant(logits), disallow=tf.constant(disallow)))
    freq = np.bincount(free.ravel(), minlength=4) / free.size
    np.testing.assert_allclose(freq, probs, atol=0.03)
    assert not np.any(banned == 0)
    assert abs((banned == 1).mean() - 2 / 3) < 0.04
