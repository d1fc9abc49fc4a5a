"""Import a Hugging Face model dir as a model dir the runners use as it is: the inverse of
scripts/export_hf.py.

    python scripts/import_hf.py HF_DISCRIMINATOR_DIR [--generator HF_GENERATOR_DIR] --out D/models/M
    python scripts/import_hf.py HF_BERT_DIR --out D/models/M      # MacBERT, LERT, RoBERTa-wwm-ext

HF_DIR holds config.json, vocab.txt and the weights in any layout transformers writes or has
written (util/hf_weights.py: model.safetensors, sharded safetensors, pytorch_model.bin in
torch's zip or legacy format -- read without torch, refusing any pickle that names a
non-tensor global -- or tf_model.h5). It is an ELECTRA discriminator (ElectraForPreTraining,
or a bare ElectraModel) or a BERT-family model (BertForMaskedLM, BertForPreTraining,
BertModel). --generator adds an ELECTRA generator (ElectraForMaskedLM), so that the pair
continues pre-training; its embeddings must equal the discriminator's (the official graph
shares one table; the released pairs were converted from one checkpoint).

D/models/M then holds
    electra_model.{index,data-*} (bert_model.ckpt.* for BERT)  the weights, official names
    vocab.txt                          the HF dir's
    discriminator.json, generator.json the shapes (with model_type), as pre-training writes
                                       (generator.json: with --generator, or a BERT's)
    pretrain_hparams.json              the shape hparams fine-tuning reads (model_size,
                                       model_hparam_overrides, embedding_size, vocab_size,
                                       generator_hidden_size, electra_objective)
    hf_import.json                     what was imported: the source files with their
                                       SHA-256, the layout read, the tensors written
and then

    python run_finetuning.py --data-dir D --model-name M --hparams params_chnsenticorp.json
    python run_pretraining.py --data-dir D --model-name M --hparams '<the shape it prints>'

fine-tune it, or continue pre-training from it (the run starts from the imported weights:
see docs/pretraining.md). Every tensor of the HF file must be one the mapping knows
(model/hf_names.py) and every tensor of the model must be there: anything else is an error
naming the tensor, so nothing is silently left at its random initialisation.
"""

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from util import interrupt  # noqa: E402
if __name__ == "__main__":  # a stop while TensorFlow loads: one line, no traceback
    interrupt.stop_cleanly_before_start()
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import numpy as np  # noqa: E402

from model import configs  # noqa: E402
from model import hf_names  # noqa: E402
from model import modeling  # noqa: E402
from model import tokenization  # noqa: E402
from util import checkpoints  # noqa: E402
from util import fs  # noqa: E402
from util import hf_weights  # noqa: E402
from util import lock  # noqa: E402
from util.errors import InputError, run_cli  # noqa: E402
from util.io import atomic_copy, atomic_write_json, check_writable_dir  # noqa: E402
from util.hparams import parse_json  # noqa: E402

ELECTRA_DISCRIMINATORS = ("ElectraForPreTraining", "ElectraModel")
ELECTRA_GENERATOR = "ElectraForMaskedLM"
# BERT architectures -> (pooler, masked-LM head, next-sentence head) they hold.
BERT_PARTS = {"BertForPreTraining": (True, True, True), "BertForMaskedLM": (False, True, False),
              "BertModel": (True, False, False)}
# Buffers, not weights: transformers saves them in some versions.
BUFFER_SUFFIXES = (".position_ids", "embeddings.token_type_ids")
CHECKPOINT_NAMES = {"electra": "electra_model", "bert": "bert_model.ckpt"}
IMPORT_RECORD = "hf_import.json"


class HFModel(object):
    """One HF model dir, read and checked: config (our BertConfig), model_type, architecture,
    weights ({normalised HF name: float32 array}), and where they came from."""

    def __init__(self, directory, config, fields, architecture, weights, weight_path):
        self.directory = directory
        self.config = config
        self.fields = fields
        self.model_type = fields.get("model_type")
        self.architecture = architecture
        self.weights = weights
        self.weight_path = weight_path


