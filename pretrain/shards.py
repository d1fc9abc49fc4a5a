"""The output shards: names, the jobs' length-prefixed `.tmp` files, and their commit as
TFRecord files.

No TensorFlow at import: the job processes write `.tmp` shards through ShardWriter; only the
parent imports it, in commit_shards.
"""

import glob
import os
import struct

OUTPUT_PREFIX = "pretrain_data.tfrecord"


def shard_path(output_dir, index, num_out_files):
    """Path of output shard `index` of `num_out_files`."""
    name = "%s-%d-of-%d" % (OUTPUT_PREFIX, index, num_out_files)
    return os.path.join(output_dir, name)


def job_shards(job_id, num_processes, num_out_files):
    """Indices of the shards written by job `job_id`."""
    return [i for i in range(num_out_files) if i % num_processes == job_id]


def existing_outputs(output_dir):
    """Paths of files in `output_dir` that look like our output shards."""
    pattern = os.path.join(glob.escape(output_dir), OUTPUT_PREFIX + "*")
    return sorted(path for path in glob.glob(pattern) if os.path.isfile(path))


# Framing of the records in a `.tmp` shard: little-endian length, bytes.
_RECORD_LENGTH = struct.Struct("<Q")


class ShardWriter(object):
    """Round-robins examples over one job's shards, written as `.tmp` files.

    The `.tmp` files hold length-prefixed records; once every job has
    succeeded the parent writes them out as TFRecord files (see
    `commit_shards`). Jobs thus never import TensorFlow, whose ~3 s start-up
    per process would outweigh the fast path's work on a corpus of many MB.
    On an exception inside the `with` block the `.tmp` files are removed, so
    a failed job leaves nothing behind.
    """

    def __init__(self, output_dir, job_id, num_processes, num_out_files):
        self.tmp_paths = [
            shard_path(output_dir, i, num_out_files) + ".tmp"
            for i in job_shards(job_id, num_processes, num_out_files)
        ]
        self._writers = []
        self._num_written = 0

    def __enter__(self):
        try:
            for path in self.tmp_paths:
                self._writers.append(open(path, "wb"))
        except BaseException:
            self._close(remove=True)
            raise
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        self._close(remove=exc_type is not None)
        return False

    def write(self, serialized):
        """Append one serialized example to the next shard in turn."""
        writer = self._writers[self._num_written % len(self._writers)]
        writer.write(_RECORD_LENGTH.pack(len(serialized)))
        writer.write(serialized)
        self._num_written += 1

    def _close(self, remove):
        """Close every writer; delete the `.tmp` files if `remove`."""
        for writer in self._writers:
            writer.close()
        self._writers = []
        if remove:
            remove_files(self.tmp_paths)


def read_records(path):
    """Yield the records of a `.tmp` shard written by ShardWriter."""
    with open(path, "rb") as reader:
        while True:
            header = reader.read(_RECORD_LENGTH.size)
            if not header:
                return
            (length,) = _RECORD_LENGTH.unpack(header)
            yield reader.read(length)


def remove_files(paths):
    """Delete the files in `paths` that exist."""
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def commit_shards(output_dir, num_out_files):
    """Write the jobs' `.tmp` shards as TFRecord files with their final names.

    Every shard is written as `.part` first and only then are all renamed,
    so a failure (e.g. a full disk) leaves no final shard behind.
    """
    import tensorflow.compat.v1 as tf  # only here: see ShardWriter

    paths = [shard_path(output_dir, index, num_out_files)
             for index in range(num_out_files)]
    for path in paths:
        with tf.io.TFRecordWriter(path + ".part") as writer:
            for record in read_records(path + ".tmp"):
                writer.write(record)
    for path in paths:
        os.replace(path + ".part", path)


def discard_shards(output_dir, num_out_files):
    """Delete any `.tmp` and `.part` shards of this run."""
    remove_files(shard_path(output_dir, i, num_out_files) + suffix
                 for i in range(num_out_files)
                 for suffix in (".tmp", ".part"))
