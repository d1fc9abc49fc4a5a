"""scripts/import_hf.py against Hugging Face transformers itself.

The fixtures in tests/fixtures/hf were written by transformers (and torch) with
scripts/make_hf_fixtures.py, in every weight layout it writes, with the outputs transformers
computed on a fixed batch (golden.npz; versions in versions.json). Here, without torch: the
import, then our graph's outputs against transformers'; the round trip through
scripts/export_hf.py; the restricted unpickler; the errors.
"""

import io
import json
import os
import pickle
import shutil
import struct
import zipfile
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import modeling
from scripts import export_hf
from scripts import import_hf
from tests.conftest import REPO
from tests.test_export_hf import tf_logits
from util import checkpoints
from util import hf_weights
from util import torch_pickle
from util.errors import InputError

FIXTURES = REPO / "tests" / "fixtures" / "hf"
GOLDEN = dict(np.load(str(FIXTURES / "golden.npz")))
TOLERANCE = 1e-5
ELECTRA_FORMATS = ["safetensors", "sharded", "sharded-bin", "bin-zip", "bin-legacy",
                   "bin-no-prefix", "h5"]
GENERATOR_FORMATS = ["safetensors", "bin-zip", "bin-legacy", "bin-no-prefix", "h5"]
BERT_FORMATS = ["safetensors", "bin-zip", "bin-legacy", "h5"]


def run_import(hf_dir, out, generator=None):
    argv = [str(hf_dir), "--out", str(out)] + (["--generator", str(generator)]
                                               if generator else [])
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        status = import_hf.main(argv)
    assert status in (0, None), buffer.getvalue()
    return buffer.getvalue()


def golden_inputs():
    return [GOLDEN[k].astype(np.int32) for k in ("input_ids", "attention_mask",
                                                  "token_type_ids")]


def max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)))


def bert_outputs(out_dir, with_mlm):
    """Our BERT graph (scope bert, Google BERT's cls/predictions head) restored from the
    import: (sequence output, MLM logits or None)."""
    config = modeling.BertConfig.from_json_file(str(out_dir / "discriminator.json"))
    with tf.Graph().as_default():
        ids, mask, types = (tf.constant(x) for x in golden_inputs())
        model = modeling.BertModel(config, False, ids, mask, types, scope="bert")
        fetches = [model.get_sequence_output()]
        if with_mlm:
            with tf.variable_scope("cls/predictions"):
                with tf.variable_scope("transform"):
                    hidden = modeling.dense(model.get_sequence_output(), config.hidden_size,
                                            "dense",
                                            activation=modeling.get_activation(
                                                config.hidden_act))
                    hidden = modeling.layer_norm(hidden, config.layer_norm_eps)
                bias = tf.get_variable("output_bias", [config.vocab_size])
            fetches.append(tf.einsum("blh,vh->blv", hidden, model.get_embedding_table())
                           + bias)
        saver = tf.train.Saver()
        with tf.Session() as session:
            saver.restore(session, checkpoints.find_checkpoint(str(out_dir)))
            values = session.run(fetches)
    return values[0], values[1] if with_mlm else None


# ----------------------------------------------------------------------------- agreement

@pytest.mark.parametrize("component, fmt",
                         [("discriminator", f) for f in ELECTRA_FORMATS]
                         + [("generator", f) for f in GENERATOR_FORMATS])
def test_electra_logits_equal_transformers(component, fmt, tmp_path):
    """The discriminator in each layout; the generator in each layout, beside the
    discriminator's safetensors."""
    out = tmp_path / "D" / "models" / "M"
    if component == "discriminator":
        run_import(FIXTURES / "electra-discriminator" / fmt, out)
    else:
        run_import(FIXTURES / "electra-discriminator" / "safetensors", out,
                   generator=FIXTURES / "electra-generator" / fmt)
    ours, _ = tf_logits(str(out / "electra_model"), out, component, golden_inputs())
    golden = GOLDEN["disc_logits" if component == "discriminator" else "gen_logits"]
    diff = max_diff(ours, golden)
    print("electra %-13s %-13s max |logit - transformers'| %.2e (logits to %.2f)"
          % (component, fmt, diff, np.abs(ours).max()))
    assert diff < TOLERANCE