# ----------------------------------------------------------------------------- reading

def read_config(directory):
    path = fs.join(directory, "config.json")
    if not fs.exists(path):
        raise InputError("%s has no config.json: expected a Hugging Face model dir "
                         "(config.json, vocab.txt and the weights)" % directory)
    fields = parse_json(fs.read_text(path), path)
    if "model_type" not in fields:  # configs of the 2020 uploads may lack it
        architecture = (fields.get("architectures") or [""])[0]
        for model_type in ("electra", "bert"):
            if architecture.lower().startswith(model_type):
                fields["model_type"] = model_type
    if fields.get("model_type") not in ("electra", "bert"):
        raise InputError("%s: model_type %r; this imports ELECTRA and BERT-family models "
                         "(\"electra\", \"bert\")" % (path, fields.get("model_type")))
    return fields, hf_names.from_hf_config(fields, path)


def normalise_names(weights, model_type):
    """HF names as the current transformers writes them: LayerNorm gamma/beta -> weight/bias,
    the encoder's names under `electra.` / `bert.` (a bare ElectraModel/BertModel state dict
    has them without); buffers dropped."""
    prefix = model_type + "."
    bare = ("embeddings.", "embeddings_project.", "encoder.", "pooler.")
    out = {}
    for name, array in weights.items():
        if name.endswith(BUFFER_SUFFIXES):
            continue
        new = name
        if new.startswith(bare):
            new = prefix + new
        for old_leaf, leaf in ((".gamma", ".weight"), (".beta", ".bias")):
            if "LayerNorm" in new and new.endswith(old_leaf):
                new = new[:-len(old_leaf)] + leaf
        if new in out:
            raise InputError("two tensors of the weights are %s (%s and another spelling)"
                             % (new, name))
        out[new] = array
    return out


def architecture_of(fields, names, model_type):
    """config.json's architecture, else the one the tensor names show."""
    listed = fields.get("architectures") or []
    if listed:
        return listed[0]
    if model_type == "electra":
        if any(n.startswith("discriminator_predictions.") for n in names):
            return "ElectraForPreTraining"
        if any(n.startswith("generator_") for n in names):
            return ELECTRA_GENERATOR
        return "ElectraModel"
    has_mlm = any(n.startswith("cls.predictions.") for n in names)
    has_nsp = any(n.startswith("cls.seq_relationship.") for n in names)
    return ("BertForPreTraining" if has_nsp else "BertForMaskedLM" if has_mlm
            else "BertModel")


def read_model(directory):
    if not fs.isdir(directory):
        raise InputError("%s is not a directory; expected a Hugging Face model dir "
                         "(config.json, vocab.txt and the weights)" % directory)
    fields, config = read_config(directory)
    raw, weight_path = hf_weights.read_weights(directory)
    weights = normalise_names(raw, fields["model_type"])
    architecture = architecture_of(fields, weights, fields["model_type"])
    return HFModel(directory, config, fields, architecture, weights, weight_path)


# ----------------------------------------------------------------------------- mapping

