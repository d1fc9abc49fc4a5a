"""Naming the damaged file when TensorFlow reports a damaged tfrecord.

A truncated or corrupted TFRecord file stops training with `DataLossError: truncated record
at 174069` (or `corrupted record at ...`) and a long traceback that names no file: the
input pipeline interleaves many files. On that error (only then: reading every file up
front would cost minutes on a large corpus in a bucket) each file is read through until
the damaged one is found, and the run stops with one message naming it.
"""

import contextlib

import tensorflow.compat.v1 as tf

from util.errors import InputError


def _reason(message):
    """The line of a TF error message that says what is wrong with the record."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    found = [line for line in lines if "record at" in line]
    return (found or lines or ["?"])[0]


def find_damaged(paths):
    """(path, records read before the damage, TF's reason) of the first damaged file, or
    None if every file reads through."""
    for path in paths:
        count = 0
        try:
            for _ in tf.io.tf_record_iterator(path):
                count += 1
        except tf.errors.DataLossError as e:
            return path, count, _reason(e.message)
    return None


@contextlib.contextmanager
def name_damaged_file(paths, remedy):
    """Turns a DataLossError raised in the body into an InputError naming the damaged file
    among paths (and how to fix it: remedy). Re-raises if no file is found damaged."""
    try:
        yield
    except tf.errors.DataLossError as e:
        print("a tfrecord file is damaged (%s): looking for it among %d file(s)"
              % (_reason(e.message)[:200], len(paths)), flush=True)
        damaged = find_damaged(paths)
        if damaged is None:
            raise
        path, count, reason = damaged
        raise InputError("%s is damaged after its first %d records (%s): %s"
                         % (path, count, reason, remedy))
