"""Dynamic masking, scatter/gather and generator sampling (pretrain/pretrain_helpers.py)."""

import types

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from pretrain import objective
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


def draw_masks(with_replacement):
    """Many masking draws over fixed batches, evaluated in one graph."""
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)  # reproducible draws: the statistical checks cannot flake
        ids_ph = tf.placeholder(tf.int32, [None, MAX_LEN])
        mask_ph = tf.placeholder(tf.int32, [None, MAX_LEN])
        inputs = pretrain_data.Inputs(ids_ph, mask_ph, tf.zeros_like(ids_ph), None, None, None)
        masked = pretrain_helpers.mask(inputs, MASK_PROB, N_SLOTS, MASK, [CLS, SEP, MASK],
                                       with_replacement=with_replacement)
        restored = pretrain_helpers.unmask(masked)
        with tf.Session() as sess:
            runs = []
            for _ in range(60):
                ids, mask = make_batch(rng)
                out = sess.run([masked, restored.input_ids], {ids_ph: ids, mask_ph: mask})
                runs.append((ids, mask) + tuple(out))
    return runs


@pytest.fixture(scope="module")
def masking_runs():
    return draw_masks(with_replacement=False)


@pytest.fixture(scope="module")
def official_runs():
    return draw_masks(with_replacement=True)


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


# ------------------------------------------------------------- masking "official"

def test_official_masking_draws_n_slots_with_replacement(official_runs):
    """n slots per example (as many as the default's positions), each a uniform draw over
    the candidates, so positions repeat about as often as n draws with replacement do."""
    duplicates = expected_duplicates = 0.0
    for ids, mask, masked, restored in official_runs:
        num_tokens = mask.sum(-1)
        expected = np.maximum(1, np.minimum(N_SLOTS, np.round(num_tokens * MASK_PROB)))
        np.testing.assert_array_equal(masked.masked_lm_weights.sum(-1), expected)
        for b in range(len(ids)):
            w = masked.masked_lm_weights[b] > 0
            used = masked.masked_lm_positions[b][w]
            assert np.all(mask[b][used] == 1), "padding was masked"
            assert not np.isin(ids[b][used], [CLS, SEP]).any(), "[CLS]/[SEP] was masked"
            np.testing.assert_array_equal(masked.masked_lm_ids[b][w], ids[b][used])
            now = masked.input_ids[b][used]
            assert np.all((now == MASK) | (now == ids[b][used]))
            k = ((mask[b] == 1) & ~np.isin(ids[b], [CLS, SEP])).sum()
            n = len(used)
            duplicates += n - len(set(used.tolist()))
            expected_duplicates += n - k * (1 - (1 - 1 / k) ** n)  # n - E[distinct]
        np.testing.assert_array_equal(restored, ids)
    assert expected_duplicates > 300
    assert abs(duplicates - expected_duplicates) < 5 * np.sqrt(expected_duplicates), (
        duplicates, expected_duplicates)


def test_scatter_update_duplicate_positions_floor_their_mean():
    """The official arithmetic: updates landing on one position are summed and
    floor-divided by their count; slots pointing at position 0 write nothing."""
    seq = np.full([3, 8], 7, np.int32)
    positions = np.array([[3, 3, 5, 0],    # two draws of 3 (10, 13), one of 5
                          [4, 4, 4, 0],    # three draws of 4 (10, 11, 13)
                          [2, 6, 2, 2]], np.int32)  # three of 2 (5, 9, 100), one of 6
    updates = np.array([[10, 13, 20, 99], [10, 11, 13, 99], [5, 40, 9, 100]], np.int32)
    with tf.Graph().as_default(), tf.Session() as sess:
        updated, updated_mask = sess.run(pretrain_helpers.scatter_update(
            tf.constant(seq), tf.constant(updates), tf.constant(positions)))
    expected = seq.copy()
    expected[0, 3] = 11  # floor((10 + 13) / 2) = floor(11.5)
    expected[0, 5] = 20
    expected[1, 4] = 11  # floor((10 + 11 + 13) / 3) = floor(11.33)
    expected[2, 2] = 38  # floor((5 + 9 + 100) / 3) = 38
    expected[2, 6] = 40
    np.testing.assert_array_equal(updated, expected)
    mask = np.zeros_like(seq)
    mask[0, [3, 5]] = mask[1, 4] = mask[2, [2, 6]] = 1  # once per position, whatever the count
    np.testing.assert_array_equal(updated_mask, mask)


