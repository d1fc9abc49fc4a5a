"""Batch inference with a fine-tuned model: the library behind predict.py (the command
line, whose help describes the JSON lines in and out).

A model is an export of export_savedmodel.py (a SavedModel dir) or a fine-tuned trial dir
(one of its checkpoints, run in the graph the export would have). Inputs are featurised and
outputs decoded by the fine-tuning code (finetune/classification.py, tagging.py, qa.py), so
a prediction equals what evaluation would make of the same text.
"""

from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

from finetune import export  # noqa: E402
from finetune.classification import read_json_lines  # noqa: E402
from finetune.qa_decoding import nbest_answers, output_candidates  # noqa: E402
from finetune.tagging import TaggingScorer, extract_entities  # noqa: E402
from finetune.task import Example  # noqa: E402
from util import fs  # noqa: E402
from util.errors import InputError  # noqa: E402

STDIN_NAME = "<stdin>"
CHUNK_SIZE = 256  # input lines featurised, run and written at a time


# ---------------------------------------------------------------------------
# Running the model
# ---------------------------------------------------------------------------

class _Runner(object):
    """Calls the model on a batch {input name: int32 [B, L]} -> {output: array}."""

    def __init__(self, graph, sess, inputs, outputs):
        self._graph, self._sess = graph, sess
        self._inputs, self._outputs = inputs, outputs

    def __call__(self, batch):
        feed = {self._inputs[name]: batch[name] for name in export.INPUT_NAMES}
        return self._sess.run(self._outputs, feed)


def saved_model_runner(export_dir):
    """A runner over the serving signature of a SavedModel."""
    graph = tf.Graph()
    sess = tf.Session(graph=graph)
    with graph.as_default():
        meta = tf.saved_model.loader.load(sess, [tf.saved_model.tag_constants.SERVING],
                                          export_dir)
    if export.SIGNATURE_KEY not in meta.signature_def:
        raise InputError("%s has no %r signature (found %s); export it with "
                         "export_savedmodel.py" % (export_dir, export.SIGNATURE_KEY,
                                                   ", ".join(meta.signature_def)))
    signature = meta.signature_def[export.SIGNATURE_KEY]
    inputs = {k: graph.get_tensor_by_name(v.name) for k, v in signature.inputs.items()}
    outputs = {k: graph.get_tensor_by_name(v.name) for k, v in signature.outputs.items()}
    return _Runner(graph, sess, inputs, outputs)


def checkpoint_runner(model, checkpoint):
    """A runner over the same graph as the export, restored from a trial checkpoint."""
    graph = tf.Graph()
    with graph.as_default():
        inputs, outputs = export.build_graph(model)
        sess = tf.Session(graph=graph)
        export.restore(sess, checkpoint, model)
    return _Runner(graph, sess, inputs, outputs)


def open_runner(model_dir, model):
    """The runner of an export (its SavedModel) or of a trial dir (its newest checkpoint);
    model is model_info.load(model_dir)."""
    if fs.exists(fs.join(model_dir, "saved_model.pb")):
        return saved_model_runner(model_dir)
    return checkpoint_runner(model, export.find_checkpoint(model_dir))


def run_features(runner, features, batch_size):
    """The model's outputs for each feature, as a list of {output: array} dicts."""
    results = []
    for begin in range(0, len(features), batch_size):
        chunk = features[begin:begin + batch_size]
        batch = {name: np.asarray([f[name] for f in chunk], dtype=np.int32)
                 for name in export.INPUT_NAMES}
        outputs = runner(batch)
        results += [{name: value[i] for name, value in outputs.items()}
                    for i in range(len(chunk))]
    return results


# ---------------------------------------------------------------------------
# Input lines -> Examples
# ---------------------------------------------------------------------------

def input_fields(task):
    """The string fields an input line of task must have."""
    if task.task_type == "qa":
        return ("context", "question")
    if task.task_type == "classification" and task.sentence_pair:
        return ("text_a", "text_b")
    return ("text",)


def _expected(task):
    return "{%s}" % ", ".join('"%s": "..."' % name for name in input_fields(task))