def expected_tensors(model, role):
    """The hf_names.Tensor list of an HF model in its role ("discriminator", "generator",
    "bert") and the tied tensors it may hold: {hf name: hf name it must equal}."""
    config, arch = model.config, model.architecture
    if role == "bert":
        if arch not in BERT_PARTS:
            raise InputError("%s: architecture %s is not one of %s" % (
                model.directory, arch, ", ".join(sorted(BERT_PARTS))))
        # The architecture's parts, and any other part the file holds whole (conversions
        # from Google's checkpoints keep the pooler and next-sentence head).
        pooler, mlm, nsp = (
            needed or any(n.startswith(part) for n in model.weights)
            for needed, part in zip(BERT_PARTS[arch], ("bert.pooler.", "cls.predictions.",
                                                       "cls.seq_relationship.")))
        return (hf_names.bert_tensors(config, pooler, mlm, nsp),
                {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                 "cls.predictions.decoder.bias": "cls.predictions.bias"})
    if role == "generator":
        if arch != ELECTRA_GENERATOR:
            raise InputError("--generator %s is a %s, not an ELECTRA generator (%s)"
                             % (model.directory, arch, ELECTRA_GENERATOR))
        return (hf_names.generator_tensors(config),
                {"generator_lm_head.weight": "electra.embeddings.word_embeddings.weight"})
    if arch == ELECTRA_GENERATOR:
        raise InputError("%s is an ELECTRA generator (%s): pass the discriminator as HF_DIR "
                         "and this dir with --generator" % (model.directory, arch))
    if arch not in ELECTRA_DISCRIMINATORS:
        raise InputError("%s: architecture %s; expected an ELECTRA discriminator (%s) or a "
                         "BERT model" % (model.directory, arch,
                                         ", ".join(ELECTRA_DISCRIMINATORS)))
    tensors = hf_names.encoder_tensors(config, "electra", "electra")
    if arch == "ElectraForPreTraining" or any(
            n.startswith("discriminator_predictions.") for n in model.weights):
        tensors += hf_names.discriminator_head_tensors(config)
    return tensors, {}


def map_tensors(model, role):
    """{TF name: float32 array in TF layout} of model in role; every HF tensor accounted
    for (mapped, or tied and equal to its twin), every model tensor present, each of the
    model's shape."""
    tensors, tied = expected_tensors(model, role)
    by_name = {t.hf_name: t for t in tensors}
    source = model.weight_path
    unknown = sorted(n for n in model.weights if n not in by_name and n not in tied)
    if unknown:
        raise InputError(
            "%s holds %d tensors that a %s %s does not have (e.g. %s): not imported, as "
            "they would be lost; is config.json's architecture (%s) the model's?"
            % (source, len(unknown), model.model_type.upper(), role, ", ".join(unknown[:3]),
               model.architecture))
    missing = [t.hf_name for t in tensors if t.hf_name not in model.weights]
    if missing:
        raise InputError("%s lacks %d tensors of the %s (e.g. %s): nothing is left at a "
                         "random initialisation; use the complete model" % (
                             source, len(missing), model.architecture, ", ".join(missing[:3])))
    out = {}
    for t in tensors:
        array = model.weights[t.hf_name]
        if list(array.shape) != t.hf_shape:
            raise InputError("%s: %s has shape %s but %s describes %s" % (
                source, t.hf_name, list(array.shape), fs.join(model.directory, "config.json"),
                t.hf_shape))
        if not np.issubdtype(array.dtype, np.floating):
            raise InputError("%s: %s is %s, not floating point" % (source, t.hf_name,
                                                                    array.dtype))
        array = array.astype(np.float32)
        out[t.tf_name] = np.ascontiguousarray(array.T if t.transpose else array)
    for name, twin in tied.items():
        if name in model.weights and not np.array_equal(model.weights[name],
                                                        model.weights[twin]):
            raise InputError(
                "%s: %s differs from %s (max |difference| %.3g): the official graph ties "
                "them, so this model cannot be represented" % (
                    source, name, twin, _max_difference(model.weights[name],
                                                        model.weights[twin])))
    return out


def _max_difference(a, b):
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# ----------------------------------------------------------------------------- the pair

