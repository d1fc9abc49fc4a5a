"""Exports a fine-tuned model as a TF SavedModel with a serving signature (the library
behind export_savedmodel.py, the command line).

The model of a fine-tuned trial dir, D/models/M/finetuning_models/<task>_model_<i>/, is
exported from one of its checkpoints. EXPORT_DIR gets saved_model.pb and variables/ (tag
"serve", signature "serving_default"), plus model_info.json (task, label list,
featurisation settings, model shape, the signature) and the vocab, so that predict.py (or
any TF runtime) can use it alone. The export is built in a temporary dir beside EXPORT_DIR
and renamed into place when complete, so an interrupted export never leaves a half-written
EXPORT_DIR. EXPORT_DIR may be gs:// or ram://: there a directory cannot be renamed (gs://
renames object by object, ram:// not at all), so the finished files are moved in one by
one, saved_model.pb last: a dir without saved_model.pb is not an export, and predict and
--overwrite treat it as such.

Signature inputs (int32, [batch, seq], seq <= max_position_embeddings, featurised like
fine-tuning: see finetune/predict.py): input_ids, input_mask, segment_ids. Outputs per task
type: OUTPUTS below and the README's signature table.
"""

import os
import shutil
import tempfile
import uuid

from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import tensorflow.compat.v1 as tf  # noqa: E402

from finetune import model_info  # noqa: E402
from finetune.model_fn import model_fn_builder  # noqa: E402
from util import checkpoints  # noqa: E402
from util import fs  # noqa: E402
from util import modes  # noqa: E402
from util.errors import InputError  # noqa: E402

SIGNATURE_KEY = "serving_default"
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")

# Signature outputs per task type: name -> (dtype, shape). C = number of labels.
OUTPUTS = {
    "classification": {
        "logits": ("float32", "[batch, C]"),
        "probabilities": ("float32", "[batch, C]"),  # softmax of logits
        "label_ids": ("int32", "[batch]"),  # argmax, an index into label_list
        "labels": ("string", "[batch]"),  # label_list[label_ids]
    },
    "tagging": {
        "logits": ("float32", "[batch, seq, C]"),
        "tag_ids": ("int32", "[batch, seq]"),  # read them at each character's first token
        "tags": ("string", "[batch, seq]"),
    },
    "qa": {  # joint_prediction false; -1000 outside the context and [CLS] (the answer mask)
        "start_logits": ("float32", "[batch, seq]"),
        "end_logits": ("float32", "[batch, seq]"),
    },
    "qa_joint": {  # the official joint head's beam (finetune/qa_head.py); K = beam_size
        "start_top_index": ("int32", "[batch, K]"),  # best starts, best first
        "start_top_log_probs": ("float32", "[batch, K]"),
        "end_top_index": ("int32", "[batch, K, K]"),  # row k: best ends for start k
        "end_top_log_probs": ("float32", "[batch, K, K]"),
        "answerable_logit": ("float32", "[batch]"),  # "is impossible" logit (0 without)
    },
}


def output_kind(model):
    """The OUTPUTS key of model's signature."""
    if model.task.task_type == "qa" and model.config.joint_prediction:
        return "qa_joint"
    return model.task.task_type


def serving_outputs(model, inputs):
    """The output tensors of OUTPUTS[output_kind(model)] for inputs {name: int32 [B, L]}.

    The graph is the fine-tuning model_fn (finetune/model_fn.py) in PREDICT mode, the one that produced the
    fine-tuning evaluation. Its heads also compute a loss from the label features, which
    serving does not have: they get zeros, and the loss is never fetched.
    """
    task = model.task
    ids = inputs["input_ids"]
    features = dict(inputs)
    for spec in task.feature_specs():
        if spec.name not in features:
            features[spec.name] = (tf.zeros_like(ids) if spec.shape
                                   else tf.zeros(tf.shape(ids)[:1], tf.int32))
    model_fn = model_fn_builder(model.config, [task], model.bert_config,
                                init_checkpoint=None, num_train_steps=1)
    predictions = model_fn(features, None, modes.PREDICT, {}).predictions
    if task.task_type == "qa":
        return {name: predictions[name] for name in OUTPUTS[output_kind(model)]}
    logits = predictions["logits"]  # [B, C] or [B, L, C]
    label_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    labels = tf.gather(tf.constant(task.label_list), label_ids)
    if task.task_type == "classification":
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
                "label_ids": label_ids, "labels": labels}
    return {"logits": logits, "tag_ids": label_ids, "tags": labels}


def build_graph(model):
    """(input placeholders, output tensors) in the current graph."""
    inputs = {name: tf.placeholder(tf.int32, [None, None], name=name)
              for name in INPUT_NAMES}
    return inputs, serving_outputs(model, inputs)


def find_checkpoint(model_dir, checkpoint=None):
    """checkpoint if given (it must exist), else util.checkpoints' rule in model_dir."""
    return checkpoints.find_checkpoint(model_dir, checkpoint, missing=(
        "no fine-tuned checkpoint in {dir}; train it with run_finetuning.py or pass "
        "--checkpoint"))