def check_record(task, path, lineno, record):
    """The record's input texts, {field: str}; InputError naming the line if a field is
    missing or not a string."""
    texts = {}
    for name in input_fields(task):
        # Single texts may also come as text_a, the name in the task files.
        value = record.get(name, record.get("text_a") if name == "text" else None)
        if value is None:
            problem = "missing field %r" % name
        elif not isinstance(value, str):
            problem = "field %r should be a string, got %s" % (name, type(value).__name__)
        elif task.task_type == "qa" and name == "context" and not value.strip():
            problem = "empty context"
        else:
            texts[name] = value
            continue
        raise InputError("%s:%d: %s; expected a JSON object like %s for %s"
                         % (path, lineno, problem, _expected(task), task.name))
    return texts


def read_inputs(task, reader, path=STDIN_NAME):
    """[(line number, record, texts)] of every non-blank line of the binary stream."""
    return [(lineno, record, check_record(task, path, lineno, record))
            for lineno, record in read_json_lines(path, reader)]


def make_example(task, eid, texts):
    """The Example the task featurises for one input (no labels)."""
    if task.task_type == "qa":
        return Example(eid, task.name, qid=str(eid), question=texts["question"],
                       context=texts["context"], answers=[], answer_span=None)
    if task.task_type == "tagging":
        chars = list(texts["text"])
        # Features need a label per character; any label will do, it is never read.
        return Example(eid, task.name, chars=chars, labels=[task.label_list[0]] * len(chars))
    return Example(eid, task.name, text_a=texts.get("text", texts.get("text_a")),
                   text_b=texts.get("text_b"), label=None, gold_labels=[])


# ---------------------------------------------------------------------------
# Outputs -> predictions, with the fine-tuning scorers' decoding
# ---------------------------------------------------------------------------

def decode(model, examples, features, outputs):
    """{eid: prediction dict} for examples from their features' outputs."""
    task = model.task
    if task.task_type == "classification":
        predictions = {}
        for feature, output in zip(features, outputs):
            probs = output["probabilities"]
            predictions[feature["eid"]] = {
                "label": task.label_list[int(np.argmax(probs))],
                "probabilities": {label: float(p) for label, p in zip(task.label_list, probs)}}
        return predictions
    if task.task_type == "tagging":
        scorer = TaggingScorer(task.label_list)  # stitches the windows of long sentences
        for feature, output in zip(features, outputs):
            scorer.update(feature, {"logits": output["logits"], "loss": 0.0})
        tags = scorer.get_predictions()
        predictions = {}
        for example in examples:
            text = "".join(example.chars)
            predictions[example.eid] = {"entities": [
                {"type": kind, "start": start, "end": end, "text": text[start:end]}
                for start, end, kind in extract_entities(tags.get(example.eid, []))]}
        return predictions
    candidates = {example.eid: [] for example in examples}
    config = model.config
    for feature, output in zip(features, outputs):
        candidates[feature["eid"]] += output_candidates(feature, output, config)
    predictions = {}
    for example in examples:
        best = nbest_answers(example.context, candidates[example.eid], config.n_best_size)[0]
        predictions[example.eid] = {"answer": best["text"], "start": best["start"],
                                    "end": best["end"], "probability": best["probability"]}
    return predictions


def predict(model, runner, inputs, batch_size, progress=None):
    """Yields one output dict per (line number, record, texts) of inputs, in order."""
    task = model.task
    for begin in range(0, len(inputs), CHUNK_SIZE):
        chunk = inputs[begin:begin + CHUNK_SIZE]
        examples = [make_example(task, begin + i, texts)
                    for i, (_, _, texts) in enumerate(chunk)]
        features = [f for ex in examples for f in task.featurize(ex, is_training=False)]
        predictions = decode(model, examples, features,
                             run_features(runner, features, batch_size))
        for example, (lineno, record, _) in zip(examples, chunk):
            output = dict(record, id=record.get("id", lineno))
            output.update(predictions[example.eid])
            yield output
        if progress:
            progress.update(len(chunk))


if __name__ == "__main__":  # the command this module once was: say which one it is now
    import sys
    print("error: finetune/predict.py is a library module, not a command: use "
          "`python predict.py MODEL_DIR < in.jsonl > out.jsonl`", file=sys.stderr)
    sys.exit(2)