@pytest.mark.parametrize("fmt", BERT_FORMATS)
def test_bert_outputs_equal_transformers(fmt, tmp_path):
    out = tmp_path / "M"
    run_import(FIXTURES / "bert-mlm" / fmt, out)
    sequence, logits = bert_outputs(out, with_mlm=True)
    seq_diff = max_diff(sequence, GOLDEN["bert_sequence_output"])
    mlm_diff = max_diff(logits, GOLDEN["bert_mlm_logits"])
    scale = float(np.abs(logits).max())
    print("bert (masked LM)      %-13s max |sequence output diff| %.2e, |MLM logit diff| %.2e "
          "(logits to %.1f)" % (fmt, seq_diff, mlm_diff, scale))
    assert seq_diff < TOLERANCE
    # The MLM logits add one more float32 LayerNorm and a product with the embedding table
    # on top of the sequence output: rounding grows to about 3e-5; a mapping error is O(1).
    assert mlm_diff < 10 * TOLERANCE


def test_bert_for_pretraining_keeps_pooler_and_next_sentence_head(tmp_path):
    out = tmp_path / "M"
    run_import(FIXTURES / "bert-pretraining" / "safetensors", out)
    sequence, _ = bert_outputs(out, with_mlm=False)
    assert max_diff(sequence, GOLDEN["bert_pretraining_sequence_output"]) < TOLERANCE
    names = dict(tf.train.list_variables(str(out / "bert_model.ckpt")))
    hf = hf_weights.read_safetensors(str(FIXTURES / "bert-pretraining" / "safetensors" /
                                         "model.safetensors"))
    reader = tf.train.load_checkpoint(str(out / "bert_model.ckpt"))
    # Google BERT's layouts: the pooler's kernel [in, out]; output_weights [2, H] as torch's
    np.testing.assert_array_equal(reader.get_tensor("bert/pooler/dense/kernel"),
                                  hf["bert.pooler.dense.weight"].T)
    np.testing.assert_array_equal(reader.get_tensor("cls/seq_relationship/output_weights"),
                                  hf["cls.seq_relationship.weight"])
    assert names["cls/predictions/output_bias"] == [len(GOLDEN["bert_mlm_logits"][0, 0])]


# ----------------------------------------------------------------------------- round trip

def export_gives_back(model_dir, exported, component, source):
    """export_hf's --component of model_dir holds every tensor of the HF dir source, bit
    for bit, under the same names; returns its config.json."""
    with redirect_stdout(io.StringIO()):
        assert export_hf.main([str(model_dir), str(exported), "--component", component]) in (
            0, None)
    original = hf_weights.read_safetensors(str(source / "model.safetensors"))
    back = hf_weights.read_safetensors(str(exported / "model.safetensors"))
    assert sorted(back) == sorted(original)
    for name, array in original.items():
        np.testing.assert_array_equal(back[name], array, err_msg=name)
    return json.loads((exported / "config.json").read_text())


def test_export_of_the_import_gives_back_transformers_tensors(tmp_path):
    out = tmp_path / "M"
    run_import(FIXTURES / "electra-discriminator" / "safetensors", out,
               generator=FIXTURES / "electra-generator" / "safetensors")
    for component in ("discriminator", "generator"):
        source = FIXTURES / ("electra-" + component) / "safetensors"
        config = export_gives_back(out, tmp_path / component, component, source)
        source_config = json.loads((source / "config.json").read_text())
        for key in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                    "num_attention_heads", "intermediate_size", "hidden_act"):
            assert config[key] == source_config[key], key


@pytest.mark.parametrize("kind, architecture", [("bert-mlm", "BertForMaskedLM"),
                                                ("bert-pretraining", "BertForPreTraining")])
def test_bert_export_of_the_import_gives_back_transformers_tensors(kind, architecture,
                                                                   tmp_path):
    out = tmp_path / "M"
    run_import(FIXTURES / kind / "safetensors", out)
    config = export_gives_back(out, tmp_path / "hf", "bert", FIXTURES / kind / "safetensors")
    assert (config["architectures"], config["model_type"]) == ([architecture], "bert")


