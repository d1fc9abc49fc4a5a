"""scripts/export_hf.py: HF transformers export of our checkpoints.

Always run (numpy + safetensors only): files, config fields, tensor names and shapes,
kernel transposition, vocab, released-model dirs and the error messages.
With torch and transformers importable: the exported models give our TF logits, and
transformers' own TF-checkpoint loader reads our checkpoints to the same weights.
"""

import io
import json
import math
import shutil
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import modeling
from model.tokenization import FullTokenizer
from scripts import export_hf
from tests.conftest import REPO

safetensors_numpy = pytest.importorskip("safetensors.numpy")

SENTENCES = [("哈尔滨工业大学讯飞联合实验室发布了中文ELECTRA模型。", "它在阅读理解任务上表现很好"),
             ("今天天气不错", None)]
TOLERANCE = 1e-4


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def model_dir(pretrained_model_dir):
    """A real run_pretraining.py model dir: tiny ELECTRA, 3 steps, Adam slots saved (the
    session's shared one, tests/conftest.py: read here, never written)."""
    return pretrained_model_dir


def write_checkpoint(prefix, arrays):
    """Saves {name: array} as a TF checkpoint at prefix, without a `checkpoint` file."""
    with tf.Graph().as_default():
        variables = {name: tf.Variable(value, name="v%d" % i)
                     for i, (name, value) in enumerate(sorted(arrays.items()))}
        saver = tf.train.Saver(variables)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False, write_state=False)


@pytest.fixture(scope="module")
def released_dir(model_dir, tmp_path_factory):
    """A released-style copy: electra_model.*, no `checkpoint` file, no optimizer slots.

    Every weight gets noise: three steps leave biases and LayerNorm betas near zero and
    gammas near one, so a swapped or dropped one would go unnoticed by the parity tests.
    Its configs say "hidden_act": "gelu_new" (a checkpoint pre-trained with BERT's tanh
    GELU), so the parity tests cover both GELU forms: the trained dir has the exact "gelu".
    """
    rng = np.random.RandomState(0)
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(model_dir)))
    arrays = {}
    for name, shape in reader.get_variable_to_shape_map().items():
        if name == "global_step" or name.endswith(("/adam_m", "/adam_v")):
            continue
        noise = rng.normal(0.0, 0.1, shape)
        arrays[name] = (reader.get_tensor(name) + noise).astype(np.float32)
    out = tmp_path_factory.mktemp("released")
    write_checkpoint(out / "electra_model", arrays)
    shutil.copy(model_dir / "vocab.txt", out / "vocab.txt")
    for name in ("discriminator.json", "generator.json"):
        config = dict(load_json(model_dir / name), hidden_act="gelu_new")
        (out / name).write_text(json.dumps(config), encoding="utf-8")
    return out


def export(ckpt_dir, out_dir, component, *extra):
    out = io.StringIO()
    with redirect_stdout(out):
        status = export_hf.main([str(ckpt_dir), str(out_dir), "--component", component]
                                + [str(x) for x in extra])
    assert status == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def exports(model_dir, released_dir, tmp_path_factory):
    """{(source, component): export dir} for source in trained/released."""
    root = tmp_path_factory.mktemp("hf")
    dirs = {}
    for source, ckpt_dir in (("trained", model_dir), ("released", released_dir)):
        for component in export_hf.ELECTRA_COMPONENTS:
            dirs[source, component] = root / ("%s_%s" % (source, component))
            export(ckpt_dir, dirs[source, component], component)
    return dirs


def checkpoint_of(ckpt_dir):
    return tf.train.latest_checkpoint(str(ckpt_dir)) or str(ckpt_dir / "electra_model")


def source_dir(source, model_dir, released_dir):
    return model_dir if source == "trained" else released_dir


def load_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- files

def test_discriminator_config_json_has_hf_electra_fields(model_dir, exports):
    config = load_json(exports["trained", "discriminator"] / "config.json")
    ours = load_json(model_dir / "discriminator.json")
    assert config["architectures"] == ["ElectraForPreTraining"]
    assert config["model_type"] == "electra"
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size",
                "layer_norm_eps", "embedding_size", "initializer_range"):
        assert config[key] == ours[key], key
    # the same names in both: "gelu" is the exact erf form here and in HF
    assert ours["hidden_act"] == "gelu" and config["hidden_act"] == "gelu"
    assert config["pad_token_id"] == 0


