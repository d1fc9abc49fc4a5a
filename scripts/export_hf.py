"""Export an ELECTRA TF checkpoint as a HF transformers model directory (safetensors).

    python scripts/export_hf.py D/models/M OUT_DIR --component discriminator
    python scripts/export_hf.py D/models/M OUT_GEN --component generator
    python scripts/export_hf.py D/models/M OUT_BERT --component bert   # a BERT checkpoint

CKPT_DIR is a pre-training model dir (the newest checkpoint is used) or a released Chinese
ELECTRA dir (`electra_model.*` files, possibly without a `checkpoint` state file).
`--checkpoint PREFIX` picks another checkpoint. The model shape comes from
CKPT_DIR/<component>.json (written by run_pretraining.py and scripts/import_hf.py; a BERT's
is discriminator.json) or
`--config FILE`; the vocab from CKPT_DIR/vocab.txt or `--vocab FILE`.

OUT_DIR receives config.json, model.safetensors, vocab.txt, tokenizer_config.json and
special_tokens_map.json, so that

    ElectraForPreTraining.from_pretrained(OUT_DIR)   # --component discriminator
    ElectraForMaskedLM.from_pretrained(OUT_DIR)      # --component generator
    BertForMaskedLM.from_pretrained(OUT_DIR)         # --component bert (BertForPreTraining
                                                     # with a next-sentence head, BertModel
                                                     # with neither head)
    BertTokenizerFast.from_pretrained(OUT_DIR)       # or AutoTokenizer / BertTokenizer

work. Writing needs only numpy and the `safetensors` package: no torch.

Names: the official TF names map to HF's as model/hf_names.py lays out (the table
scripts/import_hf.py reads too). The discriminator's encoder is `electra`; the generator's
is `generator/...` with the discriminator's shared `electra/embeddings` (or its own
`generator/embeddings` with untied_generator_embeddings); a BERT-MLM checkpoint
(electra_objective=false) has Google BERT's names (`bert/`, `cls/predictions`) and is
exported with --component generator (as ElectraForMaskedLM) or --component bert (as BERT,
with the pooler and next-sentence head a released BERT checkpoint holds). HF's generator
model calls all of it `electra.`.
generator_lm_head.weight is tied to the word embeddings, so it is not stored (as in HF's
own save_pretrained). Optimizer slots and global_step are skipped.

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
from util import interrupt  # noqa: E402
if __name__ == "__main__":  # a stop while TensorFlow loads: one line, no traceback
    interrupt.stop_cleanly_before_start()
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import numpy as np  # noqa: E402

from model import hf_names  # noqa: E402
from model import tokenization  # noqa: E402
from model.modeling import BertConfig  # noqa: E402
from util import checkpoints  # noqa: E402
from util import fs  # noqa: E402
from util.errors import InputError, run_cli  # noqa: E402
from util.io import (atomic_copy, atomic_write_bytes, atomic_write_json,  # noqa: E402
                     check_writable_dir)

ELECTRA_COMPONENTS = ("discriminator", "generator")
COMPONENTS = ELECTRA_COMPONENTS + ("bert",)
ARCHITECTURES = {"discriminator": "ElectraForPreTraining", "generator": "ElectraForMaskedLM"}
# The shape file of each component (a BERT checkpoint's is its discriminator.json).
CONFIG_FILES = {"discriminator": "discriminator.json", "generator": "generator.json",
                "bert": "discriminator.json"}
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}


def generator_tensors(config, checkpoint_names):
    """Every tensor of HF's ElectraForMaskedLM (but the tied generator_lm_head.weight), from
    the checkpoint's own layout."""
    names = set(checkpoint_names)
    if "bert/embeddings/word_embeddings" in names:
        # BERT-MLM objective (electra_objective=false): Google BERT names.
        return (hf_names.encoder_tensors(config, "bert", "bert")
                + hf_names.bert_mlm_tensors(config))
    # The official layout: own encoder under `generator`, embeddings shared under
    # `electra` (or its own with untied_generator_embeddings); tied weights: `electra`.
    scope = "generator" if any(n.startswith("generator/encoder/") for n in names) \
        else "electra"
    embedding_scope = "generator" if "generator/embeddings/word_embeddings" in names \
        else "electra"
    return hf_names.generator_tensors(config, embedding_scope, scope)


def bert_parts(checkpoint_names):
    """(pooler, masked-LM head, next-sentence head): the parts a BERT checkpoint holds."""
    names = set(checkpoint_names)
    return ("bert/pooler/dense/kernel" in names, "cls/predictions/output_bias" in names,
            "cls/seq_relationship/output_weights" in names)


def bert_architecture(checkpoint_names):
    pooler, mlm, nsp = bert_parts(checkpoint_names)
    return ("BertForPreTraining" if mlm and nsp else "BertForMaskedLM" if mlm
            else "BertModel")


def tensors_for(component, config, checkpoint_names):
    if component == "discriminator":
        return hf_names.discriminator_tensors(config)
    if component == "bert":
        return hf_names.bert_tensors(config, *bert_parts(checkpoint_names))
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
    """The component's BertConfig from --config or its CONFIG_FILES entry in CKPT_DIR."""
    path = config_file or fs.join(ckpt_dir, CONFIG_FILES[component])
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
    config_source = config_file or fs.join(source_dir, CONFIG_FILES[component])
    vocab_path = vocab_file or fs.join(source_dir, "vocab.txt")
    vocab = read_vocab(vocab_path, config)

    if component == "bert" and (config.embedding_size or config.hidden_size) != \
            config.hidden_size:
        raise InputError(
            "%s: embedding_size %d differs from hidden_size %d, and HF's BERT has no "
            "embedding projection: export this checkpoint with --component generator (as "
            "ElectraForMaskedLM, which has one)" % (config_source, config.embedding_size,
                                                    config.hidden_size))
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

    architecture = (bert_architecture(shapes) if component == "bert"
                    else ARCHITECTURES[component])
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
                      hf_names.to_hf_config(config, architecture, vocab["[PAD]"],
                                            "bert" if component == "bert" else "electra"))
    return {"checkpoint": checkpoint, "tensors": len(arrays), "parameters": n_params,
            "architecture": architecture}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Export an ELECTRA TF checkpoint as a HF transformers model dir.")
    parser.add_argument("ckpt_dir", help="model dir (newest checkpoint) or released model dir")
    parser.add_argument("out_dir", help="where config.json, model.safetensors, vocab go")
    parser.add_argument("--component", choices=COMPONENTS, default="discriminator",
                        help="discriminator -> ElectraForPreTraining, "
                             "generator -> ElectraForMaskedLM, bert -> BertForMaskedLM / "
                             "BertForPreTraining / BertModel by the heads the checkpoint "
                             "holds (default: %(default)s)")
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