def restore(sess, checkpoint, model):
    """Loads every graph variable from checkpoint; InputError naming the first one that
    is missing or has another shape (a checkpoint of another task, size or model)."""
    shapes = dict(tf.train.list_variables(fs.tf_checkpoint_path(checkpoint)))
    for var in tf.global_variables():
        name = var.op.name
        if name not in shapes or list(shapes[name]) != var.shape.as_list():
            found = ("has shape %s" % list(shapes[name]) if name in shapes else "is missing")
            raise InputError("checkpoint %s does not fit the %s model described in %s: "
                             "variable %s %s (expected %s)"
                             % (checkpoint, model.task.name, model_info.INFO_FILE, name,
                                found, var.shape.as_list()))
    tf.train.Saver(tf.global_variables()).restore(sess, checkpoint)


def signature_info(outputs):
    """The signature as documented in model_info.json."""
    return {"key": SIGNATURE_KEY, "tags": [tf.saved_model.tag_constants.SERVING],
            "inputs": {name: ["int32", "[batch, seq]"] for name in INPUT_NAMES},
            "outputs": {name: list(spec) for name, spec in outputs.items()}}


def _check_out_dir(out_dir, overwrite):
    """Refuses to replace an existing dir unless overwrite, and never one that is not an
    export (so a mistyped --out cannot delete a checkpoint dir)."""
    if not fs.exists(out_dir):
        return
    if not overwrite:
        raise InputError("%s already exists; pass --overwrite to replace it" % out_dir)
    if not fs.isdir(out_dir) or (
            fs.listdir(out_dir) and not fs.exists(fs.join(out_dir, "saved_model.pb"))):
        raise InputError("%s exists and is not a SavedModel export; refusing to replace it"
                         % out_dir)


def export(model, checkpoint, out_dir, overwrite=False):
    """Writes the SavedModel of model (model_info.load of a trial dir), restored from
    checkpoint (find_checkpoint), to out_dir; returns the model_info dict written beside
    it."""
    out_dir = fs.abspath(out_dir)
    _check_out_dir(out_dir, overwrite)
    tmp_dir = _temporary_dir_beside(out_dir)
    try:
        with tf.Graph().as_default():
            inputs, outputs = build_graph(model)
            with tf.Session() as sess:
                restore(sess, checkpoint, model)
                builder = tf.saved_model.builder.SavedModelBuilder(tmp_dir)
                signature = tf.saved_model.signature_def_utils.predict_signature_def(
                    inputs, outputs)
                builder.add_meta_graph_and_variables(
                    sess, [tf.saved_model.tag_constants.SERVING],
                    signature_def_map={SIGNATURE_KEY: signature}, strip_default_attrs=True)
                builder.save()
        info = dict(model.info, signature=signature_info(OUTPUTS[output_kind(model)]),
                    checkpoint=fs.basename(checkpoint))
        model_info.write(tmp_dir, info, model.vocab_path)
        if fs.is_local(out_dir):
            _move_into_place(tmp_dir, out_dir)
        else:
            _move_files_into_place(tmp_dir, out_dir)
    except BaseException:
        fs.rmtree(tmp_dir)
        raise
    return info


def _temporary_dir_beside(out_dir):
    """A new, empty dir in out_dir's parent (unique: mkdtemp locally, a uuid elsewhere)."""
    parent = fs.dirname(out_dir)
    fs.makedirs(parent)
    prefix = "." + fs.basename(out_dir) + "."
    if fs.is_local(out_dir):
        return tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent)
    tmp_dir = fs.join(parent, prefix + uuid.uuid4().hex + ".tmp")
    fs.makedirs(tmp_dir)
    return tmp_dir


def _move_files_into_place(tmp_dir, out_dir):
    """Non-local file systems: the old export's saved_model.pb goes first (so it stops
    being an export), then its files; the new files move in one by one, saved_model.pb
    last, and the emptied tmp_dir is deleted."""
    if fs.exists(out_dir):
        fs.remove(fs.join(out_dir, "saved_model.pb"), missing_ok=True)
        fs.rmtree(out_dir)
    files = fs.walk_files(tmp_dir)
    files.sort(key=lambda path: fs.basename(path) == "saved_model.pb")
    for path in files:
        target = fs.join(out_dir, path[len(tmp_dir.rstrip("/")) + 1:])
        fs.makedirs(fs.dirname(target))
        fs.rename(path, target, overwrite=True)
    fs.rmtree(tmp_dir)


def _move_into_place(tmp_dir, out_dir):
    """Local disks (a directory rename is atomic there): renames the finished export to
    out_dir; an old export there is moved aside first and deleted only once the new one is
    in place."""
    old = None
    if os.path.exists(out_dir):
        old = tempfile.mkdtemp(prefix="." + os.path.basename(out_dir) + ".", suffix=".old",
                               dir=os.path.dirname(out_dir))
        os.rmdir(old)
        os.rename(out_dir, old)
    os.rename(tmp_dir, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":  # the command this module once was: say which one it is now
    import sys
    print("error: finetune/export.py is a library module, not a command: use "
          "`python export_savedmodel.py MODEL_DIR --out EXPORT_DIR`", file=sys.stderr)
    sys.exit(2)