def test_model_dir_describes_the_pair(tmp_path):
    out = tmp_path / "D" / "models" / "M"
    printed = run_import(FIXTURES / "electra-discriminator" / "bin-legacy", out,
                         generator=FIXTURES / "electra-generator" / "bin-legacy")
    hparams = json.loads((out / "pretrain_hparams.json").read_text())
    source = json.loads((FIXTURES / "electra-discriminator" / "bin-legacy" /
                         "config.json").read_text())
    gen_source = json.loads((FIXTURES / "electra-generator" / "bin-legacy" /
                             "config.json").read_text())
    assert hparams["generator_hidden_size"] == gen_source["hidden_size"] / source["hidden_size"]
    assert hparams["embedding_size"] == source["embedding_size"]
    assert hparams["vocab_size"] == source["vocab_size"]
    disc = modeling.BertConfig.from_json_file(str(out / "discriminator.json"))
    gen = modeling.BertConfig.from_json_file(str(out / "generator.json"))
    assert (disc.hidden_size, gen.hidden_size) == (source["hidden_size"],
                                                   gen_source["hidden_size"])
    # The official names: exactly one shared embedding table, the generator's own encoder.
    names = dict(tf.train.list_variables(str(out / "electra_model")))
    assert "electra/embeddings/word_embeddings" in names
    assert not any(n.startswith("generator/embeddings/") for n in names)
    assert "generator/embeddings_project/kernel" in names
    assert "global_step" not in names and not any("adam" in n for n in names)
    assert not (out / "checkpoint").exists()  # a start, not a run's resume point
    record = json.loads((out / "hf_import.json").read_text())
    assert [s["path"].rsplit("/", 1)[1] for s in record["sources"]] == [
        "config.json", "vocab.txt", "pytorch_model.bin"] * 2
    assert "--data-dir %s" % (tmp_path / "D") in printed
    # A rerun with the same sources does nothing; the weights stay as they were.
    before = (out / "electra_model.index").stat().st_mtime_ns
    again = run_import(FIXTURES / "electra-discriminator" / "bin-legacy", out,
                       generator=FIXTURES / "electra-generator" / "bin-legacy")
    assert "nothing to do" in again
    assert (out / "electra_model.index").stat().st_mtime_ns == before


# ----------------------------------------------------------------------------- pickles

