"""Did pre-training teach this encoder anything? Linear probes and collapse, layer by layer.

    python scripts/probe_encoder.py --checkpoint D/models/M [--checkpoint ...] --random \
        --hparams '{"model_size": "small", "embedding_size": 128}' --vocab-file V \
        --train-file train.tsv --dev-file dev.tsv [--json-out probe.json]

Each --checkpoint (a model dir, whose newest checkpoint is used, or a checkpoint prefix)
and, with --random, freshly initialised weights (--seed) embed the first --num-train
texts of --train-file and the first --num-dev of --dev-file (TSVs with `label` and
`text_a` columns, as ChnSentiCorp's) with the frozen encoder. For the embedding output
and each transformer layer a row gives:

  mean_acc  dev accuracy of a logistic regression (features standardised on train) on
            the mean of the layer's vectors over the real tokens ([CLS], [SEP] included)
  cls_acc   the same on the [CLS] vector
  tok_cos   mean pairwise cosine between the token vectors of one sentence, averaged
            over the dev sentences (1.0: every token of a sentence has the same vector)
  cls_cos   mean pairwise cosine between the [CLS] vectors of different dev sentences

Also: the dev accuracy of a logistic regression on a TF-IDF bag of characters (the bar
the probes should clear) and, per model, the 8 nearest neighbours (cosine) of each
--neighbours token in the word-embedding table. Accuracies are fractions in [0, 1].

The model shape comes from --hparams as in run_finetuning.py (model_size, embedding_size,
model_hparam_overrides, vocab_size; "model_type": "bert" for checkpoints under bert/).
Only the encoder's variables are read: generator, heads and optimizer slots are ignored.
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

import configure_finetuning  # noqa: E402
import run_finetuning  # noqa: E402
from finetune.classification import read_tsv_table, require_columns  # noqa: E402
from finetune.model_fn import check_checkpoint, encoder_kwargs, restore_pretrained  # noqa: E402
from finetune.model_info import load_tokenizer  # noqa: E402
from model import modeling  # noqa: E402
from model import tokenization  # noqa: E402
from model.configs import discriminator_config  # noqa: E402
from scripts.export_hf import find_checkpoint  # noqa: E402
from util import fs  # noqa: E402
from util.errors import InputError, run_cli  # noqa: E402
from util.hparams import load_hparams  # noqa: E402
from util.io import atomic_write_json, check_writable_dir  # noqa: E402
from util.training_utils import quiet_tensorflow  # noqa: E402

NUM_NEIGHBOURS = 8
COLUMNS = ("mean_acc", "cls_acc", "tok_cos", "cls_cos")


# ----------------------------------------------------------------------------- inputs

def load_config(hparams_arg, vocab_file, max_seq_length):
    """The FinetuningConfig of --hparams, with --vocab-file and --max-seq-length."""
    hparams = load_hparams(hparams_arg, search_dirs=[run_finetuning.PARAMS_DIR])
    hparams["vocab_file"] = vocab_file
    if max_seq_length is not None:
        hparams["max_seq_length"] = max_seq_length
    # data_dir only places files that fine-tuning writes; the probe writes none of them.
    return configure_finetuning.FinetuningConfig("probe", os.getcwd(), **hparams)


def read_examples(path, limit):
    """(texts, labels) of the first `limit` rows of a TSV with label and text_a columns."""
    if not fs.isfile(path):
        raise InputError("%s: no such file" % path)
    header, rows = read_tsv_table(path)
    require_columns(path, header, ["label", "text_a"])
    texts, labels = [], []
    for lineno, row in rows:
        if len(texts) == limit:
            break
        if not row["label"].strip():
            raise InputError("%s:%d: empty label" % (path, lineno))
        texts.append(row["text_a"])
        labels.append(row["label"].strip())
    if not texts:
        raise InputError("%s: no examples after the header" % path)
    return texts, labels


def check_labels(path, labels):
    if len(set(labels)) < 2:
        raise InputError("%s: the probes need at least two labels among the rows read, "
                         "found only %r" % (path, sorted(set(labels))))


def neighbour_ids(tokenizer, tokens, vocab_file):
    """{token: id} of the --neighbours tokens; each must be in the vocab."""
    ids = {}
    for token in tokens:
        if token not in tokenizer.vocab:
            raise InputError("--neighbours: %r is not a token of %s" % (token, vocab_file))
        ids[token] = tokenizer.vocab[token]
    return ids


def encode(tokenizer, texts, max_seq_length):
    """Token ids of [CLS] text [SEP] per text, the text cut to fit max_seq_length."""
    ids = []
    for text in texts:
        tokens = tokenizer.tokenize(text)[:max_seq_length - 2]
        ids.append(tokenizer.convert_tokens_to_ids(
            [tokenization.CLS_TOKEN] + tokens + [tokenization.SEP_TOKEN]))
    return ids


def batches(ids, batch_size):
    """(indices, input_ids [B, L], input_mask [B, L]) over ids sorted by length, each
    batch padded to its longest: short texts are not run at max_seq_length."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        length = max(len(ids[i]) for i in chunk)
        input_ids = np.zeros([len(chunk), length], np.int32)
        input_mask = np.zeros([len(chunk), length], np.int32)
        for row, i in enumerate(chunk):
            input_ids[row, :len(ids[i])] = ids[i]
            input_mask[row, :len(ids[i])] = 1
        yield chunk, input_ids, input_mask


