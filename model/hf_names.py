"""How the official TF checkpoint names map to Hugging Face transformers' PyTorch names, and
how a model shape (our BertConfig) maps to an HF config.json: the one table that both
scripts/export_hf.py (TF -> HF) and scripts/import_hf.py (HF -> TF) read.

ELECTRA (HF `electra.` = our encoder; kernels [in, out] are torch's Linear [out, in]):
    <emb>/embeddings/{word,position,token_type}_embeddings -> electra.embeddings.*.weight
    <emb>/embeddings/LayerNorm/{gamma,beta}              -> electra.embeddings.LayerNorm.*
    <enc>/embeddings_project/{kernel,bias}               -> electra.embeddings_project.*
    <enc>/encoder/layer_<i>/...                          -> electra.encoder.layer.<i>....
    discriminator_predictions/dense, dense_1             -> discriminator_predictions.dense,
                                                            .dense_prediction
    generator_predictions/dense, LayerNorm               -> generator_predictions.*
    generator_predictions/output_bias                    -> generator_lm_head.bias
The discriminator's <enc> and <emb> are `electra`; the generator's <enc> is `generator` and
its <emb> the discriminator's shared `electra` (its own `generator` with
untied_generator_embeddings). HF's generator calls all of it `electra.`.
generator_lm_head.weight is the word-embedding table (tied; HF's save_pretrained omits it).

BERT (Google BERT's names, which our BERT-MLM checkpoints and the released MacBERT, LERT and
RoBERTa-wwm-ext TF checkpoints have):
    bert/embeddings/..., bert/encoder/layer_<i>/...      -> bert.embeddings..., bert.encoder...
    bert/pooler/dense                                     -> bert.pooler.dense
    cls/predictions/transform/{dense,LayerNorm}           -> cls.predictions.transform.*
    cls/predictions/output_bias                           -> cls.predictions.bias
    cls/seq_relationship/output_weights [2, H] (as is)    -> cls.seq_relationship.weight
    cls/seq_relationship/output_bias                      -> cls.seq_relationship.bias
cls.predictions.decoder.weight / .bias are the word embeddings and cls.predictions.bias
(tied).
"""

from model import modeling
from util.errors import InputError

# Our hidden_act names -> HF ACT2FN names computing exactly the same function, and back.
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_new", "relu": "relu", "tanh": "tanh",
                  "linear": "linear"}
FROM_HF_ACTIVATIONS = dict({hf: ours for ours, hf in HF_ACTIVATIONS.items()},
                           gelu_python="gelu")  # transformers' pure-Python erf GELU

# Per-layer sub-modules: (TF path under layer_<i>/, HF path under layer.<i>.).
_LAYER_DENSES = [
    ("attention/self/query", "attention.self.query"),
    ("attention/self/key", "attention.self.key"),
    ("attention/self/value", "attention.self.value"),
    ("attention/output/dense", "attention.output.dense"),
    ("intermediate/dense", "intermediate.dense"),
    ("output/dense", "output.dense"),
]
_LAYER_NORMS = [
    ("attention/output/LayerNorm", "attention.output.LayerNorm"),
    ("output/LayerNorm", "output.LayerNorm"),
]


class Tensor(object):
    """One HF tensor: where it comes from in the checkpoint and the shape it must have.

    tf_shape is the checkpoint's (TF) shape; transpose marks a dense kernel [in, out]
    that torch's Linear stores as weight [out, in].
    """

    def __init__(self, hf_name, tf_name, tf_shape, transpose=False):
        self.hf_name = hf_name
        self.tf_name = tf_name
        self.tf_shape = list(tf_shape)
        self.transpose = transpose

    @property
    def hf_shape(self):
        return self.tf_shape[::-1] if self.transpose else list(self.tf_shape)


def _dense(hf, tf_name, n_in, n_out):
    return [Tensor(hf + ".weight", tf_name + "/kernel", [n_in, n_out], transpose=True),
            Tensor(hf + ".bias", tf_name + "/bias", [n_out])]