class _Payload(object):
    """Unpickled by `pickle`, this runs `touch <marker>`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch %s" % self.marker,))


def _legacy_file(body):
    return b"".join([pickle.dumps(torch_pickle.LEGACY_MAGIC, protocol=2),
                     pickle.dumps(torch_pickle.LEGACY_PROTOCOL, protocol=2),
                     pickle.dumps({"little_endian": True}, protocol=2), body,
                     pickle.dumps([], protocol=2)])


def _zip_file(body):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", body)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_pickle_naming_a_foreign_global_is_refused_and_nothing_runs(layout, tmp_path):
    marker = tmp_path / "ran"
    body = pickle.dumps({"electra.embeddings.word_embeddings.weight": _Payload(marker)},
                        protocol=2)
    pickle.loads(body)  # the payload is live: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    hf_dir = tmp_path / "hf"
    shutil.copytree(str(FIXTURES / "electra-discriminator" / "bin-zip"), str(hf_dir))
    data = _zip_file(body) if layout == "zip" else _legacy_file(body)
    (hf_dir / "pytorch_model.bin").write_bytes(data)
    with pytest.raises(InputError) as err:
        import_hf.import_hf(str(hf_dir), str(tmp_path / "out"))
    assert "posix.system" in str(err.value) or "os.system" in str(err.value)
    assert "refused, nothing of the file was run" in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_torch_reader_reads_every_tensor_of_both_layouts_exactly():
    for kind in ("electra-discriminator", "bert-mlm"):
        reference = hf_weights.read_safetensors(str(FIXTURES / kind / "safetensors" /
                                                    "model.safetensors"))
        for layout in ("bin-zip", "bin-legacy"):
            path = FIXTURES / kind / layout / "pytorch_model.bin"
            arrays = torch_pickle.load_state_dict(path.read_bytes(), str(path))
            renamed = import_hf.normalise_names(arrays, kind.split("-")[0])
            for name, array in reference.items():
                np.testing.assert_array_equal(renamed[name], array, err_msg=(layout, name))


def test_bfloat16_safetensors_read_as_float32_and_float16_as_is(tmp_path):
    values = np.array([[1.5, -2.25], [2.0 ** -7, 3.0 * 2 ** 10]], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact: 8-bit mantissas
    header = {"a": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
              "b": {"dtype": "F16", "shape": [2, 2], "data_offsets": [8, 16]}}
    text = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bf16.tobytes()
                     + values.astype(np.float16).tobytes())
    arrays = hf_weights.read_safetensors(str(path))
    np.testing.assert_array_equal(arrays["a"], values)
    assert arrays["a"].dtype == np.float32
    np.testing.assert_array_equal(arrays["b"], values.astype(np.float16))
    assert arrays["b"].dtype == np.float16  # the importer casts it to float32 itself
    # Offsets outside the data, or fewer bytes than the shape needs: named errors.
    for offsets in ([-8, 16], [8, 24], [0, 4]):
        bad = dict(header, b=dict(header["b"], data_offsets=offsets))
        text = json.dumps(bad).encode()
        path.write_bytes(struct.pack("<Q", len(text)) + text + bf16.tobytes()
                         + values.astype(np.float16).tobytes())
        with pytest.raises(InputError) as err:
            hf_weights.read_safetensors(str(path))
        assert "tensor b cannot be read" in str(err.value), offsets


def torch_zip(tensor_args, numel=4, persistent=None, tmp=None):
    """A torch zip file made without torch: {"w": _rebuild_tensor_v2(storage, *tensor_args)}
    over a float32 storage holding 0, 1, ..., numel - 1 (persistent: another persistent id
    for the storage). Module stand-ins let pickle name torch's globals."""
    import collections
    import sys
    import types
    torch_module, utils_module = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage(object):
        pass

    def _rebuild_tensor_v2(*args):
        pass
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch_module.FloatStorage, utils_module._rebuild_tensor_v2 = (FloatStorage,
                                                                  _rebuild_tensor_v2)

    class Storage(object):
        pass

    class Tensor(object):
        def __reduce__(self):
            return (_rebuild_tensor_v2, (Storage(),) + tuple(tensor_args)
                    + (False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return persistent or ("storage", FloatStorage, "0", "cpu", numel)
            return None
    buffer = io.BytesIO()
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch_module, "torch._utils": utils_module})
    try:
        Pickler(buffer, protocol=2).dump({"w": Tensor()})
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/data.pkl", buffer.getvalue())
        z.writestr("archive/data/0", np.arange(numel, dtype=np.float32).tobytes())
    return archive.getvalue()


def test_hand_made_torch_file_reads():
    """The maker of the hostile files below makes readable files when the tensor fits."""
    arrays = torch_pickle.load_state_dict(torch_zip((1, (2,), (1,))), "w.bin")
    np.testing.assert_array_equal(arrays["w"], [1.0, 2.0])


@pytest.mark.parametrize("tensor_args, problem", [
    ((3, (8,), (-1,)), "negative"),  # would read before the storage
    ((0, (1000, 1000), (0, 0)), "does not fit"),  # 4 values made a million
    ((2, (4,), (1,)), "does not fit"),  # past the end
])
def test_tensor_outside_its_storage_is_refused(tensor_args, problem):
    with pytest.raises(InputError) as err:
        torch_pickle.load_state_dict(torch_zip(tensor_args), "w.bin")
    assert problem in str(err.value) and "w.bin" in str(err.value)


def test_storage_reference_of_another_kind_is_refused():
    with pytest.raises(InputError) as err:
        torch_pickle.load_state_dict(torch_zip((0, (2,), (1,)), persistent=("module", "os")),
                                     "w.bin")
    assert "unexpected persistent id" in str(err.value)


def test_pickle_setting_a_stand_ins_state_is_refused_and_changes_nothing():
    """BUILD on the FloatStorage stand-in (to make later files read as int8) is refused,
    and the next file reads as before."""
    hostile = (b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x04\x00\x00\x00"
               b"int8sb.")
    with pytest.raises(InputError) as err:
        torch_pickle.load_state_dict(hostile, "h.bin")
    assert "sets the state of a _StorageType" in str(err.value)
    path = FIXTURES / "torch-views" / "zip.bin"
    arrays = torch_pickle.load_state_dict(path.read_bytes(), str(path))
    assert arrays["offset"].dtype == np.float32
    np.testing.assert_array_equal(arrays["offset"][0], np.arange(6, 12, dtype=np.float32))


