"""The output shards: names, the jobs' length-prefixed `.tmp` files, and their commit as
TFRecord files into --output-dir on any file system.

No TensorFlow at import: the job processes write `.tmp` shards through ShardWriter, always to a
local directory (--output-dir itself if it is local, else a local work dir: ram:// exists only
inside one process and the jobs never import TensorFlow); only the parent imports it, in
commit_shards, which writes the TFRecord files where they belong.
"""

import glob
import os
import struct

from util import fs
from util.shard_names import EVAL_PREFIX
from util.shard_names import TRAINING_PREFIX as OUTPUT_PREFIX


def shard_path(output_dir, index, num_out_files, prefix=OUTPUT_PREFIX):
    """Path of output shard `index` of `num_out_files`."""
    name = "%s-%d-of-%d" % (prefix, index, num_out_files)
    return os.path.join(output_dir, name)


def job_shards(job_id, num_processes, num_out_files):
    """Indices of the shards written by job `job_id`."""
    return [i for i in range(num_out_files) if i % num_processes == job_id]


def existing_outputs(output_dir):
    """Paths of files in `output_dir` (any file system) that look like our output shards
    (training or held-out: an old build's held-out shards must not outlive it)."""
    prefixes = (OUTPUT_PREFIX, EVAL_PREFIX)
    if fs.is_local(output_dir):
        return sorted(path for prefix in prefixes for path in glob.glob(
            os.path.join(glob.escape(output_dir), prefix + "*")) if os.path.isfile(path))
    try:
        names = fs.listdir(output_dir)
    except fs.errors():  # no such directory (yet)
        return []
    # Listed names, not isdir: ram:// takes a name that begins another file's name for a
    # directory, and a bucket has no real directories.
    return [fs.join(output_dir, name) for name in names if name.startswith(prefixes)]


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

    def __init__(self, output_dir, job_id, num_processes, num_out_files, prefix=OUTPUT_PREFIX):
        self.tmp_paths = [
            shard_path(output_dir, i, num_out_files, prefix) + ".tmp"
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


def commit_shards(shard_dir, output_dir, num_out_files, prefix=OUTPUT_PREFIX):
    """Write the jobs' `.tmp` shards (in the local shard_dir) as TFRecord files with their
    final names in output_dir (any file system).

    Every shard is written as `.part` first and only then are all renamed, so a failure
    (e.g. a full disk) leaves no final shard behind. A rename is atomic on a local disk and
    on ram://; on gs:// it is a copy and a delete per object, and readers still never see a
    partial shard because a GCS object appears only once whole.
    """
    from util.quiet_tf import import_tensorflow
    tf = import_tensorflow().compat.v1  # only here: see ShardWriter

    parts = []
    try:
        for index in range(num_out_files):
            part = shard_path(output_dir, index, num_out_files, prefix) + ".part"
            parts.append(part)
            with tf.io.TFRecordWriter(part) as writer:
                for record in read_records(shard_path(shard_dir, index, num_out_files, prefix)
                                           + ".tmp"):
                    writer.write(record)
        for part in parts:
            fs.rename(part, part[:-len(".part")], overwrite=True)
    except BaseException:
        for part in parts:
            fs.remove(part, missing_ok=True)
        raise


def discard_shards(shard_dir, num_out_files, prefix=OUTPUT_PREFIX):
    """Delete any `.tmp` shards of this run (local files)."""
    remove_files(shard_path(shard_dir, i, num_out_files, prefix) + ".tmp"
                 for i in range(num_out_files))