def generator_fractions(disc, gen, source):
    """(generator_hidden_size, generator_layers) that make the pre-training graph build
    exactly gen from disc (model/configs.generator_config); an error naming the first
    size it cannot build otherwise."""
    class Fractions(object):
        generator_hidden_size = gen.hidden_size / float(disc.hidden_size)
        generator_layers = gen.num_hidden_layers / float(disc.num_hidden_layers)
    built = configs.generator_config(Fractions, disc)
    built.embedding_size = disc.embedding_size
    for key in ("vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size",
                "hidden_act", "hidden_size", "num_hidden_layers", "intermediate_size",
                "num_attention_heads", "layer_norm_eps"):
        if getattr(built, key) != getattr(gen, key):
            raise InputError(
                "%s: the generator's %s is %r, but the pre-training graph builds %r for a "
                "%d-wide, %d-layer generator of this discriminator (feed-forward 4 x hidden, "
                "hidden/64 heads, the discriminator's embeddings): this pair cannot continue "
                "pre-training here; import the discriminator alone to fine-tune it"
                % (source, key, getattr(gen, key), getattr(built, key), gen.hidden_size,
                   gen.num_hidden_layers))
    return Fractions.generator_hidden_size, Fractions.generator_layers


def merge_generator(disc_arrays, gen_arrays, gen_model):
    """The pair's checkpoint: the generator's embeddings must equal the discriminator's
    (one shared `electra/embeddings` table, as the official graph has)."""
    merged = dict(disc_arrays)
    for name, array in sorted(gen_arrays.items()):
        if name.startswith("electra/embeddings/"):
            if not np.array_equal(array, disc_arrays[name]):
                raise InputError(
                    "%s: the generator's %s differs from the discriminator's (max "
                    "|difference| %.3g): the official ELECTRA graph shares one embedding "
                    "table between them, so this pair cannot continue pre-training as it "
                    "is; import the discriminator alone (to fine-tune it), or a generator "
                    "converted from the same checkpoint" % (
                        gen_model.weight_path, name, _max_difference(array,
                                                                     disc_arrays[name])))
            continue
        merged[name] = array
    return merged


# ----------------------------------------------------------------------------- outputs

def shape_hparams(disc, electra, fractions):
    """The pre-training hparams that describe the model: model_size (the preset closest to
    it), model_hparam_overrides (every other difference), embedding_size, vocab_size."""
    shape = disc.to_dict()
    best = None
    for size in modeling.MODEL_SIZES:
        preset = modeling.BertConfig.for_model_size(size).to_dict()
        overrides = {k: v for k, v in shape.items() if preset.get(k) != v
                     and k not in ("vocab_size", "embedding_size")}
        if best is None or len(overrides) < len(best[1]):
            best = (size, overrides)
    hparams = {"model_size": best[0], "model_hparam_overrides": best[1],
               "embedding_size": disc.embedding_size, "vocab_size": disc.vocab_size,
               "electra_objective": electra}
    if fractions:
        hparams["generator_hidden_size"], hparams["generator_layers"] = fractions
    return hparams


def shape_files(disc, gen, model_type):
    """discriminator.json and (with a generator or a BERT's masked-LM model, gen)
    generator.json, as pre-training writes them."""
    configs_by_file = [("discriminator.json", disc)] + ([("generator.json", gen)] if gen
                                                         else [])
    return {name: dict(config.to_dict(), model_type=model_type)
            for name, config in configs_by_file}


def file_record(path):
    return {"path": path, "bytes": fs.getsize(path), "sha256": fs.digest(path)}


def source_files(model):
    """The files the import read from an HF dir: config, vocab, the weights (and shards)."""
    paths = [fs.join(model.directory, "config.json"), fs.join(model.directory, "vocab.txt")]
    if model.weight_path.endswith(".index.json"):
        shards = sorted(set(json.loads(fs.read_text(model.weight_path))["weight_map"]
                            .values()))
        paths += [model.weight_path] + [fs.join(model.directory, s) for s in shards]
    else:
        paths.append(model.weight_path)
    return [file_record(p) for p in paths]


