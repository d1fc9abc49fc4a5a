"""The BERT/ELECTRA transformer encoder in `tensorflow.compat.v1` graph code.

Variable names follow the official ELECTRA code exactly, so released Chinese ELECTRA
checkpoints load unchanged and ours load in the official code and in HF transformers:

  <embedding_scope>/embeddings/{word,position,token_type}_embeddings, .../LayerNorm/{beta,gamma}
  <scope>/embeddings_project/{kernel,bias}            (only if embedding size != hidden size)
  <scope>/encoder/layer_<i>/attention/self/{query,key,value}/{kernel,bias}
  <scope>/encoder/layer_<i>/attention/output/dense/..., .../attention/output/LayerNorm/...
  <scope>/encoder/layer_<i>/intermediate/dense/..., .../output/dense/..., .../output/LayerNorm/...
  <scope>/pooler/dense/...                            (BERT-style checkpoints only)

Shapes: B = batch size, L = sequence length, E = embedding size, H = hidden size,
N = attention heads, D = H / N.

Mixed precision (model/precision.py): with a bfloat16/float16 `compute_dtype` the encoder's
matmuls and activations run in that dtype while every variable stays float32 (`dense`
casts the float32 kernel and bias it reads to its input's dtype); embeddings, LayerNorm
and the attention softmax are computed in float32, and the encoder's outputs are float32.
With float32 (the default) no op is added: the graph is the plain float32 one.
"""

import copy
import difflib
import json
import math
import os

import tensorflow.compat.v1 as tf

from util import fs
from util.errors import InputError
from util.hparams import check_known_keys, parse_json

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config")
MODEL_SIZES = ("tiny", "small", "small_ex", "base", "large")

# Keys of HF-style config JSONs (ElectraConfig/BertConfig) that do not change the graph.
_IGNORED_CONFIG_KEYS = frozenset([
    "_num_labels", "architectures", "directionality", "model_type", "output_past",
    "pad_token_id", "summary_activation", "summary_last_dropout", "summary_type",
    "summary_use_proj", "pooler_fc_size", "pooler_num_attention_heads",
    "pooler_num_fc_layers", "pooler_size_per_head", "pooler_type", "position_embedding_type",
    "transformers_version", "torch_dtype", "use_cache", "classifier_dropout",
])


