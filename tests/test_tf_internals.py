"""The private TensorFlow names the toolkit relies on, one test each: a release that drops
or renames one fails here, not quietly in a run."""

from util import training_loop


def test_the_deprecation_switch_is_still_there():
    """util/training_utils.quiet_tensorflow silences the compat.v1 deprecation notices
    through this module flag (no public switch exists); without it the notices come back."""
    from tensorflow.python.util import deprecation
    assert isinstance(deprecation._PRINT_DEPRECATION_WARNINGS, bool)


def test_the_global_step_read_collection_keeps_its_name():
    """The training loop puts the strategy's read of global_step in the collection TF's
    hooks look it up in (the Estimator did the same): a renamed collection would make the
    hooks read the step another way under a strategy."""
    from tensorflow.python.training import training_util
    assert training_util.GLOBAL_STEP_READ_KEY == training_loop.GLOBAL_STEP_READ_KEY
