"""Featurised task data <-> tfrecords, and the input_fn over them.

Featurising a large training set (tokenising, windowing) takes minutes, so the tfrecords
are kept in <model dir>/finetuning_tfrecords/ and reused while the settings and the source
file they came from are unchanged (`use_tfrecords_if_existing`).

The training set is built as the official code builds it: the features of every task in
task_names in one file (one multi-task model), shuffled once, padded with features of
task id len(task_names) (they add nothing to the loss) to whole batches, and read
repeated through a shuffle buffer of 100. Each record carries its `task_id`; with several
tasks, the task-specific keys are prefixed with the task name (`<task>_label_ids`), as the
tasks' labels differ in shape. Dev and test sets stay one file per task.
"""

import hashlib
import json
import random

import tensorflow.compat.v1 as tf

from finetune.task import FeatureSpec
from util import distribute
from util import fs
from util.io import atomic_write, atomic_write_json
from util.progress import Progress


def _int_feature(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def write_tfrecord(path, features, specs):
    """Writes the spec'd keys of each feature dict; the file appears only when complete.
    The temporary file is unique, so hosts of a cluster sharing the directory can all
    write it at once."""
    def write(tmp):
        progress = Progress(len(features), "writing %s" % fs.basename(path), "records",
                            interval=10.0, quiet_if_short=True)
        with tf.io.TFRecordWriter(tmp) as writer:
            for feature in features:
                example = tf.train.Example(features=tf.train.Features(feature={
                    spec.name: _int_feature(feature[spec.name]) for spec in specs}))
                writer.write(example.SerializeToString())
                progress.update()
        progress.finish()
    atomic_write(path, write)


def cache_key(task, split, config, with_vocab_path=False):
    """Identifies what a cached tfrecord was made from: the settings that shape features,
    the task's featurisation version and the content (name, size, SHA-256) of every file
    in the task's data directory and of the vocab -- content only, so a data dir moved or
    spelt another way keeps its caches and trials. with_vocab_path: the key as it was
    before, when it held the vocab's absolute path too (trial records written then are
    compared with it: run_finetuning.py)."""
    files = [[name] + _file_state(fs.join(task.data_dir(), name))
             for name in sorted(fs.listdir(task.data_dir()))
             if not fs.isdir(fs.join(task.data_dir(), name))]
    settings = {
        "task": task.name, "split": split, "files": files,
        "vocab_file": _file_state(config.spm_model_file or config.vocab_file),
        "lower": config.do_lower_case, "strip_accents": config.strip_accents,
        "max_seq_length": config.max_seq_length,
        "max_query_length": config.max_query_length, "doc_stride": config.doc_stride,
        "double_unordered": config.double_unordered,
        "strict_input": config.strict_input,  # a strict run reads the data again
    }
    # The featurisation code itself: a task type whose features changed since caches were
    # first written has a featurization_version; the others have none and keep their keys.
    version = getattr(task, "featurization_version", None)
    if version is not None:
        settings["featurization_version"] = version
    # Settings of a task's own (an rtd-prompt's template and words); none: the key as before.
    own = getattr(task, "featurization_settings", None)
    if own is not None:
        settings["task_settings"] = own()
    if with_vocab_path:
        settings["vocab"] = fs.abspath(config.spm_model_file or config.vocab_file)
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _file_state(path):
    """[size, SHA-256] of a file: a cache (and a trial) made from other content of the same
    path is stale, whatever its modification time says."""
    return [fs.getsize(path), fs.digest(path)]


def featurized_tfrecord(task, split, config, make_features):
    """Returns (tfrecord path, number of features) for a split, calling make_features()
    and writing the file unless a cached one made from the same inputs exists."""
    base = fs.join(config.preprocessed_data_dir, "%s_%s" % (task.name, split))
    path, meta_path = base + ".tfrecord", base + ".meta.json"
    key = cache_key(task, split, config)
    if config.use_tfrecords_if_existing and fs.exists(path) and fs.exists(meta_path):
        meta = json.loads(fs.read_text(meta_path))
        if meta.get("key") == key:
            return path, meta["num_features"]
    features = make_features()
    write_tfrecord(path, features, task.feature_specs())
    atomic_write_json(meta_path, {"key": key, "num_features": len(features)})
    return path, len(features)


TASK_ID = "task_id"  # training records: the task whose head scores it; len(tasks) = padding
SHARED_FEATURES = ("input_ids", "input_mask", "segment_ids")  # the encoder's inputs
TRAIN_SHUFFLE_BUFFER = 100  # the official input_fn's buffer (after the one full shuffle)


def task_feature_name(tasks, task, name):
    """A task's key in the training records: prefixed with the task's name when several
    tasks share them."""
    if len(tasks) == 1 or name in SHARED_FEATURES:
        return name
    return "%s_%s" % (task.name, name)


def training_specs(tasks):
    """The FeatureSpecs of the training records of tasks."""
    specs = {TASK_ID: FeatureSpec(TASK_ID, [])}
    for task in tasks:
        for spec in task.feature_specs():
            name = task_feature_name(tasks, task, spec.name)
            specs[name] = FeatureSpec(name, spec.shape)
    return list(specs.values())


def training_set_key(tasks, config, with_vocab_path=False):
    """The key of the training set of tasks: its tasks' cache keys, the shuffle's seed and
    the batch it is padded to."""
    keys = [cache_key(task, "train", config, with_vocab_path) for task in tasks]
    parts = [keys, config.seed, config.train_batch_size]
    if config.train_examples_per_label:  # (only then: the keys of before stay as they were)
        parts.append({"train_examples_per_label": config.train_examples_per_label})
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()


def training_examples(task, config):
    """The examples a run trains task on: its training split, checked, or with
    train_examples_per_label k the k of each label that the seed draws from it."""
    examples = task.get_examples("train")
    task.check_split("train", examples, need_labels=True)
    k = config.train_examples_per_label
    if not k:
        return examples
    chosen = task.sample_per_label(examples, k, config.seed)
    print("%s train: %d examples per label drawn with seed %d (%d of %d)"
          % (task.name, k, config.seed, len(chosen), len(examples)), flush=True)
    return chosen


def training_tfrecord(tasks, config, log_features=None):
    """(path, number of records with the padding, key) of the training set of tasks,
    written unless a cached one made from the same inputs exists; key identifies those
    inputs (the data files' states and the settings). log_features(task, features):
    called with each task's first features (to show them)."""
    key = training_set_key(tasks, config)
    base = fs.join(config.preprocessed_data_dir, "%s_train" % "_".join(t.name for t in tasks))
    path, meta_path = base + ".tfrecord", base + ".meta.json"
    if config.use_tfrecords_if_existing and fs.exists(path) and fs.exists(meta_path):
        meta = json.loads(fs.read_text(meta_path))
        if meta.get("key") == key:
            return path, meta["num_records"], key
    specs = training_specs(tasks)
    blank = {spec.name: [0] * spec.shape[0] if spec.shape else 0 for spec in specs}
    # The examples (not their features: a QA question's windows stay together) shuffled
    # once, as the official code does, then featurised in that order.
    examples = []
    for task_id, task in enumerate(tasks):
        examples += [(task_id, example) for example in training_examples(task, config)]
    random.Random(config.seed).shuffle(examples)
    records, shown = [], {task.name: [] for task in tasks}
    progress = Progress(len(examples), "featurising %s train" % "+".join(
        t.name for t in tasks), "examples", interval=10.0, quiet_if_short=True)
    for task_id, example in examples:
        progress.update()
        task = tasks[task_id]
        for feature in task.featurize(example, True):
            if len(shown[task.name]) < 3:
                shown[task.name].append(feature)
            record = dict(blank, **{task_feature_name(tasks, task, spec.name): feature[spec.name]
                                    for spec in task.feature_specs()})
            record[TASK_ID] = task_id
            records.append(record)
    progress.finish()
    if log_features:
        for task in tasks:
            log_features(task, shown[task.name])
    padding = num_padding(len(records), config.train_batch_size)
    records += [dict(blank, **{TASK_ID: len(tasks)})] * padding
    write_tfrecord(path, records, specs)
    atomic_write_json(meta_path, {"key": key, "num_records": len(records),
                                  "num_padding": padding})
    return path, len(records), key


REAL_EXAMPLE = "is_real_example"  # 1 for a real feature, 0 for padding (TPU eval batches)


def num_padding(num_features, batch_size):
    """Padding features that fill the last of batch_size-batches (TPUs need whole ones)."""
    return -num_features % batch_size


def get_input_fn(path, specs, is_training, batch_size, seed=None, padding=None,
                 skip_steps=0, runs_per_step=1):
    """input_fn over one task tfrecord: shuffled and repeated for training, in order else.

    Under a tf.distribute strategy (distribution hparam) the training loop passes an
    input_context: batch_size is then the global batch, each replica gets its share, and
    each host keeps every n-th example of the stream (seed: hosts must shuffle alike).
    TPUEstimator passes the batch in params["batch_size"] (each core's share on a TPU).

    padding (evaluation in the TPU graph): this many all-zero features follow the real
    ones, every feature gets REAL_EXAMPLE (1 real, 0 padding) and only whole batches are
    made: static shapes. Training batches are always whole (drop_remainder).

    skip_steps (a resumed trial: its checkpoint's global step): the batches those steps
    trained on are skipped, so that the run goes on where the interrupted one stopped in
    the same shuffled stream (the seed fixes it) and trains on what an uninterrupted run
    would. runs_per_step: batches a step takes from each input pipeline
    (gradient_accumulation_steps); each replica of a pipeline takes its own batch.
    """
    name_to_features = {spec.name: tf.io.FixedLenFeature(spec.shape, tf.int64)
                        for spec in specs}

    def decode(record):
        example = tf.io.parse_single_example(record, name_to_features)
        return {name: tf.cast(t, tf.int32) for name, t in example.items()}

    def input_fn(params, input_context=None):
        d = tf.data.TFRecordDataset(path)
        if is_training:
            d = d.repeat().shuffle(buffer_size=TRAIN_SHUFFLE_BUFFER, seed=seed)
        d = distribute.shard_for_input_context(d, input_context)
        d = d.map(decode, num_parallel_calls=tf.data.experimental.AUTOTUNE)
        if padding is not None:
            d = with_padding(d, specs, padding)
        # One batch per replica: MirroredStrategy hands consecutive batches to the
        # replicas, so a global batch holds the same examples as on one device.
        d = d.batch(distribute.replica_batch_size(params.get("batch_size", batch_size),
                                                  input_context),
                    drop_remainder=is_training or padding is not None)
        if skip_steps:  # (only then: an uninterrupted run's graph stays the official one)
            d = d.skip(skip_steps * runs_per_step
                       * distribute.batches_per_replica_step(input_context))
        return d.prefetch(tf.data.experimental.AUTOTUNE)

    return input_fn


def with_padding(dataset, specs, count):
    """dataset's features marked real, then `count` all-zero features marked padding."""
    real = dataset.map(lambda f: dict(f, **{REAL_EXAMPLE: tf.constant(1, tf.int32)}))
    fake = {spec.name: tf.zeros(spec.shape, tf.int32) for spec in specs}
    fake[REAL_EXAMPLE] = tf.constant(0, tf.int32)
    return real.concatenate(tf.data.Dataset.from_tensors(fake).repeat(count))