class BertConfig(object):
    """Shape and regularisation of one transformer (discriminator or generator)."""

    def __init__(self, vocab_size, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02,
                 embedding_size=None, layer_norm_eps=1e-12):
        self.vocab_size = vocab_size  # rows of the word-embedding table
        self.hidden_size = hidden_size  # width H of every transformer layer
        self.num_hidden_layers = num_hidden_layers  # depth
        self.num_attention_heads = num_attention_heads  # heads N; H must divide by N
        self.intermediate_size = intermediate_size  # width of the feed-forward layer
        self.hidden_act = hidden_act  # FFN/head activation: "gelu" exact erf, "gelu_new" tanh
        self.hidden_dropout_prob = hidden_dropout_prob  # dropout on embeddings and layer outputs
        self.attention_probs_dropout_prob = attention_probs_dropout_prob  # dropout on attention
        self.max_position_embeddings = max_position_embeddings  # longest sequence supported
        self.type_vocab_size = type_vocab_size  # number of segment ids
        self.initializer_range = initializer_range  # stddev of the truncated-normal init
        self.embedding_size = embedding_size  # E; None means E = H (no projection)
        self.layer_norm_eps = layer_norm_eps  # LayerNorm epsilon (1e-12 as in BERT)

    @classmethod
    def field_names(cls):
        return sorted(cls(vocab_size=1).__dict__)

    @classmethod
    def from_dict(cls, params, source="model config"):
        """Builds a config from a dict, ignoring HF-only keys and rejecting unknown ones."""
        params = {k: v for k, v in params.items() if k not in _IGNORED_CONFIG_KEYS}
        check_known_keys(params, cls.field_names(), source)
        if "vocab_size" not in params:
            raise InputError("%s: missing required key 'vocab_size'" % source)
        check_activation(params.get("hidden_act", "gelu"), source)
        config = cls(**params)
        config.check_shape(source)
        return config

    def check_shape(self, source):
        """A degenerate shape (no layers, heads that do not divide the width, a dropout of
        1) fails here, at hparam time, not as a reshape error deep in the graph."""
        def need(cond, what):
            if not cond:
                raise InputError("%s: %s" % (source, what))
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, key)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 "%s must be a whole number >= 1, got %r" % (key, value))
        need(self.embedding_size is None or (isinstance(self.embedding_size, int)
                                             and self.embedding_size >= 1),
             "embedding_size must be a whole number >= 1 or null, got %r"
             % (self.embedding_size,))
        need(self.hidden_size % self.num_attention_heads == 0,
             "hidden_size %d does not divide into num_attention_heads %d: use a multiple"
             % (self.hidden_size, self.num_attention_heads))
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, key)
            need(isinstance(value, (int, float)) and 0 <= value < 1,
                 "%s must be in [0, 1), got %r" % (key, value))

    @classmethod
    def from_json_file(cls, path):
        try:
            text = fs.read_text(path)
        except fs.errors() as e:
            raise InputError("cannot read model config %s: %s" % (path, fs.error_text(e)))
        return cls.from_dict(parse_json(text, path), source=path)

    @classmethod
    def for_model_size(cls, model_size, component="discriminator"):
        """Reads config/<size>_<component>_config.json (sizes: MODEL_SIZES)."""
        size = model_size.replace("-", "_")
        if size not in MODEL_SIZES:
            raise InputError("unknown model_size %r: expected one of %s"
                             % (model_size, ", ".join(MODEL_SIZES)))
        return cls.from_json_file(
            os.path.join(CONFIG_DIR, "%s_%s_config.json" % (size, component)))

    def to_dict(self):
        return copy.deepcopy(self.__dict__)

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def count_parameters(config):
    """Parameters of the encoder BertModel builds for config (no pooler, no heads)."""
    hidden, inter = config.hidden_size, config.intermediate_size
    emb = config.embedding_size or hidden
    embeddings = (config.vocab_size + config.max_position_embeddings
                  + config.type_vocab_size) * emb + 2 * emb
    project = (emb * hidden + hidden) if emb != hidden else 0
    per_layer = (4 * (hidden * hidden + hidden)  # query, key, value, attention output
                 + 2 * hidden  # attention LayerNorm
                 + hidden * inter + inter + inter * hidden + hidden  # feed-forward
                 + 2 * hidden)  # output LayerNorm
    return embeddings + project + config.num_hidden_layers * per_layer


# ----------------------------------------------------------------------------- helpers

def get_shape_list(tensor):
    """Static dimensions where known, dynamic scalars elsewhere."""
    static = tensor.shape.as_list()
    dynamic = tf.shape(tensor)
    return [dim if dim is not None else dynamic[i] for i, dim in enumerate(static)]


def gelu(x):
    """GELU, the exact form x * Phi(x) = x * 0.5 * (1 + erf(x / sqrt(2))), as in the
    official ELECTRA code and the Chinese fork ("gelu" in model configs and in HF)."""
    return x * (0.5 * (1.0 + tf.math.erf(x * (1.0 / math.sqrt(2.0)))))


def gelu_tanh(x):
    """GELU, Google BERT's tanh approximation ("gelu_new" in model configs and in HF): for
    checkpoints pre-trained with it. It differs from the exact form by up to 4.7e-4."""
    cdf = 0.5 * (1.0 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))
    return x * cdf


# hidden_act values -> activation (None: linear). The names are HF's, so a config.json of
# an HF ELECTRA/BERT model means the same function here.
ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "relu": tf.nn.relu, "tanh": tf.tanh,
               "linear": None}


def check_activation(name, source="model config"):
    """InputError unless name is a known hidden_act (the message lists the valid ones)."""
    if name not in ACTIVATIONS:
        close = difflib.get_close_matches(str(name), ACTIVATIONS, n=2)
        raise InputError("%s: unknown hidden_act %r: expected one of %s%s (\"gelu\" is the "
                         "exact erf GELU of ELECTRA, \"gelu_new\" BERT's tanh approximation)"
                         % (source, name, ", ".join(sorted(ACTIVATIONS)),
                            "; did you mean %s?" % " or ".join(close) if close else ""))


