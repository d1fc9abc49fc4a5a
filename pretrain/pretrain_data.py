"""Reading the pre-training tfrecords written by build_pretraining_dataset.py."""

import collections

import tensorflow.compat.v1 as tf

from util import distribute
from util import fs
from util.errors import InputError
from util.shard_names import EVAL_PREFIX

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids")
# Written by build_pretraining_dataset.py --segmenter jieba|ref: 1 where a token starts a word.
WORD_STARTS = "word_starts"
# Written with --linguistic-labels: per-token label index + 1, 0 = no label (ignored).
LINGUISTIC_FEATURES = ("pos_ids", "ner_ids", "dep_ids")

# What the model sees: the raw features, plus the masking chosen in the graph.
Inputs = collections.namedtuple(
    "Inputs", ["input_ids", "input_mask", "segment_ids", "masked_lm_positions",
               "masked_lm_ids", "masked_lm_weights"])


def features_to_inputs(features):
    return Inputs(
        input_ids=features["input_ids"], input_mask=features["input_mask"],
        segment_ids=features["segment_ids"],
        masked_lm_positions=features.get("masked_lm_positions"),
        masked_lm_ids=features.get("masked_lm_ids"),
        masked_lm_weights=features.get("masked_lm_weights"))


def get_updated_inputs(inputs, **kwargs):
    fields = inputs._asdict()
    fields.update(kwargs)
    return Inputs(**fields)


def find_tfrecords(patterns):
    """Expands comma-separated globs; InputError if nothing matches."""
    files = []
    for pattern in [p.strip() for p in patterns.split(",") if p.strip()]:
        files.extend(fs.glob(pattern))  # local, gs:// or ram://
    files = [f for f in files if not f.endswith(".tmp")]
    if not files:
        raise InputError(
            "no tfrecords found matching %r: build them first with "
            "`python build_pretraining_dataset.py --corpus-dir CORPUS --vocab-file VOCAB "
            "--output-dir %s` or set the pretrain_tfrecords hparam"
            % (patterns, fs.dirname(patterns.split(",")[0].strip())))
    return files


def held_out_tfrecords(train_patterns):
    """The shards of examples build_pretraining_dataset.py --eval-share held out, in the
    dirs of the training globs (comma-separated); [] if there are none."""
    dirs = sorted({fs.dirname(p.strip()) for p in train_patterns.split(",") if p.strip()})
    return sorted(path for d in dirs for path in fs.glob(fs.join(d, EVAL_PREFIX + "*"))
                  if not path.endswith((".tmp", ".part")))


def first_record_features(path):
    """The feature map of the first record of a tfrecord file (None if it is empty)."""
    try:
        for raw in tf.io.tf_record_iterator(path):
            return tf.train.Example.FromString(raw).features.feature
    except tf.errors.OpError as e:
        raise InputError("%s: not a readable tfrecord file (%s)" % (path, e.message))
    return None


def record_seq_length(path):
    """Length of input_ids in the first record of a tfrecord file (None if it is empty)."""
    feature = first_record_features(path)
    if feature is None:
        return None
    missing = [n for n in FEATURE_NAMES if n not in feature]
    if missing:
        raise InputError("%s: records lack the features %s; expected %s"
                         % (path, missing, list(FEATURE_NAMES)))
    return len(feature["input_ids"].int64_list.value)


def check_features(files, names, why, rebuild):
    """The first record of every file must carry the features `names` (extra ones, e.g.
    word_starts): say which file lacks which, why they are needed and how to rebuild."""
    for path in files:
        feature = first_record_features(path)
        missing = [n for n in names if n not in feature] if feature is not None else []
        if missing:
            raise InputError(
                "%s: records lack the feature(s) %s needed for %s; rebuild the data "
                "with `python build_pretraining_dataset.py ... %s` (or turn %s off)"
                % (path, ", ".join(missing), why, rebuild, why))


def check_seq_length(files, max_seq_length):
    """The tfrecords' fixed length must equal max_seq_length: say so before training."""
    length = None
    for path in files:
        length = record_seq_length(path)
        if length is not None:
            break
    if length is None:
        raise InputError("the tfrecords %s hold no examples" % ", ".join(files[:3]))
    if length != max_seq_length:
        raise InputError(
            "the tfrecords (e.g. %s) hold sequences of length %d but max_seq_length is %d: "
            "set \"max_seq_length\": %d or rebuild the data with --max-seq-length %d"
            % (files[0], length, max_seq_length, length, max_seq_length))


def get_input_fn(files, max_seq_length, is_training, batch_size, num_cpu_threads=4,
                 extra_features=(), seed=None, shuffle_buffer_size=1000):
    """An input_fn over `files`; extra_features (e.g. word_starts) are parsed too.

    TPUEstimator passes the per-shard batch size in params["batch_size"]; the training
    loop (util/training_loop.py) passes no batch size, and `batch_size` is used. Under a
    tf.distribute strategy the loop passes an input_context: `batch_size` is then the global batch, each
    replica gets its share, and each host keeps every n-th example of the stream.
    seed: shuffle seed; hosts must shuffle alike to read disjoint shares (None: random).
    shuffle_buffer_size: training examples shuffled together (the official code used 100).
    """
    name_to_features = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64)
                        for name in FEATURE_NAMES + tuple(extra_features)}

    def decode(records):
        """A batch of serialized examples [B] -> {name: int32 [B, max_seq_length]}."""
        example = tf.io.parse_example(records, name_to_features)
        # int64 is what tf.Example stores; int32 is what the model (and TPUs) want.
        return {name: tf.cast(t, tf.int32) for name, t in example.items()}

    def input_fn(params, input_context=None):
        d = tf.data.Dataset.from_tensor_slices(tf.constant(files))
        d = d.repeat()
        if is_training:
            d = d.shuffle(buffer_size=len(files), seed=seed)
        d = d.interleave(tf.data.TFRecordDataset,
                         cycle_length=min(num_cpu_threads, len(files)),
                         num_parallel_calls=tf.data.experimental.AUTOTUNE)
        if is_training:
            d = d.shuffle(buffer_size=shuffle_buffer_size, seed=seed)
        d = distribute.shard_for_input_context(d, input_context)
        # One element per replica: MirroredStrategy hands consecutive elements to the
        # replicas, so a global batch is the same examples as on one device.
        d = d.batch(distribute.replica_batch_size(params.get("batch_size", batch_size),
                                                  input_context), drop_remainder=True)
        # Parsing whole batches (one vectorised parse_example each) takes about a quarter
        # of the CPU of a parse per record: CPU the training step can use instead.
        d = d.map(decode, num_parallel_calls=tf.data.experimental.AUTOTUNE)
        return d.prefetch(tf.data.experimental.AUTOTUNE)

    return input_fn