# ----------------------------------------------------------------------------- the graph

def layer_features(h, mask):
    """Per-sentence features of one layer's output h [B, L, H] (mask [B, L], float):
    mean over real tokens [B, H], [CLS] vector [B, H], mean pairwise token cosine [B]."""
    n = tf.reduce_sum(mask, 1)  # [B] real tokens
    mean = tf.reduce_sum(h * mask[:, :, None], 1) / n[:, None]  # [B, H]
    unit = tf.nn.l2_normalize(h, -1) * mask[:, :, None]  # [B, L, H], padding rows 0
    gram = tf.matmul(unit, unit, transpose_b=True)  # [B, L, L] token-token cosines
    pairs = tf.reduce_sum(gram, [1, 2]) - tf.linalg.trace(gram)  # [B] sum over i != j
    token_cos = pairs / tf.maximum(n * (n - 1.0), 1.0)  # [B]
    return {"mean": mean, "cls": h[:, 0], "token_cos": token_cos}


def build_graph(bert_config, config):
    """Placeholders, per-layer feature tensors (embedding output first) and the
    word-embedding table of the inference-mode encoder."""
    input_ids = tf.placeholder(tf.int32, [None, None], "input_ids")  # [B, L]
    input_mask = tf.placeholder(tf.int32, [None, None], "input_mask")  # [B, L]
    # No pooler: the probes read the [CLS] vector itself, as ELECTRA's heads do.
    kwargs = dict(encoder_kwargs(config), add_pooler=False)
    model = modeling.BertModel(bert_config, False, input_ids, input_mask, **kwargs)
    mask = tf.cast(input_mask, tf.float32)
    layers = [model.embedding_output] + model.all_layer_outputs  # each [B, L, H]
    features = [layer_features(tf.cast(h, tf.float32), mask) for h in layers]
    return (input_ids, input_mask), features, model.get_embedding_table()


def restore_encoder(checkpoint):
    """Initialises every encoder variable from checkpoint; all of them must be there."""
    _, missing = restore_pretrained(checkpoint)
    if missing:
        raise InputError("checkpoint %s lacks %d encoder variable(s) (or has them with "
                         "another shape): %s" % (checkpoint, len(missing),
                                                 ", ".join(missing)))


def layer_names(bert_config):
    return ["embeddings"] + ["layer_%d" % i for i in range(bert_config.num_hidden_layers)]


def embed(session, placeholders, features, ids, batch_size):
    """Per layer {"mean": [N, H], "cls": [N, H], "token_cos": [N]} in the order of ids."""
    out = [dict() for _ in features]
    for chunk, input_ids, input_mask in batches(ids, batch_size):
        values = session.run(features, dict(zip(placeholders, (input_ids, input_mask))))
        for layer, value in zip(out, values):
            for key, array in value.items():
                if key not in layer:
                    layer[key] = np.zeros((len(ids),) + array.shape[1:], np.float32)
                layer[key][chunk] = array
    return out


# ----------------------------------------------------------------------------- measures

