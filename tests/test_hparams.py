"""--hparams parsing and checking (util/hparams.py, configure_pretraining.py)."""

import re

import pytest

import configure_pretraining
from util.errors import InputError
from util.hparams import load_hparams

# The seed README's params_cmrc2018.json example, as printed there (note the trailing comma).
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


def test_readme_documents_every_pretraining_hparam():
    from tests.conftest import REPO
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \|", readme, re.M))
    config = configure_pretraining.PretrainingConfig("m", "/d")
    missing = set(config.to_dict()) - documented - {"max_predictions_per_seq"}
    assert not missing, "hparams missing from README.md: %s" % sorted(missing)


def test_readme_documents_every_finetuning_hparam():
    from configure_finetuning import FinetuningConfig
    from tests.conftest import REPO
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Fine-tuning hparams"):]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
    derived = {"pretrained_model_dir", "results_dir", "preprocessed_data_dir", "inherited_shape"}
    missing = set(FinetuningConfig("m", "/d").to_dict()) - documented - derived
    assert not missing, "fine-tuning hparams missing from README.md: %s" % sorted(missing)


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