def _layer_norm(hf, tf_name, width):
    return [Tensor(hf + ".weight", tf_name + "/gamma", [width]),
            Tensor(hf + ".bias", tf_name + "/beta", [width])]


def embedding_tensors(config, embedding_scope, hf_prefix="electra"):
    """The token, position and type embeddings and their LayerNorm."""
    emb = config.embedding_size or config.hidden_size
    e_tf, e_hf = embedding_scope + "/embeddings", hf_prefix + ".embeddings"
    return [
        Tensor(e_hf + ".word_embeddings.weight", e_tf + "/word_embeddings",
               [config.vocab_size, emb]),
        Tensor(e_hf + ".position_embeddings.weight", e_tf + "/position_embeddings",
               [config.max_position_embeddings, emb]),
        Tensor(e_hf + ".token_type_embeddings.weight", e_tf + "/token_type_embeddings",
               [config.type_vocab_size, emb]),
    ] + _layer_norm(e_hf + ".LayerNorm", e_tf + "/LayerNorm", emb)


def layer_tensors(config, scope, hf_prefix="electra"):
    """embeddings_project (when the embedding size differs from the hidden size: HF builds
    it exactly then, as we do) and every transformer layer."""
    hidden, inter = config.hidden_size, config.intermediate_size
    emb = config.embedding_size or hidden
    tensors = []
    if emb != hidden:
        tensors += _dense(hf_prefix + ".embeddings_project", scope + "/embeddings_project",
                          emb, hidden)
    for i in range(config.num_hidden_layers):
        tf_layer = "%s/encoder/layer_%d/" % (scope, i)
        hf_layer = "%s.encoder.layer.%d." % (hf_prefix, i)
        for tf_part, hf_part in _LAYER_DENSES:
            n_in = inter if tf_part == "output/dense" else hidden
            n_out = inter if tf_part == "intermediate/dense" else hidden
            tensors += _dense(hf_layer + hf_part, tf_layer + tf_part, n_in, n_out)
        for tf_part, hf_part in _LAYER_NORMS:
            tensors += _layer_norm(hf_layer + hf_part, tf_layer + tf_part, hidden)
    return tensors


def encoder_tensors(config, embedding_scope, scope, hf_prefix="electra"):
    """The `electra.` (or `bert.`) part of an HF model: embeddings, projection, layers."""
    return (embedding_tensors(config, embedding_scope, hf_prefix)
            + layer_tensors(config, scope, hf_prefix))


def discriminator_head_tensors(config):
    hidden = config.hidden_size
    return (_dense("discriminator_predictions.dense", "discriminator_predictions/dense",
                   hidden, hidden)
            + _dense("discriminator_predictions.dense_prediction",
                     "discriminator_predictions/dense_1", hidden, 1))


def discriminator_tensors(config):
    """Every tensor of HF's ElectraForPreTraining."""
    return encoder_tensors(config, "electra", "electra") + discriminator_head_tensors(config)


def mlm_head_tensors(config, transform, output_bias, hf_head="generator_predictions",
                     hf_bias="generator_lm_head.bias"):
    """The masked-LM head: dense(embedding size) -> LayerNorm, and the output bias (the
    output weights are the word embeddings). transform: the TF scope of dense and LayerNorm
    ending in '/'."""
    emb = config.embedding_size or config.hidden_size
    return (_dense(hf_head + ".dense", transform + "dense", config.hidden_size, emb)
            + _layer_norm(hf_head + ".LayerNorm", transform + "LayerNorm", emb)
            + [Tensor(hf_bias, output_bias, [config.vocab_size])])


def generator_tensors(config, embedding_scope="electra", scope="generator"):
    """Every tensor of HF's ElectraForMaskedLM except the tied generator_lm_head.weight."""
    return (encoder_tensors(config, embedding_scope, scope)
            + mlm_head_tensors(config, "generator_predictions/",
                               "generator_predictions/output_bias"))