def check_vocab(model, disc_vocab=None):
    """The HF dir's vocab.txt: WordPiece, as many lines as the embedding rows; a generator's
    must be the discriminator's."""
    path = fs.join(model.directory, "vocab.txt")
    if not fs.exists(path):
        raise InputError("%s has no vocab.txt (a WordPiece vocab; SentencePiece models are "
                         "not imported)" % model.directory)
    tokenization.load_vocab(path)  # UTF-8, no blank lines, the special tokens
    lines = len(tokenization._read_vocab_lines(path))
    if lines != model.config.vocab_size:
        raise InputError("%s has %d tokens but %s says vocab_size %d" % (
            path, lines, fs.join(model.directory, "config.json"), model.config.vocab_size))
    if disc_vocab and not fs.same_bytes(path, disc_vocab):
        raise InputError("%s differs from the discriminator's %s: a pair shares one vocab"
                         % (path, disc_vocab))
    return path


def check_out_dir(out, sources):
    """None for a new or empty out dir; the earlier record when out holds an import of
    exactly these sources (nothing is redone); otherwise an error: the import writes a new
    model dir and never replaces what one holds (weights, a run's files, results)."""
    present = sorted(fs.basename(n) for n in fs.listdir(out)
                     if fs.basename(n) != ".lock") if fs.isdir(out) else []
    if not present:
        return None
    if IMPORT_RECORD in present:
        try:
            record = json.loads(fs.read_text(fs.join(out, IMPORT_RECORD)))
        except ValueError:
            record = {}
        if [s["sha256"] for s in record.get("sources", [])] == [s["sha256"] for s in sources]:
            return record
    held = [n for n in present if n.endswith(".index")]
    raise InputError("%s is not empty (%s): the import writes a new model dir and never "
                     "replaces what one holds; choose another --out" % (
                         out, "checkpoints " + ", ".join(held[:3]) if held
                         else ", ".join(present[:4])))


def data_dir_and_name(out):
    """(D, M) of an out dir D/models/M, else ("D", "M")."""
    models = fs.dirname(out)
    if fs.basename(models) == "models":
        return fs.dirname(models), fs.basename(out)
    return "D", "M"


def continue_command(out, hparams, complete):
    """The run_pretraining.py command that continues pre-training from out, or why the
    imported model cannot (complete: it holds every part the objective trains)."""
    if not complete:
        return None
    data_dir, model_name = data_dir_and_name(out)
    shape = {k: v for k, v in hparams.items() if k not in ("vocab_size", "do_lower_case")
             and not (k == "model_hparam_overrides" and not v)
             and not (k == "electra_objective" and v)}
    return ("python run_pretraining.py --data-dir %s --model-name %s --hparams '%s'"
            % (data_dir, model_name, json.dumps(shape, sort_keys=True)))


