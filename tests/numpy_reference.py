"""Golden values for the tests: the BERT/ELECTRA encoder written out in NumPy from the
published formulas (Devlin et al. 2018; Clark et al. 2020), independent of model/modeling.py."""

import numpy as np
from scipy.special import erf


def vocab_ids(vocab_text):
    """{token: id} of a WordPiece vocab's text, a token a line. Lines end with "\\n" only:
    not str.splitlines(), for which some vocab tokens (e.g. U+2028) are line breaks."""
    lines = vocab_text.rstrip("\n").split("\n")
    return {token.strip(): i for i, token in enumerate(lines)}


def read_vocab(path):
    return vocab_ids(path.read_text(encoding="utf-8"))


def checkpoint_values(prefix):
    """{name: array} of every variable of the TF checkpoint prefix (any TF file system;
    the reader is given the prefix itself: load_checkpoint takes a ram:// one for a dir)."""
    import tensorflow.compat.v1 as tf
    reader = tf.train.NewCheckpointReader(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def encoder_layers(values, scope, bert_config, ids):
    """The embedding output and each transformer layer's output ([L, H] each, float64) of
    one sentence of token ids, from the variables {name: array} under scope (e.g.
    "electra"). Inference (no dropout), one unpadded sentence (no attention mask),
    segment 0, exact-erf GELU; embedding_size must equal hidden_size (no projection)."""
    eps = bert_config["layer_norm_eps"]
    v = {name: np.asarray(value, np.float64) for name, value in values.items()
         if name.startswith(scope + "/")}

    def norm(x, prefix):
        mean = x.mean(-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(-1, keepdims=True)
        return ((x - mean) / np.sqrt(variance + eps) * v[prefix + "/LayerNorm/gamma"]
                + v[prefix + "/LayerNorm/beta"])

    def dense(x, prefix):
        return x @ v[prefix + "/kernel"] + v[prefix + "/bias"]

    emb = scope + "/embeddings"
    length, heads = len(ids), bert_config["num_attention_heads"]
    x = norm(v[emb + "/word_embeddings"][ids] + v[emb + "/position_embeddings"][:length]
             + v[emb + "/token_type_embeddings"][0], emb)
    outputs = [x]
    for i in range(bert_config["num_hidden_layers"]):
        layer = "%s/encoder/layer_%d/" % (scope, i)
        size = x.shape[1] // heads
        q, k, val = (dense(x, layer + "attention/self/" + name)
                     .reshape(length, heads, size).transpose(1, 0, 2)  # [N, L, D]
                     for name in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)  # [N, L, L]
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ val).transpose(1, 0, 2).reshape(length, heads * size)
        attended = norm(dense(context, layer + "attention/output/dense") + x,
                        layer + "attention/output")
        inner = dense(attended, layer + "intermediate/dense")
        inner = inner * 0.5 * (1.0 + erf(inner / np.sqrt(2.0)))
        x = norm(dense(inner, layer + "output/dense") + attended, layer + "output")
        outputs.append(x)
    return outputs


def softmax(logits):
    e = np.exp(logits - np.max(logits, -1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def classification_probabilities(values, info, task, tokenizer, vocab, text):
    """The class probabilities (in info["label_list"] order) of an exported ELECTRA
    classifier for one text: softmax of the task head's dense layer
    (task_specific/<task>/dense) on the [CLS] vector of [CLS] + the text's tokens (cut to
    max_seq_length - 2) + [SEP]. info: the export's model_info.json."""
    tokens = tokenizer.tokenize(text)[:info["hparams"]["max_seq_length"] - 2]
    ids = [vocab["[CLS]"]] + [vocab[t] for t in tokens] + [vocab["[SEP]"]]
    cls = encoder_layers(values, "electra", info["bert_config"], ids)[-1][0]
    head = "task_specific/%s/dense/" % task
    return softmax(cls @ values[head + "kernel"] + values[head + "bias"])


def gelu(x):
    """The exact GELU x * Phi(x) and its derivative Phi(x) + x * phi(x)."""
    cdf = 0.5 * (1.0 + erf(x / np.sqrt(2.0)))
    return x * cdf, cdf + x * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def rtd_prompt_head_reference(hidden, weights, features, num_labels):
    """ELECTRA's discriminator head (Clark et al. 2020: dense + GELU, dense to one logit
    per token, logit > 0 = "replaced") scoring prompt sequences, as Xia et al. (2022)
    train it, written out in float64 with its gradient derived by hand.

    hidden [B, L, H]: encoder outputs; weights: {variable name: array} of
    discriminator_predictions/{dense,dense_1}/{kernel,bias}; features: label_word_mask
    [B, L] (the candidate word's tokens), is_gold [B], words_in_label [B]. Per sequence:
    word score = mean over the word's tokens of log sigmoid(-z); loss = mean over them of
    the sigmoid cross-entropy of z against 1 - is_gold ("replaced" for a wrong label's
    word), divided by num_labels x words_in_label (0 words: a padding record, loss 0).
    Returns {"losses": [B], "word_scores": [B], "gradients": {name: d(sum of losses)/d
    weight, "hidden": d/d hidden}}.
    """
    w1 = weights["discriminator_predictions/dense/kernel"]
    b1 = weights["discriminator_predictions/dense/bias"]
    w2 = weights["discriminator_predictions/dense_1/kernel"][:, 0]
    b2 = weights["discriminator_predictions/dense_1/bias"][0]
    mask = features["label_word_mask"].astype(np.float64)
    target = 1.0 - features["is_gold"].astype(np.float64)[:, None]  # 1: replaced
    pre = hidden @ w1 + b1  # [B, L, H]
    act, act_grad = gelu(pre)
    z = act @ w2 + b2  # [B, L]
    n_tokens = np.maximum(mask.sum(-1), 1.0)
    share = num_labels * np.maximum(features["words_in_label"].astype(np.float64), 1.0)
    cross_entropy = -(target * log_sigmoid(z) + (1.0 - target) * log_sigmoid(-z))
    losses = (mask * cross_entropy).sum(-1) / n_tokens / share
    word_scores = (mask * log_sigmoid(-z)).sum(-1) / n_tokens
    # d loss / d z = (sigmoid(z) - target) for each counted token, scaled as the loss is.
    dz = mask * (1.0 / (1.0 + np.exp(-z)) - target) / (n_tokens * share)[:, None]  # [B, L]
    d_act = dz[..., None] * w2  # [B, L, H]
    d_pre = d_act * act_grad
    flat = hidden.reshape(-1, hidden.shape[-1])
    gradients = {
        "discriminator_predictions/dense_1/kernel":
            (act.reshape(-1, act.shape[-1]) * dz.reshape(-1, 1)).sum(0)[:, None],
        "discriminator_predictions/dense_1/bias": np.array([dz.sum()]),
        "discriminator_predictions/dense/kernel": flat.T @ d_pre.reshape(-1, d_pre.shape[-1]),
        "discriminator_predictions/dense/bias": d_pre.sum((0, 1)),
        "hidden": d_pre @ w1.T,
    }
    return {"losses": losses, "word_scores": word_scores, "gradients": gradients}