def test_tanh_gelu_checkpoint_exports_gelu_new(released_dir, exports):
    """A config saying "gelu_new" (BERT's tanh GELU) is exported as HF's "gelu_new"."""
    assert load_json(released_dir / "discriminator.json")["hidden_act"] == "gelu_new"
    for component in export_hf.ELECTRA_COMPONENTS:
        config = load_json(exports["released", component] / "config.json")
        assert config["hidden_act"] == "gelu_new", component


def test_generator_config_json(model_dir, exports):
    config = load_json(exports["trained", "generator"] / "config.json")
    assert config["architectures"] == ["ElectraForMaskedLM"]
    # the tiny generator: hidden 16 over the discriminator's 64-wide shared embeddings
    assert (config["hidden_size"], config["embedding_size"]) == (16, 64)


def test_tokenizer_files_and_vocab(exports):
    out = exports["trained", "discriminator"]
    assert (out / "vocab.txt").read_bytes() == (REPO / "sample_data" / "vocab.txt").read_bytes()
    special = load_json(out / "special_tokens_map.json")
    assert special == {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                       "cls_token": "[CLS]", "mask_token": "[MASK]"}
    tokenizer = load_json(out / "tokenizer_config.json")
    assert tokenizer["do_lower_case"] is True and tokenizer["model_max_length"] == 512


def expected_encoder_names(num_layers, with_project):
    """HF ElectraModel's state-dict keys, written out independently of export_hf."""
    tables = ("word_embeddings", "position_embeddings", "token_type_embeddings")
    names = ["electra.embeddings.%s.weight" % t for t in tables]
    names += ["electra.embeddings.LayerNorm.weight", "electra.embeddings.LayerNorm.bias"]
    if with_project:
        names += ["electra.embeddings_project.weight", "electra.embeddings_project.bias"]
    for i in range(num_layers):
        for part in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense", "attention.output.LayerNorm",
                     "intermediate.dense", "output.dense", "output.LayerNorm"):
            names += ["electra.encoder.layer.%d.%s.%s" % (i, part, w) for w in ("weight", "bias")]
    return names


def test_discriminator_safetensors_names_shapes_and_transposition(model_dir, exports):
    tensors = safetensors_numpy.load_file(str(exports["trained", "discriminator"]
                                              / "model.safetensors"))
    expected = expected_encoder_names(2, with_project=False) + [
        "discriminator_predictions.dense.weight", "discriminator_predictions.dense.bias",
        "discriminator_predictions.dense_prediction.weight",
        "discriminator_predictions.dense_prediction.bias"]
    assert sorted(tensors) == sorted(expected)  # no Adam slots, no global_step, no generator
    assert tensors["electra.embeddings.word_embeddings.weight"].shape == (21128, 64)
    assert tensors["electra.encoder.layer.1.intermediate.dense.weight"].shape == (256, 64)
    assert tensors["discriminator_predictions.dense_prediction.weight"].shape == (1, 64)
    assert all(t.dtype == np.float32 for t in tensors.values())

    reader = tf.train.load_checkpoint(checkpoint_of(model_dir))
    kernel = reader.get_tensor("electra/encoder/layer_1/intermediate/dense/kernel")  # [64, 256]
    np.testing.assert_array_equal(tensors["electra.encoder.layer.1.intermediate.dense.weight"],
                                  kernel.T)
    np.testing.assert_array_equal(
        tensors["electra.encoder.layer.0.attention.output.LayerNorm.weight"],
        reader.get_tensor("electra/encoder/layer_0/attention/output/LayerNorm/gamma"))
    np.testing.assert_array_equal(
        tensors["discriminator_predictions.dense_prediction.bias"],
        reader.get_tensor("discriminator_predictions/dense_1/bias"))


def test_generator_safetensors_maps_generator_scope_and_shared_embeddings(released_dir,
                                                                          exports):
    tensors = safetensors_numpy.load_file(str(exports["released", "generator"]
                                              / "model.safetensors"))
    expected = expected_encoder_names(2, with_project=True) + [
        "generator_predictions.dense.weight", "generator_predictions.dense.bias",
        "generator_predictions.LayerNorm.weight", "generator_predictions.LayerNorm.bias",
        "generator_lm_head.bias"]  # the lm_head weight is tied to the word embeddings
    assert sorted(tensors) == sorted(expected)
    reader = tf.train.load_checkpoint(str(released_dir / "electra_model"))
    np.testing.assert_array_equal(tensors["electra.embeddings.word_embeddings.weight"],
                                  reader.get_tensor("electra/embeddings/word_embeddings"))
    np.testing.assert_array_equal(tensors["electra.embeddings_project.weight"],
                                  reader.get_tensor("generator/embeddings_project/kernel").T)
    assert tensors["electra.embeddings_project.weight"].shape == (16, 64)
    np.testing.assert_array_equal(
        tensors["electra.encoder.layer.0.attention.self.query.weight"],
        reader.get_tensor("generator/encoder/layer_0/attention/self/query/kernel").T)
    assert tensors["generator_predictions.dense.weight"].shape == (64, 16)
    np.testing.assert_array_equal(tensors["generator_lm_head.bias"],
                                  reader.get_tensor("generator_predictions/output_bias"))


