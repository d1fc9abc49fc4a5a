"""Model configs, the transformer, and graph variable names/shapes against the official ones."""

import json
import math
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import configure_pretraining
from model import configs
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
    disc = configs.discriminator_config(config)
    gen = configs.generator_config(config, disc)
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
    path.write_text(json.dumps({"vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2,
                                "architectures": ["X"], "model_type": "electra"}))
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


def test_layer_norm_epsilon():
    with tf.Graph().as_default(), tf.Session() as sess:
        y = modeling.layer_norm(tf.constant([[1.0, 2.0, 3.0, 4.0]]))
        sess.run(tf.global_variables_initializer())
        y = sess.run(y)
    xs = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(y[0], (xs - xs.mean()) / np.sqrt(xs.var() + 1e-12), rtol=1e-5)


GELU_XS = [-3.0, -1.0, 0.5, 1.0, 3.0]


def erf_gelu(x):
    return x * 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def tanh_gelu(x):
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def run_activation(name, xs, dtype=tf.float32):
    with tf.Graph().as_default(), tf.Session() as sess:
        return sess.run(tf.cast(modeling.get_activation(name)(tf.constant(xs, dtype)),
                                tf.float64))


def test_gelu_is_the_exact_erf_form_not_tanh():
    exact = [erf_gelu(x) for x in GELU_XS]
    tanh = [tanh_gelu(x) for x in GELU_XS]
    got = run_activation("gelu", GELU_XS)
    np.testing.assert_allclose(got, exact, rtol=0, atol=2e-7)
    # the tanh form is off by 1.5e-4..2.3e-4 at these points (x = -1, 0.5, 1): a tolerance
    # 1000x tighter than that tells the two apart
    assert np.max(np.abs(np.array(exact) - np.array(tanh))) > 1e-4
    assert np.max(np.abs(got - np.array(tanh))) > 1e-4
    with tf.Graph().as_default(), tf.Session() as sess:
        direct = sess.run(modeling.gelu(tf.constant(GELU_XS)))
    np.testing.assert_array_equal(direct, got.astype(np.float32))


def test_gelu_new_is_the_tanh_form():
    got = run_activation("gelu_new", GELU_XS)
    np.testing.assert_allclose(got, [tanh_gelu(x) for x in GELU_XS], rtol=0, atol=2e-7)
    assert np.max(np.abs(got - np.array([erf_gelu(x) for x in GELU_XS]))) > 1e-4


def test_gelu_in_bfloat16():
    got = run_activation("gelu", GELU_XS, tf.bfloat16)
    np.testing.assert_allclose(got, [erf_gelu(x) for x in GELU_XS], rtol=1e-2, atol=1e-2)


def encoder_output(hidden_act):
    """Sequence output of a fixed tiny encoder whose FFN uses hidden_act."""
    config = modeling.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=32,
                                 max_position_embeddings=16, hidden_act=hidden_act,
                                 initializer_range=1.0)
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        model = modeling.BertModel(config, False, tf.constant([[5, 6, 7, 8]]))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return sess.run(model.get_sequence_output())


def test_hidden_act_selects_the_encoder_activation():
    exact, tanh = encoder_output("gelu"), encoder_output("gelu_new")
    # Same seed, same weights: only the activation differs, by < 5e-4 per unit (other
    # weights would move LayerNorm outputs by O(1)).
    assert 1e-5 < np.max(np.abs(exact - tanh)) < 2e-2
    config = modeling.BertConfig.from_dict({"vocab_size": 5, "hidden_act": "gelu_new"})
    assert config.hidden_act == "gelu_new"
    assert modeling.BertConfig(vocab_size=5).hidden_act == "gelu"
    assert modeling.get_activation("gelu") is modeling.gelu
    assert modeling.get_activation("gelu_new") is modeling.gelu_tanh


def activation_ops_by_scope(**hparams):
    """{scope: set of Erf/Tanh op types} of a pre-training graph, per top-level head/encoder."""
    config = configure_pretraining.PretrainingConfig("m", "/nonexistent", **hparams)
    found = {}
    with tf.Graph().as_default() as graph:
        features = {k: tf.zeros([2, config.max_seq_length], tf.int32)
                    for k in ("input_ids", "input_mask", "segment_ids")}
        objective.PretrainingModel(config, features, True, SPECIAL_IDS)
        for op in graph.get_operations():
            if op.type in ("Erf", "Tanh") and "gradients" not in op.name:
                found.setdefault(op.name.split("/")[0], set()).add(op.type)
    return found


@pytest.mark.parametrize("hidden_act,op_type", [("gelu", "Erf"), ("gelu_new", "Tanh")])
def test_pretraining_heads_follow_hidden_act(hidden_act, op_type):
    """Encoders and both pre-training heads (generator MLM, discriminator) use hidden_act."""
    found = activation_ops_by_scope(model_size="tiny", max_seq_length=16,
                                    model_hparam_overrides={"hidden_act": hidden_act})
    for scope in ("electra", "generator", "generator_predictions", "discriminator_predictions"):
        assert found.get(scope) == {op_type}, (scope, found)


def test_unknown_hidden_act_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"vocab_size": 5, "hidden_act": "gelu_tanh"}))
    with pytest.raises(InputError) as e:
        modeling.BertConfig.from_json_file(str(path))
    assert str(path) in str(e.value) and "'gelu_tanh'" in str(e.value)
    assert "gelu_new" in str(e.value)  # the closest valid name
    with pytest.raises(InputError, match="unknown hidden_act 'swish'"):
        modeling.get_activation("swish")


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_count_parameters_matches_the_graph(size):
    config = modeling.BertConfig.for_model_size(size)
    with tf.Graph().as_default():
        modeling.BertModel(config, False, tf.zeros([1, 8], tf.int32))
        in_graph = sum(v.shape.num_elements() for v in tf.global_variables())
    assert modeling.count_parameters(config) == in_graph


def test_degenerate_shapes_are_refused_at_hparam_time():
    import configure_finetuning
    cases = [({"num_hidden_layers": 0}, "num_hidden_layers must be a whole number >= 1, got 0"),
             ({"hidden_size": 100, "num_attention_heads": 3},
              "hidden_size 100 does not divide into num_attention_heads 3"),
             ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob must be in [0, 1), got 1.0")]
    for overrides, message in cases:
        with pytest.raises(InputError, match=re.escape(message)):
            configure_pretraining.PretrainingConfig(
                "m", "/tmp/d", model_size="tiny", model_hparam_overrides=overrides)
    with pytest.raises(InputError, match="the generator .*num_hidden_layers must be a whole "
                                         "number >= 1, got 0"):
        configure_pretraining.PretrainingConfig("m", "/tmp/d", model_size="tiny",
                                                generator_layers=0.1)
    config = configure_finetuning.FinetuningConfig(
        "m", "/tmp/d", model_size="tiny", model_hparam_overrides={"num_hidden_layers": 0})
    with pytest.raises(InputError, match="num_hidden_layers must be a whole number"):
        configs.discriminator_config(config)
