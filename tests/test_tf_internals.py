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


def test_the_summary_and_saver_hooks_keep_the_members_util_summaries_uses(tmp_path):
    """util/summaries.py subclasses TF's CheckpointSaverHook (its begin, with a writer that
    writes the graph once per run) and SummarySaverHook (its before_run, to log the last
    step too) through these members; a release that renames one fails here."""
    import tensorflow.compat.v1 as tf
    from tensorflow.python.training import training_util
    from util import summaries
    assert callable(training_util._get_or_create_global_step_read)
    with tf.Graph().as_default():
        tf.train.create_global_step()
        tf.summary.scalar("x", tf.constant(1.0))
        saver = tf.train.CheckpointSaverHook(str(tmp_path), save_steps=1,
                                             listeners=[tf.train.CheckpointSaverListener()])
        saver.begin()  # what summaries.CheckpointSaverHook.begin sets instead
        assert isinstance(saver._listeners, list) and saver._summary_writer is not None
        assert saver._global_step_tensor is not None
        scaffold = tf.train.Scaffold()
        hook = summaries.SummarySaverHook(5, save_steps=2, output_dir=str(tmp_path),
                                          scaffold=scaffold)
        hook.begin()
        scaffold.finalize()  # (as the session's creation does, after the hooks' begin)
        assert hook._next_step is None and hook._get_summary_op() is not None
        hook._next_step, hook._timer = 5, tf.train.SecondOrStepTimer(every_steps=100)
        hook._timer.update_last_triggered_step(4)
        args = hook.before_run(None)
        assert hook._request_summary and "summary" in args.fetches
