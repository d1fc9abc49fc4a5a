"""File writes that never leave a half-written file behind."""

import json
import os
import shutil
import tempfile


def atomic_write(path, write):
    """Calls write(tmp_path) for a temporary file beside path, then renames it to path.

    Readers never see a half-written file, and a failure leaves the old file as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text):
    """Writes text (UTF-8) to path atomically, synced to disk before the rename."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    atomic_write(path, write)


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


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

    Called before training starts, so an unwritable or full disk is an error naming the
    directory, not a crash at the first checkpoint an hour later.
    """
    from util.errors import InputError
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_probe", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise InputError("cannot write to the %s %s: %s" % (what, path, e.strerror or e))
    free = shutil.disk_usage(path).free
    if free < min_free_bytes:
        raise InputError("only %.0f MB free on the disk of the %s %s; free some space "
                         "(at least %.0f MB) first" % (free / 2 ** 20, what, path,
                                                       min_free_bytes / 2 ** 20))