def bert_mlm_tensors(config, hf_head="generator_predictions",
                     hf_bias="generator_lm_head.bias"):
    """Google BERT's masked-LM head (cls/predictions) under HF names: ELECTRA's generator
    head by default (a BERT-MLM checkpoint exported as ElectraForMaskedLM), or BERT's
    (hf_head "cls.predictions.transform", hf_bias "cls.predictions.bias")."""
    return mlm_head_tensors(config, "cls/predictions/transform/", "cls/predictions/output_bias",
                            hf_head, hf_bias)


def bert_tensors(config, pooler, mlm_head, nsp_head):
    """The tensors of an HF BERT model with the parts it has (BertModel: pooler;
    BertForMaskedLM: mlm_head; BertForPreTraining: all three)."""
    hidden = config.hidden_size
    tensors = encoder_tensors(config, "bert", "bert", hf_prefix="bert")
    if pooler:
        tensors += _dense("bert.pooler.dense", "bert/pooler/dense", hidden, hidden)
    if mlm_head:
        tensors += bert_mlm_tensors(config, "cls.predictions.transform", "cls.predictions.bias")
    if nsp_head:
        tensors += [Tensor("cls.seq_relationship.weight", "cls/seq_relationship/output_weights",
                           [2, hidden]),
                    Tensor("cls.seq_relationship.bias", "cls/seq_relationship/output_bias", [2])]
    return tensors


# ----------------------------------------------------------------------------- configs

def to_hf_config(config, architecture, pad_token_id, model_type="electra"):
    """HF config.json fields for our BertConfig (the published configs' keys)."""
    if config.hidden_act not in HF_ACTIVATIONS:
        raise InputError("hidden_act %r has no HF equivalent" % config.hidden_act)
    fields = {
        "architectures": [architecture],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": HF_ACTIVATIONS[config.hidden_act],
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": pad_token_id,
        "position_embedding_type": "absolute",
    }
    if model_type == "electra":
        fields.update({"embedding_size": config.embedding_size or config.hidden_size,
                       "summary_type": "first", "summary_use_proj": True,
                       "summary_activation": "gelu", "summary_last_dropout": 0.1})
    return fields


# HF config keys our BertConfig takes as they are.
_SHAPE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "hidden_dropout_prob", "attention_probs_dropout_prob",
               "max_position_embeddings", "type_vocab_size", "initializer_range",
               "layer_norm_eps")


def from_hf_config(fields, source):
    """Our BertConfig for an HF config.json's fields (ELECTRA or BERT); source names the
    file in errors. Anything our transformer cannot compute the same way is refused."""
    missing = [key for key in _SHAPE_KEYS[:5] + ("max_position_embeddings", "type_vocab_size")
               if key not in fields]
    if missing:
        raise InputError("%s lacks %s: not an HF ELECTRA or BERT config"
                         % (source, ", ".join(missing)))
    act = fields.get("hidden_act", "gelu")
    if act not in FROM_HF_ACTIVATIONS:
        raise InputError("%s: hidden_act %r has no equivalent here (expected one of %s)"
                         % (source, act, ", ".join(sorted(FROM_HF_ACTIVATIONS))))
    position = fields.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise InputError("%s: position_embedding_type %r; only \"absolute\" (ELECTRA's and "
                         "BERT's learned positions) is computed here" % (source, position))
    shape = {key: fields[key] for key in _SHAPE_KEYS if key in fields}
    shape["hidden_act"] = FROM_HF_ACTIVATIONS[act]
    if fields.get("model_type") == "electra":
        shape["embedding_size"] = fields.get("embedding_size", fields["hidden_size"])
    else:
        shape["embedding_size"] = fields["hidden_size"]
    return modeling.BertConfig.from_dict(shape, source=source)
