"""Export an ELECTRA TF checkpoint as a HF transformers model directory (safetensors).

    python scripts/export_hf.py D/models/M OUT_DIR --component discriminator
    python scripts/export_hf.py D/models/M OUT_GEN --component generator

CKPT_DIR is a pre-training model dir (the newest checkpoint is used) or a released Chinese
ELECTRA dir (`electra_model.*` files, possibly without a `checkpoint` state file).
`--checkpoint PREFIX` picks another checkpoint. The model shape comes from
CKPT_DIR/<component>.json (written by run_pretraining.py, shipped with the releases) or
`--config FILE`; the vocab from CKPT_DIR/vocab.txt or `--vocab FILE`.

OUT_DIR receives config.json, model.safetensors, vocab.txt, tokenizer_config.json and
special_tokens_map.json, so that

    ElectraForPreTraining.from_pretrained(OUT_DIR)   # --component discriminator
    ElectraForMaskedLM.from_pretrained(OUT_DIR)      # --component generator
    BertTokenizerFast.from_pretrained(OUT_DIR)       # or AutoTokenizer / BertTokenizer

work. Writing needs only numpy and the `safetensors` package: no torch.

Name mapping (TF -> HF; kernels are transposed to torch's Linear layout [out, in]):

    <enc>/embeddings/{word,position,token_type}_embeddings -> electra.embeddings.*.weight
    <enc>/embeddings/LayerNorm/{gamma,beta}              -> electra.embeddings.LayerNorm.*
    <enc>/embeddings_project/{kernel,bias}               -> electra.embeddings_project.*
    <enc>/encoder/layer_<i>/...                          -> electra.encoder.layer.<i>....
    discriminator_predictions/dense, dense_1             -> discriminator_predictions.dense,
                                                            .dense_prediction
    generator_predictions/dense, LayerNorm               -> generator_predictions.*
    generator_predictions/output_bias                    -> generator_lm_head.bias

The discriminator's <enc> is `electra`. The generator's encoder is `generator/...`, but its
embeddings are the discriminator's shared `electra/embeddings` (or its own
`generator/embeddings` with untied_generator_embeddings); a BERT-MLM checkpoint
(electra_objective=false) has Google BERT's names: encoder `bert/`, head
`cls/predictions/transform/{dense,LayerNorm}` and `cls/predictions/output_bias`, exported
with --component generator. HF's generator model
calls all of it `electra.`. generator_lm_head.weight is tied to the word embeddings, so it is
not stored (as in HF's own save_pretrained). Optimizer slots and global_step are skipped.

Activation: hidden_act names mean the same function here and in HF. "gelu" (the default, the
exact erf GELU of the official ELECTRA code) is written as "gelu", as in the configs published
with the Chinese ELECTRA releases; a checkpoint pre-trained with BERT's tanh approximation
("hidden_act": "gelu_new" in its config) is written as "gelu_new". Either way the logits match
ours to float rounding. One difference is left that config cannot fix: HF's
ElectraGeneratorPredictions hard-codes the exact "gelu" in the generator's MLM head, so for a
"gelu_new" checkpoint the generator logits in transformers differ from ours (about 8e-4 in the
tests); the generator's hidden states and the discriminator are unaffected.
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import numpy as np  # noqa: E402

from model import tokenization  # noqa: E402
from model.modeling import BertConfig  # noqa: E402
from util import checkpoints  # noqa: E402
from util import fs  # noqa: E402
from util.errors import InputError, run_cli  # noqa: E402
from util.io import (atomic_copy, atomic_write_bytes, atomic_write_json,  # noqa: E402
                     check_writable_dir)

COMPONENTS = ("discriminator", "generator")
ARCHITECTURES = {"discriminator": "ElectraForPreTraining", "generator": "ElectraForMaskedLM"}
# Our hidden_act names -> HF ACT2FN names computing exactly the same function.
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_new", "relu": "relu", "tanh": "tanh",
                  "linear": "linear"}
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}

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


# ----------------------------------------------------------------------------- mapping

def _dense(hf, tf_name, n_in, n_out):
    return [Tensor(hf + ".weight", tf_name + "/kernel", [n_in, n_out], transpose=True),
            Tensor(hf + ".bias", tf_name + "/bias", [n_out])]


def _layer_norm(hf, tf_name, width):
    return [Tensor(hf + ".weight", tf_name + "/gamma", [width]),
            Tensor(hf + ".bias", tf_name + "/beta", [width])]


def encoder_tensors(config, embedding_scope, scope):
    """The `electra.` part of an HF ELECTRA model: embeddings, projection, layers."""
    hidden, inter = config.hidden_size, config.intermediate_size
    emb = config.embedding_size or hidden
    e_tf = embedding_scope + "/embeddings"
    tensors = [
        Tensor("electra.embeddings.word_embeddings.weight", e_tf + "/word_embeddings",
               [config.vocab_size, emb]),
        Tensor("electra.embeddings.position_embeddings.weight",
               e_tf + "/position_embeddings", [config.max_position_embeddings, emb]),
        Tensor("electra.embeddings.token_type_embeddings.weight",
               e_tf + "/token_type_embeddings", [config.type_vocab_size, emb]),
    ] + _layer_norm("electra.embeddings.LayerNorm", e_tf + "/LayerNorm", emb)
    if emb != hidden:  # HF builds embeddings_project exactly when the sizes differ, as we do
        tensors += _dense("electra.embeddings_project", scope + "/embeddings_project",
                          emb, hidden)
    for i in range(config.num_hidden_layers):
        tf_layer = "%s/encoder/layer_%d/" % (scope, i)
        hf_layer = "electra.encoder.layer.%d." % i
        for tf_part, hf_part in _LAYER_DENSES:
            n_in = inter if tf_part == "output/dense" else hidden
            n_out = inter if tf_part == "intermediate/dense" else hidden
            tensors += _dense(hf_layer + hf_part, tf_layer + tf_part, n_in, n_out)
        for tf_part, hf_part in _LAYER_NORMS:
            tensors += _layer_norm(hf_layer + hf_part, tf_layer + tf_part, hidden)
    return tensors


def discriminator_tensors(config):
    """Every tensor of HF's ElectraForPreTraining."""
    hidden = config.hidden_size
    return (encoder_tensors(config, "electra", "electra")
            + _dense("discriminator_predictions.dense", "discriminator_predictions/dense",
                     hidden, hidden)
            + _dense("discriminator_predictions.dense_prediction",
                     "discriminator_predictions/dense_1", hidden, 1))


