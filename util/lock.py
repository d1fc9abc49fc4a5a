"""One writer per directory: a lock file naming the run that holds it.

Two runs on one model dir (two terminals, a scheduler's retry) would write checkpoints
over each other. Each runner therefore holds a lock file in the directory it writes,
a small JSON record {"host", "pid", "started", "command", "token"}; a second run finds
it and stops with a message naming the first.

A lock is stale when its run died without removing it (SIGKILL, a lost machine). One
left by a dead process of this host is broken automatically (with a note); on another
host we cannot tell, so the message says how to delete the file once that run is known
to be gone. Local disks create the file exclusively (O_EXCL). Buckets (gs://) have no
exclusive create through tf.io.gfile: the lock is written, then read back after a short
pause, and only the run whose token is there goes on; two runs starting within that
pause of each other on different hosts are the remaining (narrow) race.
"""

import contextlib
import datetime
import errno
import json
import os
import socket
import sys
import time
import uuid

from util import fs
from util.errors import InputError
from util.io import check_writable_dir

BUCKET_SETTLE_SECONDS = 1.0  # gs:// read-back pause: another host's write lands meanwhile


def _record():
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])[:300],
            "token": uuid.uuid4().hex}


def _read(path):
    """The lock's record, or None if there is none (or it is unreadable: half-written)."""
    try:
        return json.loads(fs.read_text(path))
    except (ValueError,) + fs.errors():  # UnicodeDecodeError is a ValueError
        return None


def _process_alive(pid):
    """True if pid is a running process of this host (a zombie, killed but not yet reaped
    by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): trust kill
        return True


def is_stale(record):
    """True when the lock's run is known to be gone: a dead process of this host."""
    return (record.get("host") == socket.gethostname()
            and isinstance(record.get("pid"), int) and not _process_alive(record["pid"]))


def _refuse(path, record, what):
    """what: "model dir D/models/m" (what the lock guards)."""
    raise InputError(
        "the %s is in use by another run (host %s, pid %s, started %s: %s); wait for it to "
        "finish or stop it. If that run is gone (its machine was lost), delete the lock "
        "file and rerun: rm %s (gsutil rm for a bucket)"
        % (what, record.get("host"), record.get("pid"), record.get("started"),
           record.get("command"), path))


def _create(path, record):
    """Writes the record if no lock exists; False if another run's lock is there."""
    text = json.dumps(record, indent=2) + "\n"
    if fs.is_local(path):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            if e.errno == errno.EEXIST:
                return False
            raise
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return True
    if fs.exists(path):
        return False
    fs.write_text(path, text)
    time.sleep(BUCKET_SETTLE_SECONDS)
    mine = _read(path)
    return mine is not None and mine.get("token") == record["token"]


def _create_or_refuse_unwritable(directory, path, record, what):
    try:
        return _create(path, record)
    except fs.errors() as e:
        raise InputError("cannot write to the %s %s: %s" % (what, directory,
                                                            fs.error_text(e)))


def _first_missing(directory):
    """The outermost of directory and its parents that does not exist yet (or None)."""
    missing = None
    while directory and not fs.isdir(directory):
        missing, parent = directory, fs.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return missing


@contextlib.contextmanager
def hold(directory, what, name=".lock"):
    """Holds directory/name for the body's duration; InputError if another run holds it.

    what: what the directory is, for messages ("model dir").
    """
    path = fs.join(directory, name)
    created = _first_missing(directory)
    check_writable_dir(directory, "model dir")  # creates it, or names what is in the way
    record = _record()
    while not _create_or_refuse_unwritable(directory, path, record, what):
        other = _read(path)
        if other is None:  # half-written or just removed: look again
            time.sleep(0.2)
            other = _read(path)
            if other is None:
                if not fs.exists(path):
                    continue
                other = {}
        if not is_stale(other):
            _refuse(path, other, "%s %s" % (what, directory))
        print("breaking a stale lock on %s: pid %s of this host (%s) is gone"
              % (what, other.get("pid"), other.get("command")), flush=True)
        fs.remove(path, missing_ok=True)
    try:
        yield path
    finally:
        current = _read(path)
        if current is not None and current.get("token") == record["token"]:
            fs.remove(path, missing_ok=True)
        if created and fs.isdir(created) and not list(fs.walk_files(created)):
            fs.rmtree(created)  # a run refused before writing leaves no empty dirs behind
