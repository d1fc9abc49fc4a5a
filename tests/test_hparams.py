"""--hparams parsing and checking (util/hparams.py, configure_pretraining.py)."""

import json
import re

import pytest

import configure_pretraining
from util.errors import InputError
from util.hparams import load_hparams

# The published Chinese ELECTRA README's params_cmrc2018.json example, as printed there (note the trailing comma).
SEED_EXAMPLE = """{
  "task_names" : [ "cmrc2018" ],
  "max_seq_length" : 512 ,
  "vocab_size" : 21128 ,
  "model_size" : "small" ,
  "do_train" : true ,
  "do_eval" : true ,
  "write_test_outputs" : true ,
  "num_train_epochs" : 2 ,
  "learning_rate" : 3e-4 ,
  "train_batch_size" : 32 ,
  "eval_batch_size" : 32 ,
}"""


def test_trailing_comma_reports_file_line_and_column(tmp_path):
    path = tmp_path / "params_cmrc2018.json"
    path.write_text(SEED_EXAMPLE)
    with pytest.raises(InputError) as err:
        load_hparams(str(path))
    message = str(err.value)
    assert message.startswith("%s:13:1: invalid JSON" % path)
    assert "trailing comma" in message


def test_inline_json_error_names_hparams_flag():
    with pytest.raises(InputError, match=r"^--hparams:1:\d+: invalid JSON"):
        load_hparams('{"learning_rate": 1e-4')


