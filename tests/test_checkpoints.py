"""util.checkpoints.find_checkpoint: the one rule every tool uses to pick a checkpoint."""

import pytest

from util.checkpoints import find_checkpoint
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