def test_cli_reports_what_it_exported(released_dir, tmp_path):
    text = export(released_dir, tmp_path / "out", "discriminator")
    assert "electra_model" in text and "ElectraForPreTraining" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json", "model.safetensors", "special_tokens_map.json",
        "tokenizer_config.json", "vocab.txt"]


def test_explicit_checkpoint_and_config(model_dir, tmp_path):
    checkpoint = tf.train.latest_checkpoint(str(model_dir))
    config = tmp_path / "disc.json"
    shutil.copy(model_dir / "discriminator.json", config)
    export(tmp_path / "does-not-matter", tmp_path / "out", "discriminator",
           "--checkpoint", checkpoint, "--config", config)
    assert (tmp_path / "out" / "model.safetensors").exists()


# ----------------------------------------------------------------------------- errors

def run_failing(capsys, *argv):
    assert export_hf.main([str(a) for a in argv]) == 2
    return capsys.readouterr().err


def test_error_no_checkpoint(capsys, tmp_path):
    err = run_failing(capsys, tmp_path, tmp_path / "out")
    assert "no checkpoint in %s" % tmp_path in err
    assert not (tmp_path / "out").exists()


def test_error_missing_variables_are_listed(capsys, released_dir, tmp_path):
    reader = tf.train.load_checkpoint(str(released_dir / "electra_model"))
    arrays = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
              if not n.startswith("discriminator_predictions/")}
    write_checkpoint(tmp_path / "electra_model", arrays)
    for name in ("vocab.txt", "discriminator.json"):
        shutil.copy(released_dir / name, tmp_path / name)
    err = run_failing(capsys, tmp_path, tmp_path / "out")
    assert "lacks 4 of the 41 variables the 2-layer 64-hidden model needs" in err
    assert "(e.g. discriminator_predictions/dense/bias, discriminator_predictions/dense/" \
        "kernel, discriminator_predictions/dense_1/bias)" in err


def test_error_config_does_not_match_checkpoint(capsys, released_dir, tmp_path):
    err = run_failing(capsys, released_dir, tmp_path / "out", "--config",
                      REPO / "config" / "small_discriminator_config.json")
    assert "does not describe it" in err and "--config" in err
    assert "has discriminator_predictions/dense/bias with shape [64] but the 12-layer " \
        "256-hidden model needs [256]" in err
    assert "embedding_size 64 in the checkpoint, 128 in the model" in err
    assert "num_hidden_layers 2 in the checkpoint (electra/encoder/layer_*), 12 in the " \
        "model" in err


def test_error_missing_layers_are_listed(capsys, released_dir, tmp_path):
    config = load_json(released_dir / "discriminator.json")
    config["num_hidden_layers"] = 3
    (tmp_path / "deep.json").write_text(json.dumps(config))
    err = run_failing(capsys, released_dir, tmp_path / "out", "--config", tmp_path / "deep.json")
    assert "lacks 16 of the" in err and "the 3-layer 64-hidden model needs" in err
    assert "(e.g. electra/encoder/layer_2/attention/output/LayerNorm/beta" in err
    assert "num_hidden_layers 2 in the checkpoint (electra/encoder/layer_*), 3 in the " \
        "model" in err


def test_error_vocab_does_not_match_embeddings(capsys, released_dir, tmp_path):
    lines = (released_dir / "vocab.txt").read_bytes().split(b"\n")  # tokens hold \u2028
    (tmp_path / "short.txt").write_bytes(b"\n".join(lines[:21120]) + b"\n")
    err = run_failing(capsys, released_dir, tmp_path / "out", "--vocab", tmp_path / "short.txt")
    assert "has 21120 tokens but the model's vocab_size is 21128" in err


