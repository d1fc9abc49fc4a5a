"""File writes that never leave a half-written file behind, on any file system."""

import json
import os
import shutil
import tempfile
import uuid

from util import fs


def atomic_write(path, write):
    """Calls write(tmp_path) for a temporary file beside path, then renames it to path.

    write must write through util.fs / tf.io.gfile (tmp_path may be gs:// or ram://).
    Readers never see a half-written file, and a failure leaves the old file as it was:
      - local disk and ram://: the rename is atomic.
      - gs://: there is no atomic rename (it is a server-side copy, then a delete), but a
        GCS object appears atomically once complete, so readers see the old object or the
        whole new one. Writing straight to path would be just as atomic for readers, but a
        gfile writer uploads whatever it holds when it is closed, also on an exception, so
        a write that fails half-way would replace the old file with half a new one; hence
        the temporary name here too. A kill between the copy and the delete leaves a stray
        .tmp object beside path, nothing worse.
    """
    path = fs.abspath(path)
    directory = fs.dirname(path)
    fs.makedirs(directory)
    if fs.is_local(path):  # mkstemp: a unique name no other process can take
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=directory)
        os.close(fd)
    else:
        tmp = fs.join(directory, ".%s.%s.tmp" % (fs.basename(path), uuid.uuid4().hex))
    try:
        write(tmp)
        fs.rename(tmp, path, overwrite=True)
    except BaseException:
        fs.remove(tmp, missing_ok=True)
        raise


def atomic_write_bytes(path, data):
    """Writes bytes to path atomically (synced to a local disk before the rename)."""
    def write(tmp):
        if fs.is_local(tmp):
            with open(tmp, "wb") as f:  # a local temp file: fsync needs a real descriptor
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        else:
            fs.write_bytes(tmp, data)
    atomic_write(path, write)


def atomic_write_text(path, text):
    """Writes text (UTF-8) to path atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def atomic_copy(src, dst):
    """Copies src (any file system) to dst atomically."""
    atomic_write(dst, lambda tmp: fs.copy(src, tmp, overwrite=True))


def format_duration(seconds):
    """12345 -> '3h25m45s'; 75 -> '1m15s'; 9.2 -> '9s'."""
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh%02dm%02ds" % (hours, minutes, secs)
    if minutes:
        return "%dm%02ds" % (minutes, secs)
    return "%ds" % secs


def format_eta(done, total, elapsed):
    """Time left at the rate so far: '0s' once done >= total, '?' before any progress."""
    if done >= total:
        return "0s"
    if done <= 0:
        return "?"
    return format_duration(elapsed * (total - done) / done)


def check_writable_dir(path, what, min_free_bytes=50 * 2 ** 20):
    """Creates path if needed and proves it can be written, with room to spare.

    Called before training starts, so an unwritable or full disk (or a bucket the job may
    not write) is an error naming the directory, not a crash at the first checkpoint an hour
    later. Free space is checked on a local disk only; on other file systems (gs://, ram://)
    a small probe file is written and deleted instead.
    """
    from util.errors import InputError
    probe = fs.join(path, ".write_probe_%s" % uuid.uuid4().hex)
    try:
        fs.makedirs(path)
        if not fs.isdir(path):  # ram:// "creates" a directory below a file without error
            blocker = fs.file_in_the_way(path)
            raise InputError("cannot write to the %s %s: it cannot be created%s" % (
                what, path, " (%s is a file)" % blocker if blocker else ""))
        fs.write_bytes(probe, b"probe")
        fs.remove(probe)
    except fs.errors() as e:
        raise InputError("cannot write to the %s %s: %s" % (what, path, fs.error_text(e)))
    if not fs.is_local(path):
        return
    free = shutil.disk_usage(path).free
    if free < min_free_bytes:
        raise InputError("only %.0f MB free on the disk of the %s %s; free some space "
                         "(at least %.0f MB) first" % (free / 2 ** 20, what, path,
                                                       min_free_bytes / 2 ** 20))