def get_activation(name):
    """The activation function hidden_act `name` stands for (None for "linear")."""
    check_activation(name)
    return ACTIVATIONS[name]


def create_initializer(initializer_range=0.02):
    return tf.truncated_normal_initializer(stddev=initializer_range)


def dropout(x, rate):
    if rate is None or rate == 0.0:
        return x
    if x.dtype == tf.float32:
        return tf.nn.dropout(x, rate=rate)
    # Mixed precision: the keep mask from float32 uniforms, as tf.nn.dropout draws them for
    # float32 x (bfloat16 uniforms have 8 bits and other values), so a seed drops the same
    # units as in the float32 graph.
    keep = tf.random.uniform(get_shape_list(x)) >= rate
    return x * tf.cast(keep, x.dtype) * tf.cast(1.0 / (1.0 - rate), x.dtype)


def layer_norm(x, eps=1e-12, name="LayerNorm"):
    """LayerNorm over the last axis with variables <name>/{beta,gamma}.

    Computed in float32 whatever x's dtype (a bfloat16 mean/variance over hundreds of
    values loses too much) and returned in x's dtype.
    """
    with tf.variable_scope(name):
        width = x.shape[-1]
        beta = tf.get_variable("beta", [width], initializer=tf.zeros_initializer())
        gamma = tf.get_variable("gamma", [width], initializer=tf.ones_initializer())
        x32 = tf.cast(x, tf.float32)  # no op when x is float32
        mean, variance = tf.nn.moments(x32, [-1], keepdims=True)
        return tf.cast((x32 - mean) * tf.rsqrt(variance + eps) * gamma + beta, x.dtype)


def dense(x, units, name, activation=None, kernel_initializer=None):
    """A fully connected layer with variables <name>/{kernel,bias} (tf.layers.dense names).

    The default kernel initializer is Glorot uniform, which is what `tf.layers.dense`
    used where the official code did not pass one. The variables are float32; for a
    bfloat16/float16 x they are cast where read, so the layer computes in x's dtype.
    """
    with tf.variable_scope(name):
        in_width = x.shape[-1]
        kernel = tf.get_variable(
            "kernel", [in_width, units],
            initializer=kernel_initializer or tf.glorot_uniform_initializer())
        bias = tf.get_variable("bias", [units], initializer=tf.zeros_initializer())
        if x.dtype != kernel.dtype:  # mixed precision: the gradient flows back to float32
            kernel, bias = tf.cast(kernel, x.dtype), tf.cast(bias, x.dtype)
        if x.shape.ndims == 2:
            y = tf.matmul(x, kernel)
        else:
            y = tf.tensordot(x, kernel, axes=[[x.shape.ndims - 1], [0]])
        y = tf.nn.bias_add(y, bias)
        return activation(y) if activation is not None else y


DISCRIMINATOR_HEAD_SCOPE = "discriminator_predictions"  # the official variable scope


def discriminator_logits(sequence_output, bert_config):
    """ELECTRA's replaced-token-detection head on the final hidden states [B, L, H]: one
    logit per token, > 0 meaning "replaced" (P(original) = sigmoid(-logit)).

    The official layers and names: dense(H, hidden_act) `discriminator_predictions/dense`
    (truncated-normal kernel), then dense(1) `discriminator_predictions/dense_1` (Glorot
    uniform, as tf.layers.dense defaults). Pre-training trains it; the fine-tuning runner's
    rtd-prompt mode scores label words with it, restored under these same names.
    """
    with tf.variable_scope(DISCRIMINATOR_HEAD_SCOPE):
        hidden = dense(sequence_output, bert_config.hidden_size, "dense",
                       activation=get_activation(bert_config.hidden_act),
                       kernel_initializer=create_initializer(bert_config.initializer_range))
        return tf.squeeze(dense(hidden, 1, "dense_1"), -1)  # [B, L]