def test_tied_tensor_that_differs_is_refused(tmp_path):
    gen = copy_fixture(tmp_path, "electra-generator")
    rewrite_safetensors(gen / "model.safetensors", lambda a: a.update(
        {"generator_lm_head.weight": a["electra.embeddings.word_embeddings.weight"] + 1}))
    message = import_error(FIXTURES / "electra-discriminator" / "safetensors",
                           tmp_path / "o", generator=gen)
    assert "generator_lm_head.weight differs from electra.embeddings.word_embeddings" \
        in message


def test_index_and_shards_that_disagree_are_refused(tmp_path):
    hf_dir = copy_fixture(tmp_path, "electra-discriminator", "sharded")
    index = hf_dir / "model.safetensors.index.json"
    content = json.loads(index.read_text())
    content["weight_map"]["electra.encoder.layer.9.output.dense.bias"] = \
        "model-00001-of-00005.safetensors"
    index.write_text(json.dumps(content))
    assert "disagree on 1 tensors (e.g. electra.encoder.layer.9.output.dense.bias)" in \
        import_error(hf_dir, tmp_path / "o")
    content["weight_map"]["electra.encoder.layer.9.output.dense.bias"] = "../elsewhere"
    index.write_text(json.dumps(content))
    assert "shards are files beside the index" in import_error(hf_dir, tmp_path / "o")


def test_h5_listing_a_weight_twice_with_other_values_is_refused(tmp_path):
    import h5py
    path = tmp_path / "tf_model.h5"
    with h5py.File(str(path), "w") as f:
        f.attrs["layer_names"] = [b"electra", b"head"]
        for layer, value in (("electra", 1.0), ("head", 2.0)):
            name = "tf_electra/electra/embeddings/word_embeddings/weight:0"
            group = f.require_group(layer)
            group.attrs["weight_names"] = [name.encode()]
            group[name] = np.full((2, 2), value, np.float32)
    with pytest.raises(InputError) as err:
        hf_weights.read_h5(str(path))
    assert "lists electra.embeddings.word_embeddings.weight twice" in str(err.value)


# ----------------------------------------------------------------------------- errors

def copy_fixture(tmp_path, kind, fmt="safetensors"):
    target = tmp_path / ("%s-%s" % (kind, fmt))
    shutil.copytree(str(FIXTURES / kind / fmt), str(target))
    return target


def rewrite_safetensors(path, change):
    arrays = hf_weights.read_safetensors(str(path))
    change(arrays)
    from safetensors.numpy import save_file
    save_file(arrays, str(path), metadata={"format": "pt"})


def import_error(hf_dir, out, generator=None):
    with pytest.raises(InputError) as err:
        import_hf.import_hf(str(hf_dir), str(out), generator and str(generator))
    return str(err.value)


def test_unknown_tensor_is_named(tmp_path):
    hf_dir = copy_fixture(tmp_path, "electra-discriminator")
    rewrite_safetensors(hf_dir / "model.safetensors", lambda a: a.update(
        {"electra.encoder.layer.2.output.dense.weight": np.zeros((32, 64), np.float32)}))
    message = import_error(hf_dir, tmp_path / "out")
    assert "electra.encoder.layer.2.output.dense.weight" in message
    assert not (tmp_path / "out").exists()


def test_missing_tensor_is_named(tmp_path):
    hf_dir = copy_fixture(tmp_path, "electra-discriminator")
    rewrite_safetensors(hf_dir / "model.safetensors",
                        lambda a: a.pop("electra.encoder.layer.1.intermediate.dense.bias"))
    message = import_error(hf_dir, tmp_path / "out")
    assert "lacks 1 tensors" in message
    assert "electra.encoder.layer.1.intermediate.dense.bias" in message


def test_tensor_of_another_shape_is_named(tmp_path):
    hf_dir = copy_fixture(tmp_path, "electra-discriminator")
    config = json.loads((hf_dir / "config.json").read_text())
    config["intermediate_size"] = 48
    (hf_dir / "config.json").write_text(json.dumps(config))
    message = import_error(hf_dir, tmp_path / "out")
    assert "has shape [64, 32] but" in message and "[48, 32]" in message