def test_key_given_twice_is_refused_with_its_lines(tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{\n  "learning_rate": 3e-4,\n  "task_names": ["chnsenticorp"],\n'
                    '  "learning_rate": 1e-4\n}\n')
    with pytest.raises(InputError) as err:
        load_hparams(str(path))
    message = str(err.value)
    assert message.startswith("%s: key 'learning_rate' is given twice" % path)
    assert "lines 2, 4" in message
    # The same key in different objects is fine.
    assert load_hparams('{"a": {"x": 1}, "b": {"x": 2}}') == {"a": {"x": 1}, "b": {"x": 2}}


def test_inline_file_and_search_dir(tmp_path):
    assert load_hparams('{"a": 1}') == {"a": 1}
    params_dir = tmp_path / "params"
    params_dir.mkdir()
    (params_dir / "params_x.json").write_text('{"b": 2}')
    assert load_hparams(str(params_dir / "params_x.json")) == {"b": 2}
    assert load_hparams("params_x.json", search_dirs=[str(params_dir)]) == {"b": 2}
    assert load_hparams("params_x", search_dirs=[str(params_dir)]) == {"b": 2}
    assert load_hparams(None) == {} and load_hparams("  ") == {}


def test_missing_file_and_non_object():
    with pytest.raises(InputError, match="neither a JSON object nor an existing file"):
        load_hparams("no_such_params.json")
    with pytest.raises(InputError, match="expected a JSON object"):
        load_hparams("[1, 2]")


def test_unknown_key_suggests_closest_names():
    with pytest.raises(InputError) as err:
        configure_pretraining.PretrainingConfig("m", "/d", learnig_rate=1e-4)
    assert "unknown key 'learnig_rate'" in str(err.value)
    assert "'learning_rate'" in str(err.value)


def test_wrong_value_type_is_rejected_and_ints_pass_as_floats():
    with pytest.raises(InputError, match="'num_train_steps' should be a int"):
        configure_pretraining.PretrainingConfig("m", "/d", num_train_steps="100")
    with pytest.raises(InputError, match="'do_eval' should be a bool"):
        configure_pretraining.PretrainingConfig("m", "/d", do_eval=1)
    config = configure_pretraining.PretrainingConfig("m", "/d", learning_rate=1)
    assert isinstance(config.learning_rate, float)


def test_derived_and_debug_settings():
    config = configure_pretraining.PretrainingConfig("m", "/d", max_seq_length=512)
    assert config.max_predictions_per_seq == int((0.15 + 0.005) * 512)
    debug = configure_pretraining.PretrainingConfig("m", "/d", debug=True, num_train_steps=7)
    assert debug.train_batch_size == 8 and debug.num_train_steps == 7
    with pytest.raises(InputError, match="max_predictions_per_seq is derived"):
        configure_pretraining.PretrainingConfig("m", "/d", max_predictions_per_seq=3)
    with pytest.raises(InputError, match="mask_prob"):
        configure_pretraining.PretrainingConfig("m", "/d", mask_prob=1.5)
    assert configure_pretraining.PretrainingConfig("m", "/d", model_size="small-ex")\
        .model_size == "small_ex"


def test_masking_choices_and_combinations():
    assert configure_pretraining.PretrainingConfig("m", "/d").masking == "distinct"
    with pytest.raises(InputError, match="masking must be one of distinct, official"):
        configure_pretraining.PretrainingConfig("m", "/d", masking="google")
    with pytest.raises(InputError, match="whole_word_masking.*per_example_randomness"):
        configure_pretraining.PretrainingConfig("m", "/d", masking="official",
                                                whole_word_masking=True)
    with pytest.raises(InputError, match="shuffle_buffer_size must be >= 1"):
        configure_pretraining.PretrainingConfig("m", "/d", shuffle_buffer_size=0)


def _settable_keys(config_class):
    """The keys --hparams accepts (every default the class takes back as an hparam), and
    the constructor's model_name and data_dir (--model-name, --data-dir)."""
    import inspect
    config = config_class("m", "/d")
    keys = set(inspect.signature(config_class).parameters) & set(config.to_dict())
    for key, value in config.to_dict().items():
        if key in keys:
            continue
        try:
            config_class("m", "/d", **{key: value})
        except InputError:
            continue  # derived (max_predictions_per_seq) or not an hparam (results_dir, ...)
        keys.add(key)
    return keys


def test_committed_hparam_reference_is_current():
    """docs/hparams.md is what scripts/hparam_reference.py makes of configure_*.py now."""
    from scripts import hparam_reference
    from tests.conftest import REPO
    committed = (REPO / "docs" / "hparams.md").read_text(encoding="utf-8")
    assert committed == hparam_reference.render(), \
        "docs/hparams.md is stale: run `%s`" % hparam_reference.COMMAND
    assert hparam_reference.main(["--check"]) == 0
    links = re.findall(r"\]\(([\w.-]+\.md)\)", committed)  # docs/X.md in a comment
    assert links and all((REPO / "docs" / link).exists() for link in links), links


@pytest.mark.parametrize("module, class_name", [("configure_pretraining", "PretrainingConfig"),
                                                ("configure_finetuning", "FinetuningConfig")])
def test_hparam_reference_documents_every_key(module, class_name):
    import importlib

    from scripts import hparam_reference
    from tests.conftest import REPO
    config_class = getattr(importlib.import_module(module), class_name)
    settable = _settable_keys(config_class)
    assert len(settable) > 50
    _, rows = hparam_reference.parse_hparams(str(REPO / (module + ".py")), class_name)
    assert set(rows) == settable  # the parser reads exactly the keys the class accepts
    text = (REPO / "docs" / "hparams.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    assert settable <= documented, sorted(settable - documented)
    derived = set(config_class("m", "/d").to_dict()) - settable
    assert derived <= {"max_predictions_per_seq", "pretrained_model_dir", "results_dir",
                       "preprocessed_data_dir", "inherited_shape"}, derived
    if "max_predictions_per_seq" in derived:  # said so beside mask_prob
        assert "max_predictions_per_seq = int((mask_prob + 0.005) x max_seq_length)" in text


def _scratch_repo(tmp_path):
    from tests.conftest import REPO
    for name in ("configure_pretraining.py", "configure_finetuning.py"):
        (tmp_path / name).write_text((REPO / name).read_text(encoding="utf-8"),
                                     encoding="utf-8")
    return tmp_path


def _plant(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_check_reports_a_changed_comment_as_stale(tmp_path, capsys):
    from scripts import hparam_reference
    from tests.conftest import REPO
    scratch = _scratch_repo(tmp_path)
    committed = str(REPO / "docs" / "hparams.md")
    assert hparam_reference.main(["--repo", str(scratch), "--check", committed]) == 0
    _plant(scratch / "configure_pretraining.py", "# linear warm-up steps\n",
           "# linear warm-up steps (planted)\n")
    assert hparam_reference.main(["--repo", str(scratch), "--check", committed]) == 1
    out, err = capsys.readouterr()
    assert "+| `num_warmup_steps` | `10000`; `debug`: `2` | linear warm-up steps (planted) |" \
        in out
    assert "-| `num_warmup_steps` | `10000`; `debug`: `2` | linear warm-up steps |" in out
    assert "stale: run `python scripts/hparam_reference.py --write docs/hparams.md`" in err
    # a changed computed default is stale too: it is read from the code, not a comment
    scratch = _scratch_repo(tmp_path)
    _plant(scratch / "configure_finetuning.py", '_default("learning_rate", 5e-5, kwargs)',
           '_default("learning_rate", 4e-5, kwargs)')
    assert hparam_reference.main(["--repo", str(scratch), "--check", committed]) == 1
    assert '`model_size == "large"`: `4e-5`' in capsys.readouterr().out


def test_an_hparam_without_its_comment_fails_naming_the_key(tmp_path, capsys):
    from scripts import hparam_reference
    scratch = _scratch_repo(tmp_path)
    path = scratch / "configure_finetuning.py"
    path.write_text(re.sub(r"(self\.beam_size = \S+)  #.*", r"\1", path.read_text()))
    assert hparam_reference.main(["--repo", str(scratch)]) == 2
    err = capsys.readouterr().err
    assert "configure_finetuning.py:" in err and "hparam 'beam_size' has no comment" in err
    # a continuation line must start under the comment it continues
    scratch = _scratch_repo(tmp_path)
    path = scratch / "configure_pretraining.py"
    lines = path.read_text().split("\n")
    at = next(i for i, line in enumerate(lines) if "self.mask_prob = " in line)
    column = lines[at].index("#")
    lines.insert(at + 1, " " * (column + 2) + "# two columns too far")
    path.write_text("\n".join(lines))
    assert hparam_reference.main(["--repo", str(scratch)]) == 2
    assert "continuing hparam 'mask_prob' must start in column %d" % (column + 1) \
        in capsys.readouterr().err


def test_several_hparams_merge_in_order_later_keys_winning(tmp_path):
    params = tmp_path / "p.json"
    params.write_text('{"learning_rate": 3e-4, "num_train_epochs": 3, '
                      '"model_hparam_overrides": {"hidden_size": 64, "num_hidden_layers": 2}}')
    merged = load_hparams([str(params), '{"num_train_epochs": 10}',
                           '{"model_hparam_overrides": {"num_hidden_layers": 4}}'])
    assert merged == {"learning_rate": 3e-4, "num_train_epochs": 10,
                      "model_hparam_overrides": {"num_hidden_layers": 4}}
    with pytest.raises(InputError, match="--hparams #2:1:25: invalid JSON"):
        load_hparams([str(params), '{"num_train_epochs": 10,}'])


@pytest.mark.parametrize("preset", ["small", "small-ex", "base", "large"])
def test_pretraining_presets_hold_the_published_recipe(preset):
    """params/pretrain_electra_<size>.json against the Chinese ELECTRA README's own sentence
    ("ELECTRA-base : 12 layers, hidden layer 768, 12 attention heads, learning rate 2e-4,
    batch256, maximum length 512, training 1M step"), parsed here, and the size's config."""
    import re
    from tests.conftest import REPO, shared_file
    from model import configs
    text = shared_file("reference", "seeds", "chinese-electra-README.en.txt").read_text(
        encoding="utf-8")
    match = re.search(r"ELECTRA-%s : (\d+) layers, hidden layer (\d+), (\d+) attention heads, "
                      r"learning rate ([\d.e-]+), batch ?(\d+), maximum length (\d+), "
                      r"(?:training )?(\d+)M step" % re.escape(preset), text)
    assert match, preset
    layers, hidden, heads, lr, batch, length, millions = match.groups()
    hparams = json.loads((REPO / "params" / ("pretrain_electra_%s.json" % preset)).read_text())
    config = configure_pretraining.PretrainingConfig("m", "d", **hparams)
    assert (config.learning_rate, config.train_batch_size, config.max_seq_length,
            config.num_train_steps) == (float(lr), int(batch), int(length),
                                        int(millions) * 1000000)
    shape = configs.discriminator_config(config)
    assert (shape.num_hidden_layers, shape.hidden_size, shape.num_attention_heads) == (
        int(layers), int(hidden), int(heads))


@pytest.mark.parametrize("runner", ["run_pretraining", "run_finetuning"])
def test_hparams_may_not_set_what_the_command_line_sets(runner, tmp_path, capsys):
    import importlib
    status = importlib.import_module(runner).main([
        "--data-dir", str(tmp_path), "--model-name", "m", "--hparams", '{"data_dir": "/elsewhere"}'])
    assert status == 2
    assert ("error: --hparams: data_dir is set by --data-dir, not in --hparams (got "
            "'/elsewhere')") in capsys.readouterr().err


@pytest.mark.parametrize("hparams, message", [
    ({"optimizer": "sgd"}, r'optimizer must be one of "adamw", "lamb", got \'sgd\''),
    ({"gradient_accumulation_steps": 0}, r"gradient_accumulation_steps must be an integer "
                                         r">= 1, got 0"),
    ({"gradient_accumulation_steps": 3}, r"train_batch_size 128 does not split into 3 "
                                         r"micro-batches: use a multiple of 3"),
    ({"gradient_accumulation_steps": 2, "use_tpu_estimator": True},
     r"gradient_accumulation_steps 2 needs the CPU/GPU path"),
    ({"init_checkpoint_step": 5}, r"init_checkpoint_step needs init_checkpoint"),
    ({"init_checkpoint": "x", "init_checkpoint_step": "latest"},
     r'init_checkpoint_step must be null, an integer >= 0 or "checkpoint", got \'latest\''),
    ({"init_checkpoint": "x", "init_checkpoint_step": 10, "num_train_steps": 10},
     r"init_checkpoint_step 10 is not below num_train_steps 10"),
])
def test_optimizer_accumulation_and_schedule_start_hparams_are_checked(hparams, message):
    with pytest.raises(InputError, match="^pre-training hparams: " + message):
        configure_pretraining.PretrainingConfig("m", "/tmp/d", **hparams)


def test_a_checkpoint_step_at_or_past_the_end_is_refused(tmp_path):
    import tensorflow.compat.v1 as tf
    import run_pretraining
    prefix = str(tmp_path / "ckpt")
    with tf.Graph().as_default():
        step = tf.Variable(10, dtype=tf.int64, name="global_step")
        with tf.Session() as session:
            session.run(step.initializer)
            tf.train.Saver([step]).save(session, prefix, write_meta_graph=False)
    config = configure_pretraining.PretrainingConfig(
        "m", "/tmp/d", init_checkpoint=prefix, init_checkpoint_step="checkpoint",
        num_train_steps=10)
    with pytest.raises(InputError, match=r"init_checkpoint \S+ckpt is at step 10, not below "
                                         r"num_train_steps 10"):
        run_pretraining.initial_step(config)
    config.num_train_steps = 11
    assert run_pretraining.initial_step(config) == 10
    config.init_checkpoint = prefix + "_gone"
    with pytest.raises(InputError, match=r"init_checkpoint \S+_gone not found"):
        run_pretraining.initial_step(config)
