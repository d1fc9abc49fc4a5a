"""In-graph dynamic masking and the gather/scatter/sampling ops around it.

B = batch, L = sequence length, N = max_predictions_per_seq (masked slots per example).
Unused slots have position 0 (the [CLS] position) and weight 0; position 0 is never
written by `scatter_update`, so those slots are harmless, as in the official code.
"""

import tensorflow.compat.v1 as tf

from model import modeling
from pretrain import pretrain_data


def gather_positions(sequence, positions):
    """sequence [B, L] or [B, L, D], positions [B, N] -> [B, N] or [B, N, D]."""
    return tf.gather(sequence, positions, batch_dims=1)


def scatter_update(sequence, updates, positions):
    """Writes updates [B, N] into sequence [B, L] (int32) at positions [B, N].

    Returns (updated sequence [B, L], updated_mask [B, L] int32). Position 0 is never
    updated (unused slots point there). A position written by several slots (masking
    "official") gets the sum of their updates floor-divided by their count, as in the
    official code: updates a and b give floor((a + b) / 2).
    """
    _, seq_length = modeling.get_shape_list(sequence)
    one_hot = tf.one_hot(positions, seq_length, dtype=tf.int32)  # [B, N, L]
    not_first = tf.concat([tf.zeros([1], tf.int32), tf.ones([seq_length - 1], tf.int32)], 0)
    one_hot *= not_first
    count = tf.reduce_sum(one_hot, axis=1)  # [B, L]: how many slots write each position
    summed = tf.reduce_sum(one_hot * tf.expand_dims(updates, -1), axis=1)  # [B, L]
    updated_mask = tf.minimum(count, 1)
    updated = tf.where(count > 0, summed // tf.maximum(count, 1), sequence)
    return updated, updated_mask


def candidates_mask(inputs, disallowed_ids):
    """[B, L] bool: real tokens that may be masked (not [CLS], [SEP], [MASK], padding)."""
    allowed = tf.cast(inputs.input_mask, tf.bool)
    for token_id in disallowed_ids:
        allowed &= tf.not_equal(inputs.input_ids, token_id)
    return allowed


def example_keys(input_ids):
    """[B] int64: a hash of each example's tokens, to seed its own random draws."""
    text = tf.strings.reduce_join(tf.strings.as_string(input_ids), axis=-1, separator=" ")
    return tf.strings.to_hash_bucket_fast(text, 2 ** 62)


def uniform_noise(shape, keys=None, salt=0):
    """Uniform [0, 1) noise of shape [B, ...].

    keys None: the graph's random op. keys [B] (example_keys): example b's noise is a
    stateless function of (keys[b], global step, salt), so it does not depend on the batch
    it is in or on which replica builds it (per_example_randomness).
    """
    if keys is None:
        return tf.random.uniform(shape, minval=0, maxval=1)
    step = tf.cast(tf.train.get_or_create_global_step(), tf.int64)
    seeds = tf.stack([keys, tf.fill(tf.shape(keys), step * 16 + salt)], axis=1)  # [B, 2]
    return tf.map_fn(lambda seed: tf.random.stateless_uniform(shape[1:], seed=seed), seeds,
                     fn_output_signature=tf.float32)


def gumbel_noise(shape, keys=None, salt=0):
    uniform = uniform_noise(shape, keys, salt)
    return -tf.log(-tf.log(uniform + 1e-9) + 1e-9)


def mask(inputs, mask_prob, max_predictions_per_seq, mask_id, disallowed_ids,
         mask_token_share=0.85, word_starts=None, ngram_probs=(1.0,), keys=None,
         with_replacement=False):
    """Dynamic masking (ELECTRA): picks positions to predict and hides most of them.

    Per example n = max(1, min(N, round(num_tokens * mask_prob))) positions are to be
    predicted. Token mode (word_starts None): n distinct positions are drawn uniformly from
    the candidates (Gumbel top-k, i.e. without replacement, so an example has exactly n
    masked positions). Whole-word mode (word_starts [B, L], 1 where a token starts a word):
    whole words, or runs of up to len(ngram_probs) words, are chosen instead (see
    `choose_whole_words`), covering at most n tokens. `mask_token_share` of the positions
    become [MASK]; the rest keep their token (ELECTRA never inserts random tokens here: its
    generator does that). Returns the inputs with masked input_ids and masked_lm_* set.
    keys: None, or example_keys(input_ids) to draw token-mode noise per example.
    with_replacement (token mode, keys None; the official code's masking): the n slots are
    n independent uniform draws over the candidates, so a position can fill several slots
    (each with weight 1, counted that many times in the MLM loss); `scatter_update` then
    writes the floor of the mean of the updates there (see `official_positions`).
    """
    n_slots = max_predictions_per_seq
    batch_size, seq_length = modeling.get_shape_list(inputs.input_ids)
    candidates = candidates_mask(inputs, disallowed_ids)  # [B, L]

    num_tokens = tf.cast(tf.reduce_sum(inputs.input_mask, -1), tf.float32)  # [B]
    num_to_predict = tf.maximum(1, tf.minimum(
        n_slots, tf.cast(tf.round(num_tokens * mask_prob), tf.int32)))  # [B]

    if with_replacement:
        if word_starts is not None or keys is not None:
            raise ValueError("with_replacement masking takes neither word_starts nor keys")
        positions = official_positions(candidates, n_slots)  # [B, N]
        weights = tf.sequence_mask(num_to_predict, n_slots, dtype=tf.float32)  # [B, N]
    else:
        if word_starts is None:
            # Random order over candidates; non-candidates sink to the end of the ranking.
            scores = gumbel_noise([batch_size, seq_length], keys, salt=1) + \
                (1.0 - tf.cast(candidates, tf.float32)) * -1e9  # [B, L]
            weights = tf.sequence_mask(num_to_predict, n_slots, dtype=tf.float32)  # [B, N]
        else:
            chosen = choose_whole_words(candidates, word_starts, num_to_predict, ngram_probs)
            # Chosen positions first, in sequence order: slots fill front to back.
            scores = tf.cast(chosen, tf.float32) * tf.cast(
                tf.range(seq_length, 0, -1), tf.float32)  # [B, L]
            weights = tf.sequence_mask(tf.reduce_sum(tf.cast(chosen, tf.int32), -1), n_slots,
                                       dtype=tf.float32)  # [B, N]
        positions = tf.math.top_k(scores, k=n_slots, sorted=True).indices  # [B, N]
    # An example with fewer candidates than n keeps only its real candidates.
    weights *= tf.cast(gather_positions(candidates, positions), tf.float32)
    int_weights = tf.cast(weights, tf.int32)
    positions *= int_weights  # unused slots -> position 0
    masked_lm_ids = gather_positions(inputs.input_ids, positions) * int_weights  # [B, N]

    use_mask_token = tf.cast(
        uniform_noise([batch_size, n_slots], keys, salt=2) < mask_token_share, tf.int32)
    masked_ids, _ = scatter_update(inputs.input_ids, tf.fill([batch_size, n_slots], mask_id),
                                   positions * use_mask_token)
    return pretrain_data.get_updated_inputs(
        inputs, input_ids=tf.stop_gradient(masked_ids), masked_lm_positions=positions,
        masked_lm_ids=masked_lm_ids, masked_lm_weights=weights)


def official_positions(candidates, n_slots):
    """[B, N] positions drawn independently and uniformly from each row's candidates [B, L]
    (tf.random.categorical, as the official code does): duplicates are possible. A row
    without candidates draws anything; `mask` gives those slots weight 0."""
    logits = (1.0 - tf.cast(candidates, tf.float32)) * -1e9  # [B, L]: 0 on candidates
    return tf.random.categorical(logits, n_slots, dtype=tf.int32)


def word_indices(candidates, word_starts, gap):
    """[B, L] int32: which word each token belongs to, counted from the left.

    A candidate token starts a word where word_starts says so, or after a token that cannot
    be masked ([CLS], [SEP], ...). Every non-candidate adds `gap` to the count, so a run of
    fewer than `gap` consecutive word indices never crosses a [SEP].
    """
    prev_candidate = tf.pad(candidates[:, :-1], [[0, 0], [1, 0]])  # [B, L]
    starts = candidates & (tf.cast(word_starts, tf.bool) | ~prev_candidate)
    step = tf.where(candidates, tf.cast(starts, tf.int32), tf.fill(tf.shape(starts), gap))
    return tf.cumsum(step, axis=-1), starts


def choose_whole_words(candidates, word_starts, num_to_predict, ngram_probs=(1.0,)):
    """Whole-word (and N-gram word) masking: [B, L] bool of the tokens chosen.

    Word starts are ranked in a uniformly random order (Gumbel top-k over the starts, so
    without replacement). Walking down the ranking, each start opens a span of n words,
    n drawn from ngram_probs (n = 1, 2, ... with those probabilities); the span is taken
    whole if it overlaps no span taken before and keeps the example's total at most
    num_to_predict [B] tokens, otherwise skipped (as Google BERT's whole-word masking does).
    The walk stops once every example has num_to_predict tokens or runs out of words.
    """
    batch_size, seq_length = modeling.get_shape_list(candidates)
    max_n = len(ngram_probs)
    wid, starts = word_indices(candidates, word_starts, gap=max_n)  # [B, L] each
    scores = gumbel_noise([batch_size, seq_length]) + \
        (1.0 - tf.cast(starts, tf.float32)) * -1e9
    order = tf.math.top_k(scores, k=seq_length, sorted=True).indices  # [B, L] ranked starts
    num_starts = tf.reduce_sum(tf.cast(starts, tf.int32), -1)  # [B]
    # n per ranked start, drawn up front: [B, L] in 1..max_n.
    logits = tf.math.log(tf.constant([list(ngram_probs)], tf.float32))  # [1, max_n]
    span_words = 1 + tf.reshape(tf.random.categorical(
        tf.tile(logits, [batch_size * seq_length, 1]), 1, dtype=tf.int32),
        [batch_size, seq_length])
    candidate_ids = tf.cast(candidates, tf.int32)

    def body(r, chosen, count):
        first = gather_positions(wid, order[:, r:r + 1])  # [B, 1] word index of the start
        n = span_words[:, r:r + 1]  # [B, 1]
        span = candidate_ids * tf.cast((wid >= first) & (wid < first + n), tf.int32)  # [B, L]
        size = tf.reduce_sum(span, -1)  # [B]
        overlaps = tf.reduce_any(tf.cast(span * chosen, tf.bool), -1)
        take = (r < num_starts) & ~overlaps & (count + size <= num_to_predict)  # [B]
        take_ids = tf.cast(take, tf.int32)
        return r + 1, chosen + span * take_ids[:, None], count + size * take_ids

    def more(r, chosen, count):
        return tf.reduce_any((count < num_to_predict) & (r < num_starts))

    _, chosen, _ = tf.while_loop(
        more, body, [tf.constant(0), tf.zeros_like(candidate_ids),
                     tf.zeros([batch_size], tf.int32)],
        back_prop=False)
    return tf.cast(chosen, tf.bool)


def unmask(inputs):
    """Puts the original tokens back at the masked positions."""
    unmasked_ids, _ = scatter_update(inputs.input_ids, inputs.masked_lm_ids,
                                     inputs.masked_lm_positions)
    return pretrain_data.get_updated_inputs(inputs, input_ids=unmasked_ids)


def sample_from_softmax(logits, disallow=None, keys=None):
    """Token ids sampled from softmax(logits) with the Gumbel-max trick: [B, N, V] -> [B, N].

    disallow: [B, N, V] one-hot of tokens that must not be drawn (e.g. the original).
    keys: None, or example_keys(...) [B] to draw the noise per example.
    """
    if disallow is not None:
        logits -= 1000.0 * disallow
    noise = gumbel_noise(modeling.get_shape_list(logits), keys, salt=3)
    return tf.argmax(logits + noise, -1, output_type=tf.int32)
