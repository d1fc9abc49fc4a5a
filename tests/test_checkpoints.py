"""util.checkpoints: find_checkpoint, the one rule every tool uses to pick a checkpoint, and
check_variable_shapes, the one comparison of a checkpoint with the shapes a model needs."""

import pytest

from util.checkpoints import check_variable_shapes, find_checkpoint
from util.errors import InputError


def make(directory, *prefixes, state=None):
    directory.mkdir(parents=True, exist_ok=True)
    for prefix in prefixes:  # an .index is what marks a checkpoint prefix
        (directory / (prefix + ".index")).write_bytes(b"")
        (directory / (prefix + ".data-00000-of-00001")).write_bytes(b"")
    if state:
        (directory / "checkpoint").write_text('model_checkpoint_path: "%s"\n' % state)
    return directory


def test_the_rule_in_order(tmp_path):
    # 2. the state file's checkpoint wins, even over a higher step
    d = make(tmp_path / "state", "model.ckpt-5", "model.ckpt-9", state="model.ckpt-5")
    assert find_checkpoint(str(d)) == str(d / "model.ckpt-5")
    # 1. an explicit prefix or directory
    assert find_checkpoint(str(d), str(d / "model.ckpt-9")) == str(d / "model.ckpt-9")
    assert find_checkpoint("elsewhere", str(d)) == str(d / "model.ckpt-5")
    with pytest.raises(InputError, match="model.ckpt-7 not found"):
        find_checkpoint(str(d), str(d / "model.ckpt-7"))
    # 3. no state file: the only one, or the highest step
    single = make(tmp_path / "released", "electra_model")
    assert find_checkpoint(str(single)) == str(single / "electra_model")
    steps = make(tmp_path / "copied", "model.ckpt-20", "model.ckpt-100", "model.ckpt-3")
    assert find_checkpoint(str(steps)) == str(steps / "model.ckpt-100")
    # 4. several without steps: the user picks
    several = make(tmp_path / "two", "electra_model", "bert_model")
    with pytest.raises(InputError, match=r"holds several checkpoints \(bert_model, "
                                         r"electra_model\): pick one"):
        find_checkpoint(str(several))
    # none: the caller's message
    empty = make(tmp_path / "empty")
    with pytest.raises(InputError, match="^nothing in %s here$" % empty):
        find_checkpoint(str(empty), missing="nothing in {dir} here")
    with pytest.raises(InputError, match="^no checkpoint in %s" % (tmp_path / "absent")):
        find_checkpoint(str(tmp_path / "absent"))


# ----------------------------------------------------------------------------- shapes

def write_checkpoint(path, shapes):
    """A checkpoint at prefix path holding zeros of {name: shape}."""
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default():
        variables = [tf.Variable(tf.zeros(shape), name=name) for name, shape in shapes.items()]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            tf.train.Saver(variables).save(session, str(path))
    return str(path)


def encoder(vocab=100, hidden=8, layers=2, scope="electra"):
    shapes = {scope + "/embeddings/word_embeddings": [vocab, hidden],
              scope + "/embeddings/LayerNorm/beta": [hidden]}
    for i in range(layers):
        shapes["%s/encoder/layer_%d/output/dense/kernel" % (scope, i)] = [hidden, hidden]
    return shapes


class Shape:  # what check_variable_shapes reads of a model.modeling.BertConfig
    def __init__(self, hidden=8, layers=2, vocab=120):
        self.hidden_size, self.num_hidden_layers, self.vocab_size = hidden, layers, vocab
        self.embedding_size = self.intermediate_size = None


def test_variable_shapes_match_or_the_message_names_variable_shapes_and_cause(tmp_path):
    ckpt = write_checkpoint(tmp_path / "model.ckpt-3", encoder(vocab=100))
    # The same shapes: no error, whatever the requirement.
    for require in ("all", "some", "present"):
        check_variable_shapes(ckpt, encoder(vocab=100), "REMEDY", require=require)
    # Another vocab: the table, its shape, both row counts and the vocab remedy.
    with pytest.raises(InputError) as error:
        check_variable_shapes(ckpt, encoder(vocab=120), "REMEDY", model_config=Shape())
    assert str(error.value) == (
        "checkpoint %s has a 100-token embedding table (electra/embeddings/word_embeddings "
        "[100, 8]) but vocab_size is 120: use the vocab it was trained with" % ckpt)
    # Only the rows checked ([rows, None]), under another label.
    with pytest.raises(InputError, match="^init_checkpoint .* vocab_size is 120: V$"):
        check_variable_shapes(ckpt, {"electra/embeddings/word_embeddings": [120, None]}, "R",
                              require="present", what="init_checkpoint", vocab_remedy="V")
    check_variable_shapes(ckpt, {"electra/embeddings/word_embeddings": [100, None]}, "R")
    # Another hidden size: the first variable by name, found and needed shapes, how many
    # more differ, which size (and the layer count) differs, then the remedy.
    with pytest.raises(InputError) as error:
        check_variable_shapes(ckpt, encoder(vocab=100, hidden=16, layers=3), "REMEDY",
                              model_config=Shape(hidden=16, layers=3))
    assert str(error.value) == (
        "checkpoint %s has electra/embeddings/LayerNorm/beta with shape [8] but the 3-layer "
        "16-hidden model needs [16] (and 3 more variables of other shapes): hidden_size 8 "
        "in the checkpoint, 16 in the model, num_hidden_layers 2 in the checkpoint "
        "(electra/encoder/layer_*), 3 in the model; REMEDY" % ckpt)


def test_missing_variables_by_requirement(tmp_path):
    ckpt = write_checkpoint(tmp_path / "model.ckpt-3", encoder(vocab=100))
    deeper = encoder(vocab=100, layers=4)
    # A resume needs every variable: the count, examples, the layers and the remedy.
    with pytest.raises(InputError) as error:
        check_variable_shapes(ckpt, dict(deeper, global_step=[]), "R", require="all",
                              missing_remedy="start from {checkpoint}")
    assert str(error.value) == (
        "checkpoint %s lacks 3 of the 7 variables the model needs (e.g. electra/encoder/"
        "layer_2/output/dense/kernel, electra/encoder/layer_3/output/dense/kernel, "
        "global_step); num_hidden_layers 2 in the checkpoint (electra/encoder/layer_*), 4 "
        "in the model: start from %s" % (ckpt, ckpt))
    # A warm start takes what is there; "present" never asks for more.
    check_variable_shapes(ckpt, deeper, "R", require="some")
    check_variable_shapes(ckpt, encoder(scope="bert"), "R", require="present")
    # ... but none at all is an error, naming the scope the checkpoint uses.
    with pytest.raises(InputError) as error:
        check_variable_shapes(ckpt, encoder(vocab=100, scope="bert"), "R",
                              scope_remedy='set "model_type": "{scope}"')
    assert str(error.value) == (
        'checkpoint %s holds none of the 4 variables the model needs (e.g. bert/embeddings/'
        'LayerNorm/beta) but has electra/ ones: set "model_type": "electra"' % ckpt)
    with pytest.raises(InputError, match="; its variables are under electra/$"):
        check_variable_shapes(ckpt, {"other/kernel": [8]}, "R")