def import_hf(hf_dir, out, generator_dir=None):
    """Reads, checks and maps everything, then writes out; returns the import record."""
    disc_model = read_model(hf_dir)
    electra = disc_model.model_type == "electra"
    if generator_dir and not electra:
        raise InputError("--generator goes with an ELECTRA discriminator; %s is a BERT "
                         "model (its masked-LM head is in the same file)" % hf_dir)
    vocab = check_vocab(disc_model)
    arrays = map_tensors(disc_model, "discriminator" if electra else "bert")
    disc = disc_model.config
    gen, fractions, models = disc, None, [disc_model]
    if generator_dir:
        gen_model = read_model(generator_dir)
        if gen_model.model_type != "electra":
            raise InputError("--generator %s is a %s model, not ELECTRA"
                             % (generator_dir, gen_model.model_type))
        check_vocab(gen_model, vocab)
        fractions = generator_fractions(disc, gen_model.config,
                                        fs.join(generator_dir, "config.json"))
        arrays = merge_generator(arrays, map_tensors(gen_model, "generator"), gen_model)
        gen = gen_model.config
        models.append(gen_model)
    sources = [record for model in models for record in source_files(model)]
    done = check_out_dir(out, sources)
    if done:
        return dict(done, reused=True)

    n_bytes = sum(a.nbytes for a in arrays.values())
    model_type = "electra" if electra else "bert"
    hparams = shape_hparams(disc, electra, fractions)
    do_lower_case = _do_lower_case(disc_model.directory)
    if do_lower_case is not None:
        hparams["do_lower_case"] = do_lower_case
    # Continued pre-training trains the generator (ELECTRA) or the masked-LM head (BERT):
    # the import is ready for it only when it holds them.
    complete = bool(generator_dir) if electra else "cls/predictions/output_bias" in arrays
    with lock.hold(out, "model dir"):  # one writer; creates out or names what is in the way
        if check_out_dir(out, sources):  # an identical import finished meanwhile
            return dict(check_out_dir(out, sources), reused=True)
        check_writable_dir(out, "output directory", min_free_bytes=n_bytes + 2 ** 24)
        atomic_copy(vocab, fs.join(out, "vocab.txt"))
        for name, content in shape_files(disc, gen if complete else None,
                                         model_type).items():
            atomic_write_json(fs.join(out, name), content)
        atomic_write_json(fs.join(out, "pretrain_hparams.json"), hparams)
        prefix = fs.join(out, CHECKPOINT_NAMES[model_type])
        checkpoints.write_checkpoint(prefix, arrays)
        record = {
            "checkpoint": fs.basename(prefix),
            "sources": sources,
            "architectures": [m.architecture for m in models],
            "weight_files": [fs.basename(m.weight_path) for m in models],
            "variables": len(arrays),
            "parameters": int(sum(a.size for a in arrays.values())),
            "pretrain_hparams": hparams,
            "continue_pretraining": continue_command(out, hparams, complete),
        }
        # Last: it marks a finished import (a rerun with the same sources does nothing). An
        # interrupted one leaves a dir without it, which a rerun refuses as not empty.
        atomic_write_json(fs.join(out, IMPORT_RECORD), record)
    return record


def _do_lower_case(directory):
    path = fs.join(directory, "tokenizer_config.json")
    if not fs.exists(path):
        return None
    try:
        value = json.loads(fs.read_text(path)).get("do_lower_case")
    except ValueError:
        return None
    return value if isinstance(value, bool) else None


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Import a Hugging Face ELECTRA or BERT model dir as a model dir of this "
                    "toolkit (official TF variable names).")
    parser.add_argument("hf_dir", help="HF model dir: an ELECTRA discriminator or a "
                                       "BERT-family model (config.json, vocab.txt, weights)")
    parser.add_argument("--generator", help="HF dir of the ELECTRA generator of the same "
                                            "pair (for continued pre-training)")
    parser.add_argument("--out", required=True, help="the model dir to write, D/models/M")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def job():
        from util.training_utils import quiet_tensorflow
        quiet_tensorflow()
        started = time.time()
        record = import_hf(args.hf_dir, args.out, args.generator)
        if record.get("reused"):
            print("%s already holds this import (%s, same source files): nothing to do"
                  % (args.out, record["checkpoint"]))
        else:
            print("imported %s (%s) -> %s: %d variables, %.2fM parameters, in %.1fs" % (
                " + ".join(record["architectures"]), " + ".join(record["weight_files"]),
                fs.join(args.out, record["checkpoint"]), record["variables"],
                record["parameters"] / 1e6, time.time() - started))
        print("fine-tune: python run_finetuning.py --data-dir %s --model-name %s --hparams "
              "params_<task>.json" % data_dir_and_name(args.out))
        if record["continue_pretraining"]:
            print("continue pre-training: %s" % record["continue_pretraining"])
        elif args.generator is None and "Electra" in record["architectures"][0]:
            print("to continue pre-training, import the pair (a new --out, with --generator "
                  "HF_GENERATOR_DIR): the generator would otherwise start from random weights")
        else:
            print("to continue pre-training, import a model with its masked-LM head "
                  "(BertForMaskedLM or BertForPreTraining): %s has none" % args.hf_dir)
    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