def test_error_missing_config_suggests_flag(capsys, released_dir, tmp_path):
    shutil.copy(released_dir / "electra_model.index", tmp_path)
    for data in released_dir.glob("electra_model.data-*"):
        shutil.copy(data, tmp_path)
    err = run_failing(capsys, tmp_path, tmp_path / "out")
    assert "discriminator.json" in err and "--config" in err


# ----------------------------------------------------------------------------- parity

def encode(vocab_file, length=48):
    """A padded batch of one sentence pair and one single sentence: ids, mask, segments."""
    tokenizer = FullTokenizer(str(vocab_file))
    ids, mask, types = [], [], []
    for a, b in SENTENCES:
        tokens = ["[CLS]"] + tokenizer.tokenize(a) + ["[SEP]"]
        segments = [0] * len(tokens)
        if b:
            tokens += tokenizer.tokenize(b) + ["[SEP]"]
            segments += [1] * (len(tokens) - len(segments))
        assert len(tokens) <= length
        pad = length - len(tokens)
        ids.append(tokenizer.convert_tokens_to_ids(tokens) + [0] * pad)
        mask.append([1] * len(tokens) + [0] * pad)
        types.append(segments + [0] * pad)
    return [np.array(x, dtype=np.int32) for x in (ids, mask, types)]


def erf_gelu(x):
    return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def tf_logits(checkpoint, ckpt_dir, component, inputs, generator_head_act=None):
    """Our graph (modeling.BertModel + the pretrain/objective.py head), restored.

    Returns (logits, last hidden states); the generator's logits cover every position.
    generator_head_act replaces the MLM head's activation (HF hard-codes erf GELU there).
    """
    disc = modeling.BertConfig.from_json_file(str(ckpt_dir / "discriminator.json"))
    with tf.Graph().as_default():
        ids, mask, types = (tf.constant(x) for x in inputs)
        act = modeling.get_activation(disc.hidden_act)
        if component == "discriminator":
            model = modeling.BertModel(disc, False, ids, mask, types, scope="electra")
            with tf.variable_scope("discriminator_predictions"):
                hidden = modeling.dense(model.get_sequence_output(), disc.hidden_size, "dense",
                                        activation=act)
                logits = tf.squeeze(modeling.dense(hidden, 1, "dense_1"), -1)
        else:
            gen = modeling.BertConfig.from_json_file(str(ckpt_dir / "generator.json"))
            model = modeling.BertModel(gen, False, ids, mask, types, scope="generator",
                                       embedding_scope="electra",
                                       embedding_size=disc.embedding_size)
            table = model.get_embedding_table()
            with tf.variable_scope("generator_predictions"):
                hidden = modeling.dense(model.get_sequence_output(), disc.embedding_size,
                                        "dense", activation=generator_head_act or act)
                hidden = modeling.layer_norm(hidden, disc.layer_norm_eps)
                bias = tf.get_variable("output_bias", [disc.vocab_size])
                logits = tf.einsum("ble,ve->blv", hidden, table) + bias
        saver = tf.train.Saver()
        with tf.Session() as session:
            saver.restore(session, checkpoint)
            return session.run([logits, model.get_sequence_output()])


def hf_modules():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.set_num_threads(1)
    return torch, transformers


def hf_logits(torch, model, inputs):
    ids, mask, types = (torch.tensor(x, dtype=torch.long) for x in inputs)
    with torch.no_grad():
        out = model.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types,
                           output_hidden_states=True)
    return out.logits.numpy(), out.hidden_states[-1].numpy()


def hf_load(cls, export_dir):
    """cls.from_pretrained(export_dir), checking every weight came from the export."""
    model, info = cls.from_pretrained(str(export_dir), output_loading_info=True)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info.get(key), (key, info[key])
    return model


def max_diff(a, b):
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b)))


@pytest.mark.parametrize("source", ["trained", "released"])
def test_discriminator_logits_match_transformers(source, model_dir, released_dir, exports):
    torch, transformers = hf_modules()
    ckpt_dir = source_dir(source, model_dir, released_dir)
    inputs = encode(ckpt_dir / "vocab.txt")
    ours, ours_hidden = tf_logits(checkpoint_of(ckpt_dir), ckpt_dir, "discriminator", inputs)
    model = hf_load(transformers.ElectraForPreTraining, exports[source, "discriminator"])
    theirs, theirs_hidden = hf_logits(torch, model, inputs)
    diff = max_diff(ours, theirs)
    print("%s discriminator: max |logit diff| %.3g (logits up to %.3g), hidden %.3g"
          % (source, diff, np.abs(ours).max(), max_diff(ours_hidden, theirs_hidden)))
    assert diff < TOLERANCE
    assert max_diff(ours_hidden, theirs_hidden) < TOLERANCE


