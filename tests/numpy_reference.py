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