def test_generator_with_other_embeddings_is_refused(tmp_path):
    message = import_error(FIXTURES / "electra-discriminator" / "safetensors", tmp_path / "o",
                           generator=FIXTURES / "electra-generator-untied" / "safetensors")
    assert "differs from the discriminator's" in message
    assert "shares one embedding table" in message
    assert not (tmp_path / "o").exists()


def test_generator_given_as_discriminator_is_refused(tmp_path):
    message = import_error(FIXTURES / "electra-generator" / "safetensors", tmp_path / "o")
    assert "pass the discriminator as HF_DIR and this dir with --generator" in message


def test_out_dir_with_a_trained_model_is_never_replaced(tmp_path):
    out = tmp_path / "M"
    out.mkdir()
    (out / "model.ckpt-100.index").write_bytes(b"trained")
    message = import_error(FIXTURES / "electra-discriminator" / "safetensors", out)
    assert "is not empty (checkpoints model.ckpt-100.index)" in message
    assert (out / "model.ckpt-100.index").read_bytes() == b"trained"
    # A model dir without checkpoints of its own (fine-tuned trials, results) likewise.
    other = tmp_path / "N"
    (other / "finetuning_models").mkdir(parents=True)
    (other / "vocab.txt").write_text("mine")
    message = import_error(FIXTURES / "electra-discriminator" / "safetensors", other)
    assert "is not empty (finetuning_models, vocab.txt)" in message
    assert (other / "vocab.txt").read_text() == "mine"
    assert sorted(p.name for p in other.iterdir()) == ["finetuning_models", "vocab.txt"]


@pytest.mark.parametrize("target", ["dir", "file"])
def test_hf_model_where_a_checkpoint_is_expected_names_the_import(target):
    hf_dir = FIXTURES / "electra-discriminator" / "bin-zip"
    path = hf_dir if target == "dir" else hf_dir / "pytorch_model.bin"
    with pytest.raises(InputError) as err:
        checkpoints.find_checkpoint(str(hf_dir) if target == "dir" else "", str(path))
    assert "is a Hugging Face model" in str(err.value)
    assert "scripts/import_hf.py" in str(err.value)


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_torch_reader_follows_offsets_and_strides(layout):
    """torch.save'd views of one storage (tests/fixtures/hf/torch-views)."""
    path = FIXTURES / "torch-views" / ("%s.bin" % layout)
    arrays = torch_pickle.load_state_dict(path.read_bytes(), str(path))
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.testing.assert_array_equal(arrays["offset"], base[1:])
    np.testing.assert_array_equal(arrays["transposed"], base.T)
    np.testing.assert_array_equal(arrays["column"], base[:, 2])
    np.testing.assert_array_equal(arrays["half"], base.astype(np.float16)[2])
    assert arrays["half"].dtype == np.float16


def test_the_checkpoint_a_model_dir_starts_from(tmp_path):
    """A released or imported checkpoint (any name but model.ckpt-N) is where a first run
    starts; several are ambiguous; a run's own checkpoints are not starting points."""
    assert checkpoints.starting_checkpoint(str(tmp_path / "none")) is None
    (tmp_path / "model.ckpt-5.index").write_bytes(b"")
    assert checkpoints.starting_checkpoint(str(tmp_path)) is None
    (tmp_path / "electra_small.index").write_bytes(b"")
    assert checkpoints.starting_checkpoint(str(tmp_path)) == str(tmp_path / "electra_small")
    (tmp_path / "bert_model.ckpt.index").write_bytes(b"")
    with pytest.raises(InputError) as err:
        checkpoints.starting_checkpoint(str(tmp_path))
    assert "several checkpoints to start from (bert_model.ckpt, electra_small)" in str(err.value)


def test_bert_export_of_a_projected_embedding_is_refused(tmp_path, capsys):
    """HF's BERT has no embedding projection: a BERT-MLM checkpoint with embedding_size !=
    hidden_size goes out as ElectraForMaskedLM instead."""
    out = tmp_path / "M"
    run_import(FIXTURES / "bert-mlm" / "safetensors", out)
    config = json.loads((out / "discriminator.json").read_text())
    (out / "discriminator.json").write_text(json.dumps(dict(config, embedding_size=16)))
    assert export_hf.main([str(out), str(tmp_path / "hf"), "--component", "bert"]) == 2
    assert "HF's BERT has no embedding projection" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()