def linear_probe(x_train, y_train, x_dev, y_dev):
    """Dev accuracy of a logistic regression on features standardised on train."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(probe.fit(x_train, y_train).score(x_dev, y_dev))


def tfidf_baseline(train, dev):
    """Dev accuracy of a logistic regression on a TF-IDF bag of characters."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    model = make_pipeline(TfidfVectorizer(analyzer="char"), LogisticRegression(max_iter=2000))
    return float(model.fit(*train).score(*dev))


def unit_rows(vectors):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def mean_pairwise_cosine(vectors):
    """Mean cosine over all pairs i != j of the rows of vectors [N, H], in O(N H)."""
    unit = unit_rows(np.asarray(vectors, np.float64))
    total = unit.sum(0)
    n = len(unit)
    return float((total @ total - (unit * unit).sum()) / max(n * (n - 1), 1))


def nearest_neighbours(unit_table, token_id, tokenizer, k=NUM_NEIGHBOURS):
    """[[token, cosine], ...]: the k rows of unit_table [V, E] (unit_rows of the word
    embeddings) closest to row token_id."""
    cosine = unit_table @ unit_table[token_id]  # [V]
    cosine[token_id] = -np.inf
    top = np.argsort(-cosine, kind="stable")[:k]
    return [[token, round(float(cosine[i]), 4)]
            for token, i in zip(tokenizer.convert_ids_to_tokens(top), top)]


def layer_row(name, train, dev, y_train, y_dev):
    return {"layer": name,
            "mean_acc": linear_probe(train["mean"], y_train, dev["mean"], y_dev),
            "cls_acc": linear_probe(train["cls"], y_train, dev["cls"], y_dev),
            "tok_cos": float(np.mean(dev["token_cos"])),
            "cls_cos": mean_pairwise_cosine(dev["cls"])}


# ----------------------------------------------------------------------------- driver

def probe_model(name, checkpoint, data, settings, log):
    """The layer rows and embedding neighbours of one model (checkpoint None: random)."""
    bert_config, config = settings["bert_config"], settings["config"]
    start = time.time()
    with tf.Graph().as_default():
        tf.set_random_seed(settings["seed"])
        placeholders, features, table = build_graph(bert_config, config)
        if checkpoint:
            restore_encoder(checkpoint)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            train, dev = (embed(session, placeholders, features, data[split + "_ids"],
                                settings["batch_size"]) for split in ("train", "dev"))
            table_value = session.run(table)  # [V, E]
    log("%s: embedded %d train + %d dev texts in %.0fs; fitting the probes"
        % (name, len(data["train_ids"]), len(data["dev_ids"]), time.time() - start))
    rows = [layer_row(layer, t, d, data["train"][1], data["dev"][1])
            for layer, t, d in zip(layer_names(bert_config), train, dev)]
    unit_table = unit_rows(np.asarray(table_value, np.float64))  # [V, E]
    neighbours = {token: nearest_neighbours(unit_table, token_id, settings["tokenizer"])
                  for token, token_id in settings["neighbour_ids"].items()}
    return {"name": name, "checkpoint": checkpoint, "layers": rows, "neighbours": neighbours}


def resolve_checkpoints(paths, bert_config, config):
    """Checkpoint prefixes of --checkpoint, each checked against the model shape now,
    before anything slow runs."""
    prefixes = []
    for path in paths:
        prefix = find_checkpoint(path, path)
        check_checkpoint(prefix, bert_config, config)
        prefixes.append(prefix)
    return prefixes


def load_data(args, tokenizer, max_seq_length):
    train = read_examples(args.train_file, args.num_train)
    dev = read_examples(args.dev_file, args.num_dev)
    check_labels(args.train_file, train[1])
    return {"train": train, "dev": dev,
            "train_ids": encode(tokenizer, train[0], max_seq_length),
            "dev_ids": encode(tokenizer, dev[0], max_seq_length)}