def generator_tensors(config, checkpoint_names):
    """Every tensor of HF's ElectraForMaskedLM except the tied generator_lm_head.weight."""
    names = set(checkpoint_names)
    emb = config.embedding_size or config.hidden_size
    if "bert/embeddings/word_embeddings" in names:
        # BERT-MLM objective (electra_objective=false): Google BERT names.
        scope = embedding_scope = "bert"
        head, transform = "cls/predictions", "cls/predictions/transform/"
    else:
        # The official layout: own encoder under `generator`, embeddings shared under
        # `electra` (or its own with untied_generator_embeddings); tied weights: `electra`.
        scope = "generator" if any(n.startswith("generator/encoder/") for n in names) \
            else "electra"
        embedding_scope = "generator" if "generator/embeddings/word_embeddings" in names \
            else "electra"
        head = "generator_predictions"
        transform = head + "/"
    return (encoder_tensors(config, embedding_scope, scope)
            + _dense("generator_predictions.dense", transform + "dense",
                     config.hidden_size, emb)
            + _layer_norm("generator_predictions.LayerNorm", transform + "LayerNorm", emb)
            + [Tensor("generator_lm_head.bias", head + "/output_bias", [config.vocab_size])])


def tensors_for(component, config, checkpoint_names):
    if component == "discriminator":
        return discriminator_tensors(config)
    return generator_tensors(config, checkpoint_names)


