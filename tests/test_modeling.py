"""Model configs, the transformer, and graph variable names/shapes against the official ones."""

import json

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import configure_pretraining
from model import modeling
from pretrain import objective
from tests.conftest import REPO, shared_file
from util.errors import InputError

SPECIAL_IDS = {"[MASK]": 103, "[CLS]": 101, "[SEP]": 102}
REFERENCE_NAMES = {"small": "small", "small_ex": "small-ex", "base": "base", "large": "large"}


def read_variable_list(path):
    variables = {}
    for line in path.read_text().splitlines():
        name, shape = line.split(" ", 1)
        variables[name] = json.loads(shape)
    return variables


def pretraining_graph_variables(**hparams):
    config = configure_pretraining.PretrainingConfig("m", "/nonexistent", **hparams)
    with tf.Graph().as_default():
        features = {k: tf.zeros([2, config.max_seq_length], tf.int32)
                    for k in ("input_ids", "input_mask", "segment_ids")}
        objective.PretrainingModel(config, features, True, SPECIAL_IDS)
        return {v.op.name: v.shape.as_list() for v in tf.global_variables()}


@pytest.mark.parametrize("size", ["small", "small_ex", "base", "large"])
def test_graph_variables_match_official_checkpoint(size):
    reference = read_variable_list(shared_file(
        "reference", "checkpoint-variables",
        "electra-%s-pretraining.txt" % REFERENCE_NAMES[size]))
    ours = pretraining_graph_variables(model_size=size, vocab_size=21128)
    assert sorted(set(reference) - set(ours)) == []
    assert sorted(set(ours) - set(reference)) == []
    assert {k: ours[k] for k in reference} == reference


@pytest.mark.parametrize("size", ["tiny", "small", "small_ex", "base", "large"])
def test_generator_config_derived_from_discriminator_matches_json(size):
    config = configure_pretraining.PretrainingConfig("m", "/x", model_size=size)
    disc = objective.get_discriminator_config(config)
    gen = objective.get_generator_config(config, disc)
    expected = modeling.BertConfig.for_model_size(size, "generator")
    assert gen.to_dict() == expected.to_dict()


@pytest.mark.parametrize("size", ["small", "small_ex", "base", "large"])
def test_size_configs_have_official_shapes(size):
    official = json.loads(shared_file("reference", "official-configs",
                                      "%s_discriminator_config.json" % size).read_text())
    ours = json.loads((REPO / "config" / ("%s_discriminator_config.json" % size)).read_text())
    for key in ("hidden_size", "embedding_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "vocab_size", "max_position_embeddings", "layer_norm_eps"):
        assert ours[key] == official[key], key


def test_bert_objective_has_no_generator_or_discriminator_head():
    names = pretraining_graph_variables(model_size="tiny", electra_objective=False)
    assert not any(n.startswith(("generator/", "discriminator_predictions/",
                                 "generator_predictions/", "electra/")) for n in names)
    # Google BERT's names, so BERT-wwm/MacBERT/LERT checkpoints and ours are interchangeable.
    for name in ("bert/embeddings/word_embeddings", "bert/encoder/layer_1/output/dense/kernel",
                 "cls/predictions/transform/dense/kernel",
                 "cls/predictions/transform/LayerNorm/gamma", "cls/predictions/output_bias"):
        assert name in names, name


def test_untied_generator_embeddings_get_their_own_table():
    names = pretraining_graph_variables(model_size="tiny", untied_generator_embeddings=True)
    assert "generator/embeddings/word_embeddings" in names
    assert names["generator/embeddings/word_embeddings"][1] == 16  # generator hidden size


def test_model_hparam_overrides_change_shape_and_reject_unknown_keys():
    names = pretraining_graph_variables(
        model_size="tiny", model_hparam_overrides={"num_hidden_layers": 1})
    assert not any("layer_1/" in n for n in names)
    with pytest.raises(InputError, match=r"num_hidden_layer.*did you mean 'num_hidden_layers'"):
        pretraining_graph_variables(model_size="tiny",
                                    model_hparam_overrides={"num_hidden_layer": 1})


def test_unknown_model_size_is_rejected():
    with pytest.raises(InputError, match="unknown model_size 'medium'.*small"):
        modeling.BertConfig.for_model_size("medium")


def test_config_reads_hf_json_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"vocab_size": 10, "hidden_size": 8, "architectures": ["X"],
                                "model_type": "electra"}))
    assert modeling.BertConfig.from_json_file(str(path)).hidden_size == 8
    path.write_text(json.dumps({"vocab_size": 10, "hiden_size": 8}))
    with pytest.raises(InputError, match="hiden_size.*hidden_size"):
        modeling.BertConfig.from_json_file(str(path))


def test_padding_does_not_change_real_token_outputs():
    """The attention mask hides padding: whatever sits there, real positions agree."""
    config = modeling.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=32,
                                 max_position_embeddings=16, embedding_size=8)
    ids = np.array([[5, 6, 7, 8, 0, 0], [5, 6, 7, 8, 33, 44]], np.int32)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]], np.int32)
    with tf.Graph().as_default():
        model = modeling.BertModel(config, False, tf.constant(ids), tf.constant(mask))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            out = sess.run(model.get_sequence_output())
    assert out.shape == (2, 6, 16)
    np.testing.assert_allclose(out[0, :4], out[1, :4], atol=1e-5)
    assert not np.allclose(out[0, 4:], out[1, 4:])


def test_layer_norm_epsilon_and_gelu():
    with tf.Graph().as_default(), tf.Session() as sess:
        x = tf.constant([[1.0, 2.0, 3.0, 4.0]])
        y = modeling.layer_norm(x)
        g = modeling.gelu(tf.constant([-1.0, 0.0, 1.0]))
        sess.run(tf.global_variables_initializer())
        y, g = sess.run([y, g])
    xs = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(y[0], (xs - xs.mean()) / np.sqrt(xs.var() + 1e-12), rtol=1e-5)
    np.testing.assert_allclose(g, [-0.158808, 0.0, 0.841192], atol=1e-5)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_count_parameters_matches_the_graph(size):
    config = modeling.BertConfig.for_model_size(size)
    with tf.Graph().as_default():
        modeling.BertModel(config, False, tf.zeros([1, 8], tf.int32))
        in_graph = sum(v.shape.num_elements() for v in tf.global_variables())
    assert modeling.count_parameters(config) == in_graph