@pytest.mark.parametrize("source", ["trained", "released"])
def test_generator_logits_match_transformers(source, model_dir, released_dir, exports):
    """Hidden states match; logits match our graph with HF's erf-GELU MLM head.

    HF's ElectraGeneratorPredictions hard-codes the exact GELU whatever hidden_act says;
    ours follows hidden_act. So with "gelu" (trained) our own logits match HF's, and with
    "gelu_new" (released) only the erf-head variant does; that difference is measured too.
    """
    torch, transformers = hf_modules()
    ckpt_dir = source_dir(source, model_dir, released_dir)
    inputs = encode(ckpt_dir / "vocab.txt")
    model = hf_load(transformers.ElectraForMaskedLM, exports[source, "generator"])
    theirs, theirs_hidden = hf_logits(torch, model, inputs)
    checkpoint = checkpoint_of(ckpt_dir)
    erf_head, hidden = tf_logits(checkpoint, ckpt_dir, "generator", inputs,
                                 generator_head_act=erf_gelu)
    ours, _ = tf_logits(checkpoint, ckpt_dir, "generator", inputs)
    print("%s generator: max |logit diff| %.3g with HF's erf head, %.3g with ours "
          "(logits up to %.3g), hidden %.3g"
          % (source, max_diff(erf_head, theirs), max_diff(ours, theirs), np.abs(ours).max(),
             max_diff(hidden, theirs_hidden)))
    assert max_diff(hidden, theirs_hidden) < TOLERANCE
    assert max_diff(erf_head, theirs) < TOLERANCE
    if source == "trained":  # "gelu": our head is HF's
        assert max_diff(ours, theirs) < TOLERANCE
    else:  # erf and tanh GELU differ by < 5e-4 per activation: about 1e-3 on these logits
        assert TOLERANCE < max_diff(ours, theirs) < 1e-2


def test_tokenizers_load_the_export(exports):
    _, transformers = hf_modules()
    out = str(exports["trained", "discriminator"])
    ours = FullTokenizer(str(REPO / "sample_data" / "vocab.txt"))
    text = SENTENCES[0][0]
    expected = ours.convert_tokens_to_ids(["[CLS]"] + ours.tokenize(text) + ["[SEP]"])
    for cls in (transformers.AutoTokenizer, transformers.BertTokenizerFast,
                transformers.BertTokenizer):
        tokenizer = cls.from_pretrained(out)
        assert tokenizer(text)["input_ids"] == expected, cls.__name__


def hf_tf_loader(transformers):
    from transformers.models.electra import modeling_electra
    loader = getattr(modeling_electra, "load_tf_weights_in_electra", None)
    if loader is None:
        pytest.skip("transformers %s has no TF-checkpoint loader (removed in 5.0)"
                    % transformers.__version__)
    return loader


@pytest.mark.parametrize("component", ["discriminator", "generator"])
def test_transformers_tf_loader_reads_our_checkpoint(component, model_dir, exports):
    """HF's load_tf_weights_in_electra on our checkpoint (with Adam slots) = our export."""
    torch, transformers = hf_modules()
    loader = hf_tf_loader(transformers)
    export_dir = exports["trained", component]
    config = transformers.ElectraConfig.from_pretrained(str(export_dir))
    cls = (transformers.ElectraForPreTraining if component == "discriminator"
           else transformers.ElectraForMaskedLM)
    model = cls(config)
    with redirect_stdout(io.StringIO()):  # it prints a line per skipped Adam slot
        loader(model, config, checkpoint_of(model_dir), discriminator_or_generator=component)
    state = model.state_dict()
    exported = safetensors_numpy.load_file(str(export_dir / "model.safetensors"))
    for name, array in exported.items():
        np.testing.assert_array_equal(state[name].numpy(), array, err_msg=name)

    inputs = encode(model_dir / "vocab.txt")
    loaded, _ = hf_logits(torch, model, inputs)
    theirs, _ = hf_logits(torch, hf_load(cls, export_dir), inputs)
    diff = max_diff(loaded, theirs)
    if component == "discriminator":
        ours, _ = tf_logits(checkpoint_of(model_dir), model_dir, component, inputs)
        diff = max(diff, max_diff(ours, loaded))
    print("HF TF-loader %s: max |logit diff| %.3g" % (component, diff))
    assert diff < TOLERANCE