# ----------------------------------------------------------------------------- inputs

def find_checkpoint(ckpt_dir, checkpoint=None):
    """The checkpoint prefix to export: --checkpoint, else util.checkpoints' rule."""
    if not checkpoint and not fs.isdir(ckpt_dir):
        raise InputError("checkpoint directory %s does not exist" % ckpt_dir)
    return checkpoints.find_checkpoint(ckpt_dir, checkpoint, missing=(
        "no checkpoint in {dir} (expected model.ckpt-N.* or electra_model.* files with a "
        ".index); pre-train with run_pretraining.py or unzip a released model there"))


def load_config(ckpt_dir, component, config_file=None):
    """The component's BertConfig from --config or CKPT_DIR/<component>.json."""
    path = config_file or fs.join(ckpt_dir, component + ".json")
    if not fs.exists(path):
        raise InputError("no model config %s: pass --config (e.g. config/<size>_%s_config.json "
                         "of this repo for a released model)" % (path, component))
    return BertConfig.from_json_file(path)


def read_vocab(path, config):
    """The vocab ({token: id}); it must match the embedding table and hold the specials."""
    if not fs.exists(path):
        raise InputError("no vocab %s: pass --vocab (a WordPiece vocab.txt; SentencePiece "
                         "models are not exported to a BertTokenizer)" % path)
    vocab = tokenization.load_vocab(path)  # checks blank lines, UTF-8, special tokens
    # ids are line numbers, so the line count (not len(vocab): duplicates) is the size
    size = len(tokenization._read_vocab_lines(path))
    if size != config.vocab_size:
        raise InputError("vocab %s has %d tokens but the model's vocab_size is %d"
                         % (path, size, config.vocab_size))
    return vocab


def read_do_lower_case(ckpt_dir):
    """do_lower_case as recorded by run_pretraining.py; True (the Chinese models') otherwise."""
    path = fs.join(ckpt_dir, "pretrain_hparams.json")
    try:
        return bool(json.loads(fs.read_text(path)).get("do_lower_case", True))
    except fs.errors() + (ValueError,):
        return True


# ----------------------------------------------------------------------------- outputs

def hf_config(config, component, pad_token_id):
    """HF ElectraConfig fields (see the official configs) for our BertConfig."""
    if config.hidden_act not in HF_ACTIVATIONS:
        raise InputError("hidden_act %r has no HF equivalent" % config.hidden_act)
    return {
        "architectures": [ARCHITECTURES[component]],
        "model_type": "electra",
        "vocab_size": config.vocab_size,
        "embedding_size": config.embedding_size or config.hidden_size,
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
        "summary_type": "first",
        "summary_use_proj": True,
        "summary_activation": "gelu",
        "summary_last_dropout": 0.1,
    }


def tokenizer_config(do_lower_case, model_max_length):
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case,
              "tokenize_chinese_chars": True, "strip_accents": None,
              "model_max_length": model_max_length}
    config.update(SPECIAL_TOKENS)
    return config


def read_tensors(reader, tensors):
    """{hf_name: float32 array in HF layout}."""
    out = {}
    for t in tensors:
        array = np.asarray(reader.get_tensor(t.tf_name), dtype=np.float32)
        out[t.hf_name] = np.ascontiguousarray(array.T if t.transpose else array)
    return out


def write_safetensors(path, arrays, checkpoint):
    from safetensors.numpy import save
    # format=pt: transformers refuses safetensors files without a known framework tag.
    metadata = {"format": "pt", "source": fs.basename(checkpoint)}
    # Serialised in memory (safetensors writes only local files), then written via gfile.
    atomic_write_bytes(path, save(arrays, metadata=metadata))


# ----------------------------------------------------------------------------- driver