# ----------------------------------------------------------------------------- model

class BertModel(object):
    """Embeddings + transformer encoder; ELECTRA's discriminator and generator alike.

    scope: variable scope of the encoder ("electra", "generator", "bert").
    embedding_scope: where the embeddings live; ELECTRA's generator shares the
      discriminator's, so it passes "electra". Defaults to `scope`.
    compute_dtype: dtype of the encoder layers (tf.bfloat16/tf.float16 for mixed
      precision); sequence_output and pooled_output are float32 whatever it is,
      all_layer_outputs and embedding_output are in compute_dtype.
    """

    def __init__(self, bert_config, is_training, input_ids, input_mask=None,
                 token_type_ids=None, scope="electra", embedding_scope=None,
                 embedding_size=None, add_pooler=False, use_one_hot_embeddings=False,
                 compute_dtype=tf.float32):
        config = copy.deepcopy(bert_config)
        if not is_training:
            config.hidden_dropout_prob = 0.0
            config.attention_probs_dropout_prob = 0.0
        if embedding_size is None:
            embedding_size = config.embedding_size or config.hidden_size
        batch_size, seq_length = get_shape_list(input_ids)
        if input_mask is None:
            input_mask = tf.ones([batch_size, seq_length], dtype=tf.int32)
        if token_type_ids is None:
            token_type_ids = tf.zeros([batch_size, seq_length], dtype=tf.int32)

        with tf.variable_scope((embedding_scope or scope) + "/embeddings", reuse=tf.AUTO_REUSE):
            self.embedding_table = tf.get_variable(
                "word_embeddings", [config.vocab_size, embedding_size],
                initializer=create_initializer(config.initializer_range))
            if use_one_hot_embeddings:  # faster than a gather on TPUs
                one_hot = tf.one_hot(tf.reshape(input_ids, [-1]), depth=config.vocab_size)
                word_emb = tf.matmul(one_hot, self.embedding_table)
            else:
                word_emb = tf.nn.embedding_lookup(self.embedding_table, input_ids)
            word_emb = tf.reshape(word_emb, [batch_size, seq_length, embedding_size])
            embeddings = word_emb + _type_and_position_embeddings(
                config, token_type_ids, seq_length, embedding_size)  # [B, L, E]
            embeddings = layer_norm(embeddings, config.layer_norm_eps)
            embeddings = dropout(embeddings, config.hidden_dropout_prob)
            # Mixed precision starts here; the float32 table also feeds the MLM head.
            embeddings = tf.cast(embeddings, compute_dtype)

        with tf.variable_scope(scope):
            if embedding_size != config.hidden_size:
                embeddings = dense(embeddings, config.hidden_size,
                                   "embeddings_project")  # [B, L, H]
            self.embedding_output = embeddings
            with tf.variable_scope("encoder"):
                attention_mask = tf.cast(tf.reshape(input_mask, [batch_size, 1, 1, seq_length]),
                                         tf.float32)  # [B, 1, 1, L], broadcast over heads/queries
                self.all_layer_outputs = transformer(config, embeddings, attention_mask)
            # float32 for the heads: logits and losses stay float32 under mixed precision.
            self.sequence_output = tf.cast(self.all_layer_outputs[-1], tf.float32)  # [B, L, H]
            if add_pooler:
                with tf.variable_scope("pooler"):
                    first_token = self.sequence_output[:, 0]  # [B, H]
                    self.pooled_output = dense(
                        first_token, config.hidden_size, "dense", activation=tf.tanh,
                        kernel_initializer=create_initializer(config.initializer_range))
            else:
                # ELECTRA has no pooler: tasks read the [CLS] vector directly.
                self.pooled_output = self.sequence_output[:, 0]

    def get_sequence_output(self):
        return self.sequence_output

    def get_pooled_output(self):
        return self.pooled_output

    def get_embedding_table(self):
        return self.embedding_table


def check_sequence_length(config, seq_length, what="sequence length"):
    """InputError if seq_length tokens need more position embeddings than config has."""
    if config.max_position_embeddings and isinstance(seq_length, int) \
            and seq_length > config.max_position_embeddings:
        raise InputError("%s %d exceeds max_position_embeddings %d"
                         % (what, seq_length, config.max_position_embeddings))