def hand_worked_official_mask(monkeypatch, positions, ids, mask_token_share):
    """mask(with_replacement=True) with its position draws replaced by `positions`."""
    monkeypatch.setattr(pretrain_helpers, "official_positions",
                        lambda candidates, n_slots: tf.constant(positions, tf.int32))
    with tf.Graph().as_default(), tf.Session() as sess:
        inputs = pretrain_data.Inputs(tf.constant(ids), tf.constant(np.ones_like(ids)),
                                      tf.zeros_like(ids), None, None, None)
        return sess.run(pretrain_helpers.mask(inputs, 0.4, 4, MASK, [CLS, SEP, MASK],
                                              mask_token_share=mask_token_share,
                                              with_replacement=True))


def test_official_mask_at_duplicate_positions(monkeypatch):
    # 10 tokens -> n = round(10 * 0.4) = 4 slots, all used; position 3 drawn twice.
    ids = np.array([[CLS, 11, 12, 13, 14, 15, 16, 17, 18, SEP]], np.int32)
    masked = hand_worked_official_mask(monkeypatch, [[3, 3, 6, 1]], ids, 1.0)
    np.testing.assert_array_equal(masked.masked_lm_positions, [[3, 3, 6, 1]])
    np.testing.assert_array_equal(masked.masked_lm_ids, [[13, 13, 16, 11]])  # both slots
    np.testing.assert_array_equal(masked.masked_lm_weights, [[1, 1, 1, 1]])  # weigh twice
    # floor((MASK + MASK) / 2) = MASK: a doubly drawn position shows [MASK] once.
    np.testing.assert_array_equal(
        masked.input_ids, [[CLS, MASK, 12, MASK, 14, 15, MASK, 17, 18, SEP]])
    # With mask_token_share 0 no slot writes [MASK]: the tokens stay as they were.
    kept = hand_worked_official_mask(monkeypatch, [[3, 3, 3, 6]], ids, 0.0)
    np.testing.assert_array_equal(kept.input_ids, ids)
    np.testing.assert_array_equal(kept.masked_lm_ids, [[13, 13, 13, 16]])


def test_official_fake_data_at_duplicate_positions():
    """The generator's samples at a doubly (triply) drawn position are averaged, floored:
    that token is the fake input there, labelled by comparison with the original."""
    vocab = 128
    ids = np.array([[1, 20, 21, 50, 23, 70, 25, 0],
                    [1, 50, 22, 23, 24, 25, 26, 0],
                    [1, 21, 25, 23, 24, 25, 26, 0]], np.int32)
    input_mask = np.array([[1] * 7 + [0]] * 3, np.int32)
    positions = np.array([[3, 3, 5, 0], [1, 1, 2, 0], [2, 2, 2, 4]], np.int32)
    weights = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]], np.float32)
    samples = np.array([[40, 62, 70, 0],    # position 3: floor(102 / 2) = 51 != 50: fake
                        [40, 60, 9, 0],     # position 1: floor(100 / 2) = 50: the original
                        [10, 20, 31, 24]],  # position 2: floor(61 / 3) = 20 != 25: fake
                       np.int32)
    masked_ids = ids.copy()
    masked_ids[np.arange(3)[:, None], positions] = 3  # [MASK] (id 3 in this tiny vocab)
    masked_ids[:, 0] = ids[:, 0]  # position 0 is never written
    lm_ids = np.take_along_axis(ids, positions, 1) * weights.astype(np.int32)
    # Logits that make the Gumbel-max draw certain: +1e4 on the wanted token.
    logits = 1e4 * np.eye(vocab, dtype=np.float32)[samples]
    model = types.SimpleNamespace(
        _config=types.SimpleNamespace(disallow_correct=False, temperature=1.0),
        _bert_config=types.SimpleNamespace(vocab_size=vocab), _keys=None)
    with tf.Graph().as_default(), tf.Session() as sess:
        masked = pretrain_data.Inputs(
            tf.constant(masked_ids), tf.constant(input_mask), tf.zeros_like(ids),
            tf.constant(positions), tf.constant(lm_ids), tf.constant(weights))
        fake, is_fake, sampled = sess.run(objective.PretrainingModel._fake_data(
            model, masked, tf.constant(logits)))
    np.testing.assert_array_equal(sampled, samples)
    expected = ids.copy()
    expected[0, 3], expected[0, 5] = 51, 70
    expected[1, 1], expected[1, 2] = 50, 9
    expected[2, 2], expected[2, 4] = 20, 24
    np.testing.assert_array_equal(fake.input_ids, expected)
    labels = np.zeros_like(ids)
    labels[0, 3] = labels[1, 2] = labels[2, 2] = 1
    np.testing.assert_array_equal(is_fake, labels)