def probe(args, log=print):
    """All the numbers of one invocation, as the JSON --json-out writes."""
    config = load_config(args.hparams, args.vocab_file, args.max_seq_length)
    bert_config = discriminator_config(config)
    if config.max_seq_length > bert_config.max_position_embeddings:
        raise InputError("--max-seq-length %d exceeds the model's max_position_embeddings %d"
                         % (config.max_seq_length, bert_config.max_position_embeddings))
    tokenizer = load_tokenizer(config)
    tokens = [t for t in args.neighbours.split(",") if t] if args.neighbours else []
    settings = {"config": config, "bert_config": bert_config, "tokenizer": tokenizer,
                "seed": args.seed, "batch_size": args.batch_size,
                "neighbour_ids": neighbour_ids(tokenizer, tokens, config.vocab_file)}
    data = load_data(args, tokenizer, config.max_seq_length)
    checkpoints = resolve_checkpoints(args.checkpoint or [], bert_config, config)
    baseline = tfidf_baseline(data["train"], data["dev"])
    log("TF-IDF bag-of-characters baseline: dev accuracy %.3f (%d train, %d dev texts)"
        % (baseline, len(data["train"][0]), len(data["dev"][0])))
    models = ([(("random (seed %d)" % args.seed), None)] if args.random else []) + \
        [(path, prefix) for path, prefix in zip(args.checkpoint or [], checkpoints)]
    results = [probe_model(name, prefix, data, settings, log) for name, prefix in models]
    return {"tfidf_char_accuracy": baseline, "models": results,
            "settings": {"hparams": args.hparams, "vocab_file": args.vocab_file,
                         "train_file": args.train_file, "dev_file": args.dev_file,
                         "num_train": len(data["train"][0]), "num_dev": len(data["dev"][0]),
                         "max_seq_length": config.max_seq_length, "seed": args.seed,
                         "model_type": config.model_type,
                         "bert_config": bert_config.to_dict()}}


def format_report(report):
    """The table (a row per model x layer) and the neighbour lists, as text."""
    width = max([len("model")] + [len(m["name"]) for m in report["models"]])
    lines = ["%-*s  %-10s  %s" % (width, "model", "layer", "  ".join("%8s" % c for c in COLUMNS))]
    for model in report["models"]:
        for row in model["layers"]:
            lines.append("%-*s  %-10s  %s" % (width, model["name"], row["layer"], "  ".join(
                ("%8.4f" if c.endswith("cos") else "%8.3f") % row[c] for c in COLUMNS)))
    lines.append("TF-IDF bag-of-characters baseline: dev accuracy %.3f"
                 % report["tfidf_char_accuracy"])
    for model in report["models"]:
        for token, neighbours in model["neighbours"].items():
            lines.append("%s: nearest to %s: %s" % (model["name"], token, " ".join(
                "%s %.2f" % (t, c) for t, c in neighbours)))
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append",
                        help="model dir (its newest checkpoint) or checkpoint prefix; "
                             "repeat for several")
    parser.add_argument("--random", action="store_true",
                        help="also probe randomly initialised weights (the baseline)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random weights")
    parser.add_argument("--hparams", default="{}",
                        help="fine-tuning hparams giving the model shape (JSON object, file, "
                             "or a name in params/)")
    parser.add_argument("--vocab-file", required=True, help="the model's WordPiece vocab")
    parser.add_argument("--train-file", required=True, help="TSV with label and text_a")
    parser.add_argument("--dev-file", required=True, help="TSV with label and text_a")
    parser.add_argument("--num-train", type=int, default=1000, help="first N train rows")
    parser.add_argument("--num-dev", type=int, default=1200, help="first N dev rows")
    parser.add_argument("--max-seq-length", type=int,
                        help="tokens per text, [CLS]/[SEP] included (default: the hparams')")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per inference step")
    parser.add_argument("--neighbours", default="好,差,北,球",
                        help="comma-separated vocab tokens whose nearest word embeddings "
                             "are listed ('' for none; default: %(default)s)")
    parser.add_argument("--json-out", help="write every number here (JSON)")
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.random:
        parser.error("nothing to probe: give --checkpoint PATH and/or --random")
    for flag in ("num_train", "num_dev", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error("--%s must be >= 1" % flag.replace("_", "-"))
    return args


def main(argv=None):
    args = parse_args(argv)

    def job():
        quiet_tensorflow()
        if args.json_out:  # fail now, not after the slow part
            check_writable_dir(fs.dirname(args.json_out),
                               "--json-out directory", min_free_bytes=2 ** 20)
        report = probe(args, log=lambda line: print(line, flush=True))
        print(format_report(report), flush=True)
        if args.json_out:
            atomic_write_json(args.json_out, report)
            print("wrote %s" % args.json_out, flush=True)
    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