def _type_and_position_embeddings(config, token_type_ids, seq_length, width):
    """Segment + absolute position embeddings, [B, L, width] (position broadcast over B)."""
    check_sequence_length(config, seq_length)
    init = create_initializer(config.initializer_range)
    type_table = tf.get_variable("token_type_embeddings", [config.type_vocab_size, width],
                                 initializer=init)
    type_emb = tf.nn.embedding_lookup(type_table, token_type_ids)  # [B, L, width]
    position_table = tf.get_variable("position_embeddings",
                                     [config.max_position_embeddings, width], initializer=init)
    position_emb = tf.slice(position_table, [0, 0], [seq_length, -1])  # [L, width]
    return type_emb + tf.expand_dims(position_emb, 0)


def transformer(config, x, attention_mask):
    """The encoder stack; returns every layer's output, each [B, L, H]."""
    hidden, heads = config.hidden_size, config.num_attention_heads
    if hidden % heads != 0:
        raise InputError("hidden_size %d is not a multiple of num_attention_heads %d"
                         % (hidden, heads))
    batch_size, seq_length, _ = get_shape_list(x)
    init = create_initializer(config.initializer_range)
    act = get_activation(config.hidden_act)
    # Work on a [B*L, H] matrix: 2-D matmuls are the fastest path on CPU and TPU alike.
    layer_input = tf.reshape(x, [-1, hidden])
    outputs = []
    for i in range(config.num_hidden_layers):
        with tf.variable_scope("layer_%d" % i):
            with tf.variable_scope("attention"):
                with tf.variable_scope("self"):
                    context = self_attention(config, layer_input, attention_mask,
                                             batch_size, seq_length)  # [B*L, H]
                with tf.variable_scope("output"):
                    attn_out = dense(context, hidden, "dense", kernel_initializer=init)
                    attn_out = dropout(attn_out, config.hidden_dropout_prob)
                    attn_out = layer_norm(attn_out + layer_input, config.layer_norm_eps)
            with tf.variable_scope("intermediate"):
                inter = dense(attn_out, config.intermediate_size, "dense", activation=act,
                              kernel_initializer=init)  # [B*L, intermediate]
            with tf.variable_scope("output"):
                out = dense(inter, hidden, "dense", kernel_initializer=init)
                out = dropout(out, config.hidden_dropout_prob)
                layer_input = layer_norm(out + attn_out, config.layer_norm_eps)
            outputs.append(tf.reshape(layer_input, [batch_size, seq_length, hidden]))
    return outputs


def self_attention(config, x, attention_mask, batch_size, seq_length):
    """Multi-head scaled dot-product attention on x [B*L, H]; returns [B*L, H]."""
    heads = config.num_attention_heads
    head_size = config.hidden_size // heads
    init = create_initializer(config.initializer_range)

    def project(name):  # [B*L, H] -> [B, N, L, D]
        t = dense(x, heads * head_size, name, kernel_initializer=init)
        t = tf.reshape(t, [batch_size, seq_length, heads, head_size])
        return tf.transpose(t, [0, 2, 1, 3])

    query, key, value = project("query"), project("key"), project("value")
    scores = tf.matmul(query, key, transpose_b=True) / math.sqrt(head_size)  # [B, N, L, L]
    # The mask and softmax in float32 (no op for float32 x): float16 exponentials of
    # large scores overflow, and low-precision sums over L keys lose small weights.
    scores = tf.cast(scores, tf.float32)
    # Padding keys get -10000 before the softmax, i.e. ~zero attention weight.
    scores += (1.0 - attention_mask) * -10000.0
    probs = tf.cast(tf.nn.softmax(scores), x.dtype)
    probs = dropout(probs, config.attention_probs_dropout_prob)
    context = tf.matmul(probs, value)  # [B, N, L, D]
    context = tf.transpose(context, [0, 2, 1, 3])  # [B, L, N, D]
    return tf.reshape(context, [batch_size * seq_length, heads * head_size])