def export(ckpt_dir, out_dir, component, checkpoint=None, config_file=None, vocab_file=None):
    """Writes the HF model dir; returns a summary dict (checkpoint, tensors, parameters)."""
    if component not in COMPONENTS:
        raise InputError("unknown component %r: expected one of %s"
                         % (component, ", ".join(COMPONENTS)))
    checkpoint = find_checkpoint(ckpt_dir, checkpoint)
    source_dir = ckpt_dir if fs.isdir(ckpt_dir) else fs.dirname(checkpoint)
    config = load_config(source_dir, component, config_file)
    config_source = config_file or fs.join(source_dir, component + ".json")
    vocab_path = vocab_file or fs.join(source_dir, "vocab.txt")
    vocab = read_vocab(vocab_path, config)

    import tensorflow.compat.v1 as tf
    try:
        reader = tf.train.load_checkpoint(fs.tf_checkpoint_path(checkpoint))
    except Exception as e:  # TF raises several types for unreadable files
        raise InputError("cannot read checkpoint %s: %s" % (checkpoint, e))
    shapes = reader.get_variable_to_shape_map()
    tensors = tensors_for(component, config, shapes)
    remedy = ("%s does not describe it: pass the model's config with --config"
              % config_source)
    checkpoints.check_variable_shapes(
        checkpoint, {t.tf_name: t.tf_shape for t in tensors}, remedy, model_config=config,
        require="all", missing_remedy="the %s export needs every one: export a checkpoint "
        "that holds the %s, or pass its config with --config" % (component, component),
        vocab_remedy="pass the config and vocab it was trained with "
        "(--config, --vocab)")

    n_params = sum(int(np.prod(t.tf_shape)) for t in tensors)
    check_writable_dir(out_dir, "output directory", min_free_bytes=4 * n_params + 2 ** 24)
    arrays = read_tensors(reader, tensors)
    atomic_copy(vocab_path, fs.join(out_dir, "vocab.txt"))
    atomic_write_json(fs.join(out_dir, "special_tokens_map.json"), SPECIAL_TOKENS)
    atomic_write_json(fs.join(out_dir, "tokenizer_config.json"), tokenizer_config(
        read_do_lower_case(source_dir), config.max_position_embeddings))
    write_safetensors(fs.join(out_dir, "model.safetensors"), arrays, checkpoint)
    # config.json last: a dir interrupted before this point does not look loadable.
    atomic_write_json(fs.join(out_dir, "config.json"),
                      hf_config(config, component, vocab["[PAD]"]))
    return {"checkpoint": checkpoint, "tensors": len(arrays), "parameters": n_params,
            "architecture": ARCHITECTURES[component]}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Export an ELECTRA TF checkpoint as a HF transformers model dir.")
    parser.add_argument("ckpt_dir", help="model dir (newest checkpoint) or released model dir")
    parser.add_argument("out_dir", help="where config.json, model.safetensors, vocab go")
    parser.add_argument("--component", choices=COMPONENTS, default="discriminator",
                        help="discriminator -> ElectraForPreTraining, "
                             "generator -> ElectraForMaskedLM (default: %(default)s)")
    parser.add_argument("--checkpoint", help="checkpoint prefix (default: newest in ckpt_dir)")
    parser.add_argument("--config", help="model config JSON (default: ckpt_dir/<component>.json)")
    parser.add_argument("--vocab", help="WordPiece vocab (default: ckpt_dir/vocab.txt)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def job():
        from util.training_utils import quiet_tensorflow
        quiet_tensorflow()
        summary = export(args.ckpt_dir, args.out_dir, args.component, args.checkpoint,
                         args.config, args.vocab)
        print("exported the %s of %s as %s: %d tensors, %.2fM parameters -> %s"
              % (args.component, summary["checkpoint"], summary["architecture"],
                 summary["tensors"], summary["parameters"] / 1e6, args.out_dir))
    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
