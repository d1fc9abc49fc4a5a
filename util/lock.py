"""One writer per directory: a lock file naming the run that holds it.

Two runs on one model dir (two terminals, a scheduler's retry) would write checkpoints
over each other. Each runner therefore holds a lock file in the directory it writes, a
small JSON record naming the run:

    {"host", "pid", "started", "command", "token",      # who, for people and messages
     "boot_id", "pid_ns", "start_ticks",                # which process, exactly (Linux)
     "renewed", "renewed_at"}                           # the lease: epoch seconds, as text

A second run finds it and stops with a message naming the first, unless the lock is
stale: its run is known to be gone.

When is a lock stale (stale_reason)
  - A run of this host (same host name and pid namespace): when this host has rebooted
    since (boot_id differs: every process of the old boot is gone), or its pid is dead or
    a zombie, or the pid's start time (field 22 of /proc/<pid>/stat, clock ticks since
    boot) differs from the recorded one: the pid now belongs to another process (a
    restarted container's entrypoint is pid 1 again). Without /proc (macOS) and for
    records written before these fields existed, a live pid (kill(pid, 0)) counts as alive.
  - A run of another host, or of another pid namespace of this host (containers sharing
    a host name, e.g. with host networking: their pids cannot be checked from here), has
    no process we can look at. While it holds the lock a holder renews the record every
    LEASE_RENEW_SECONDS; its lock is stale once `renewed` is older than LEASE_SECONDS
    (environment variable ELECTRA_LOCK_LEASE_SECONDS, default 10 min). `renewed` is the
    holder's clock and the age is taken with ours: this assumes the hosts' clocks agree
    within a few minutes (NTP does much better); a holder whose clock runs more than
    LEASE_SECONDS - LEASE_RENEW_SECONDS behind ours would look stale while alive. Every
    host must use the same lease. A record without `renewed` (an older version's) never
    goes stale by time: it is deleted by hand, as the message says.

Taking the lock
  - Local disks: the file is created exclusively (O_EXCL); exactly one creator succeeds.
  - Buckets (gs://) have no exclusive create through tf.io.gfile: the lock is written only
    if none exists, then read back after BUCKET_SETTLE_SECONDS, and only the run whose
    token is there goes on; two runs that both find no lock and write within that pause
    of each other resolve to the one whose write landed last (the other reads back a
    foreign token and looks again); a request slower than the pause is the remaining race.

Breaking a stale lock without ever deleting a fresh one
  The defect to avoid: runs A and B both read the stale record S; A deletes it and creates
  its own lock; B, still believing the file is S, deletes A's fresh lock and creates its
  own: two writers. So a lock is deleted only by a run that has just seen, in the very
  file it deletes, the record it judged stale.
  - Local disks: every change of which file `path` names (breaking, the holder's
    renewals, its release) happens while holding the kernel lock (flock) of the file
    `path` names at that moment, after checking, under that lock, that `path` still names
    that file (same device and inode) and reading the record from it. Nobody can then
    change `path` between the check and the unlink: the only other ways to change it are
    another breaker, a renewal or a release, and each first needs that same kernel lock;
    an exclusive create cannot succeed while the file exists. The loser of two breakers
    waits for the lock, finds that `path` names another file (or none), and starts over.
    The kernel releases a dead process's flock, so this lock cannot itself go stale; it is
    held for microseconds (a read, a /proc look-up, an unlink). The creator holds it while
    writing the record, so nobody judges a half-written record. (Renaming the stale file to
    a claim name was considered: the rename is atomic, but a claimer who finds it took a
    fresh lock must put it back, and while the name is free a third run can create the lock:
    two holders again.) Limits: where flock is not supported (some network file systems)
    the check and the unlink are two steps again, a window of microseconds; runs of an
    older version of this module do not take the flock; a lock deleted by hand (rm takes
    no flock) in the microseconds of a renewal is written again.
  - Buckets: no such lock exists. The breaker reads the record again right before the
    delete and deletes only if it is unchanged (same token, same `renewed`); then it takes
    the lock like any run, write, pause, read back. The remaining window: another breaker
    that deleted S and wrote its own lock between our re-read and our delete. Its lock is
    then deleted by us, but we write ours within a request of its write, well inside its
    read-back pause, so it reads back our token and backs off; a pause of more than
    BUCKET_SETTLE_SECONDS between our re-read and our delete (a suspended process, a
    stalled request) can still give two holders. The holder's renewal has the same shape
    (read, compare token, write) and its own window: it could rewrite a lock broken a
    moment before, but only a holder whose lease had already run out is ever broken.

While held, a daemon thread renews the lease (never keeping the process alive); it
rewrites the record atomically (local: temporary file, then os.replace) and only while the
file still holds our token. If the lock was taken from us (deleted by hand, broken by
another run), the renewals stop and one warning is printed; the run goes on. On leaving
the block, also by an exception, KeyboardInterrupt or another BaseException, the thread
is stopped and joined and the lock deleted if it is still ours.
"""

import contextlib
import datetime
import json
import os
import socket
import sys
import threading
import time
import uuid

try:
    import fcntl
except ImportError:  # not POSIX: no kernel lock, see the module doc's limits
    fcntl = None

from util import fs
from util import interrupt
from util.errors import InputError
from util.io import check_writable_dir

BUCKET_SETTLE_SECONDS = 1.0  # gs:// read-back pause: another host's write lands meanwhile
LEASE_SECONDS = float(os.environ.get("ELECTRA_LOCK_LEASE_SECONDS", 600))  # then stale
LEASE_RENEW_SECONDS = min(60.0, LEASE_SECONDS / 4)  # a holder rewrites `renewed` this often
UNREADABLE_SECONDS = 1.0  # how long an unparsable lock may be "being written"
HEARTBEAT_JOIN_SECONDS = 30.0  # a renewal in flight on a slow bucket is waited for this long


# ---------------------------------------------------------------- who holds the lock

def _utc_text(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def _read_small(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _boot_id():
    """This boot's random id (Linux), None elsewhere."""
    return _read_small("/proc/sys/kernel/random/boot_id")


def _pid_namespace():
    """'pid:[4026531836]' (Linux): pids mean something only within one namespace."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _proc_stat(pid):
    """(state letter, start time in clock ticks since boot) of pid, None if there is no
    such process. Only where /proc exists (see _have_proc)."""
    text = _read_small("/proc/%d/stat" % pid)
    if text is None:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name, in (), may hold spaces
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)


def _have_proc():
    return os.path.exists("/proc/self/stat")


def _record():
    now = time.time()
    record = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": _utc_text(now),
              "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])[:300],
              "token": uuid.uuid4().hex,
              "boot_id": _boot_id(), "pid_ns": _pid_namespace(),
              "start_ticks": _proc_stat(os.getpid())[1] if _have_proc() else None}
    _stamp(record, now)
    return record


def holder_record():
    """The record this process writes when it takes a lock (the chaos campaign forges
    stale ones from it)."""
    return _record()


def _stamp(record, now):
    record["renewed"] = round(now, 3)
    record["renewed_at"] = _utc_text(now)


def _text(record):
    return json.dumps(record, indent=2) + "\n"


def _parse(data):
    """The record in a lock file's bytes or text, or None if it is not one (half-written)."""
    try:
        record = json.loads(data)
    except ValueError:  # UnicodeDecodeError is a ValueError
        return None
    return record if isinstance(record, dict) else None


def _is_ours(record, token):
    return record is not None and record.get("token") == token


# ---------------------------------------------------------------- is its run gone?

def _process_alive(pid):
    """True if pid is a running process of this host (a zombie, killed but not yet reaped
    by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    if not _have_proc():  # macOS: trust kill
        return True
    state = _proc_stat(pid)
    return state is not None and state[0] != "Z"


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _same_pid_namespace(record):
    theirs, ours = record.get("pid_ns"), _pid_namespace()
    return theirs is None or ours is None or theirs == ours


def _process_gone(record):
    """Why the run of this host that wrote record is gone, or None if it may be alive."""
    pid = _int(record.get("pid"))
    if pid is None or pid <= 0:  # kill(0 or -1) would ask about whole process groups
        return None
    gone = "pid %s of this host (%s) is gone" % (pid, record.get("command"))
    boot, ticks = record.get("boot_id"), _int(record.get("start_ticks"))
    if boot and _boot_id() and boot != _boot_id():
        return gone + " (the host has rebooted since)"
    if not boot or ticks is None or not _have_proc():  # an older record, or macOS
        return None if _process_alive(pid) else gone
    stat = _proc_stat(pid)
    if stat is None or stat[0] == "Z":
        return gone
    if stat[1] != ticks:
        return gone + " (the pid now belongs to another process)"
    return None


def _lease_expired(record, now):
    """Why the lock of a run we cannot look at is stale (its lease ran out), or None."""
    renewed = _number(record.get("renewed"))
    if renewed is None or now - renewed <= LEASE_SECONDS:  # no lease: an older record
        return None
    return "host %s has not renewed it for %d min (%s)" % (
        record.get("host"), (now - renewed) // 60, record.get("command"))


def stale_reason(record, now=None):
    """Why the lock's run is known to be gone (a note for the user), or None if it may
    still be running. See the module doc for the rules."""
    if record.get("host") == socket.gethostname() and _same_pid_namespace(record):
        return _process_gone(record)
    return _lease_expired(record, time.time() if now is None else now)


def _refuse(path, record, what):
    """what: "model dir D/models/m" (what the lock guards)."""
    raise InputError(
        "the %s is in use by another run (host %s, pid %s, started %s: %s); wait for it to "
        "finish or stop it. If that run is gone (its machine was lost), delete the lock "
        "file and rerun: rm %s (gsutil rm for a bucket)"
        % (what, record.get("host"), record.get("pid"), record.get("started"),
           record.get("command"), path))


def _note_breaking(what, reason):
    print("breaking a stale lock on %s: %s" % (what, reason), flush=True)


# ---------------------------------------------------------------- local disks

def _os_path(path):
    return path[len("file://"):] if path.startswith("file://") else path


def _flock(fd):
    """Takes the kernel lock of fd's file (waits for it; the kernel drops it at close or
    when the process dies). False where the file system does not support it."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        return False
    return True


def _open(path):
    """A descriptor of the file path names now, or None if there is none. Read-write where
    allowed: NFS grants exclusive flocks only to writers."""
    try:
        return os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    except PermissionError:
        pass
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def _names(path, fd):
    """True if path still names fd's file (not deleted, not replaced by a rename)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _lock_current(path):
    """A descriptor of the file path names, its flock held and path checked to still name
    it; None if there is no lock file. While we hold it, nobody else changes what path
    names (module doc). Closing the descriptor releases it."""
    while True:
        fd = _open(path)
        if fd is None:
            return None
        _flock(fd)
        if _names(path, fd):
            return fd
        os.close(fd)  # replaced while we waited for its flock: look at the new one


def _read_fd(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return _parse(b"".join(chunks))
        chunks.append(chunk)


def _write_fd(fd, text):
    data = text.encode("utf-8")
    while data:
        data = data[os.write(fd, data):]
    os.fsync(fd)


def _create_local(path, text):
    """Creates the lock with its record; False if a lock file exists."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        _flock(fd)  # breakers look at the record under this lock: they see all of it
        _write_fd(fd, text)
    except BaseException:
        os.unlink(path)  # ours: nobody changes path while we hold its flock
        raise
    finally:
        os.close(fd)
    return True


def _break_local(path, what, what_dir):
    """Looks at the lock that stopped our create: 'gone' (look again), 'unreadable'
    (being written), 'broken' (it was stale and is deleted), or InputError (in use)."""
    fd = _lock_current(path)
    if fd is None:
        return "gone"
    try:
        other = _read_fd(fd)
        if other is None:
            return "unreadable"
        reason = stale_reason(other)
        if reason is None:
            _refuse(path, other, what_dir)
        _note_breaking(what, reason)
        try:
            os.unlink(path)  # path names the file we just read: checked under its flock
        except FileNotFoundError:  # only without flock: another breaker was first
            return "gone"
        return "broken"
    finally:
        os.close(fd)


def _replace_local(path, token, text):
    """Rewrites the lock with text if it still holds token; False if it does not."""
    fd = _lock_current(path)
    if fd is None:
        return False
    try:
        if not _is_ours(_read_fd(fd), token):
            return False
        tmp = "%s.renew-%s" % (path, token)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_fd(out, text)
        finally:
            os.close(out)
        try:
            os.replace(tmp, path)  # readers see the old record or the new one, whole
        except BaseException:
            os.unlink(tmp)
            raise
        return True
    finally:
        os.close(fd)


def _release_local(path, token):
    fd = _lock_current(path)
    if fd is None:
        return
    try:
        if _is_ours(_read_fd(fd), token):
            os.unlink(path)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- buckets (gs://, ram://)

def _read(path):
    """The lock's record, or None if there is none (or it is unreadable: half-written)."""
    try:
        return _parse(fs.read_text(path))
    except fs.errors():
        return None


def _read_or_raise(path):
    """The lock's record, None if there is no lock; a read error is raised (a renewal must
    not take a failed request for a lost lock)."""
    if not fs.exists(path):
        return None
    return _parse(fs.read_text(path))


def _create_bucket(path, record, text):
    if fs.exists(path):
        return False
    fs.write_text(path, text)
    time.sleep(BUCKET_SETTLE_SECONDS)
    return _is_ours(_read(path), record["token"])


def _break_bucket(path, what, what_dir):
    other = _read(path)
    if other is None:
        return "unreadable" if fs.exists(path) else "gone"
    reason = stale_reason(other)
    if reason is None:
        _refuse(path, other, what_dir)
    if _read(path) != other:  # renewed, released or broken meanwhile: judge it again
        return "gone"
    _note_breaking(what, reason)
    fs.remove(path, missing_ok=True)
    return "broken"


def _replace_bucket(path, token, text):
    if not _is_ours(_read_or_raise(path), token):
        return False
    fs.write_text(path, text)  # an object appears whole (util/fs.py)
    return True


def _release_bucket(path, token):
    if _is_ours(_read(path), token):
        fs.remove(path, missing_ok=True)


# ---------------------------------------------------------------- either

def _create(path, record):
    if fs.is_local(path):
        return _create_local(_os_path(path), _text(record))
    return _create_bucket(path, record, _text(record))


def _break(path, what, what_dir):
    """what: "model dir"; what_dir: "model dir D/models/m"."""
    if fs.is_local(path):
        return _break_local(_os_path(path), what, what_dir)
    return _break_bucket(path, what, what_dir)


def _renew(path, record):
    """Rewrites the lock with record (freshly stamped) if it is still ours; False if not."""
    if fs.is_local(path):
        return _replace_local(_os_path(path), record["token"], _text(record))
    return _replace_bucket(path, record["token"], _text(record))


def _release(path, token):
    if fs.is_local(path):
        _release_local(_os_path(path), token)
    else:
        _release_bucket(path, token)


def _acquire(directory, path, record, what):
    """Takes the lock, breaking a stale one; InputError if another run holds it."""
    what_dir = "%s %s" % (what, directory)
    unreadable_since = None
    while True:
        try:
            if _create(path, record):
                return
            if _is_ours(_read(path), record["token"]):  # a read-back that failed once
                return
            outcome = _break(path, what, what_dir)
        except InputError:
            raise
        except fs.errors() as e:
            raise InputError("cannot write to the %s %s: %s" % (what, directory,
                                                                fs.error_text(e)))
        if outcome != "unreadable":
            unreadable_since = None
            continue
        # Half-written (its creator is between the create and the write) or garbage.
        unreadable_since = unreadable_since or time.monotonic()
        if time.monotonic() - unreadable_since > UNREADABLE_SECONDS:
            _refuse(path, {}, what_dir)
        time.sleep(0.1)


class _Heartbeat:
    """Renews the lock's lease every LEASE_RENEW_SECONDS on a daemon thread while held."""

    def __init__(self, path, record):
        self.path = path
        self.record = dict(record)
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="lock heartbeat %s" % path)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(HEARTBEAT_JOIN_SECONDS)

    def _run(self):
        while not self._stop.wait(LEASE_RENEW_SECONDS):
            if not self._beat():
                return

    def _beat(self):
        """One renewal; False once the lock is no longer ours (then renewals stop)."""
        _stamp(self.record, time.time())
        try:
            if _renew(self.path, self.record):
                return True
        except Exception as e:  # a failed request: try again next time, never crash the run
            if not self._warned:
                self._warned = True
                print("WARNING: could not renew the lock %s (%s); retrying every %g s"
                      % (self.path, fs.error_text(e), LEASE_RENEW_SECONDS), flush=True)
            return True
        print("WARNING: the lock %s is no longer this run's (deleted, or broken by another "
              "run); this run goes on, but another run may now write the same directory"
              % self.path, flush=True)
        return False


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
    heartbeat = _Heartbeat(path, record)
    acquired = False
    try:
        # A SIGTERM while the lock is being taken (a bucket's read-back pause) or released
        # waits until that is done, then stops the run with the lock released.
        with interrupt.shielded():
            _acquire(directory, path, record, what)
            acquired = True
            heartbeat.start()
        yield path
    finally:
        if acquired:
            heartbeat.stop()
            with interrupt.shielded():
                _release(path, record["token"])
        if created and fs.isdir(created) and not list(fs.walk_files(created)):
            fs.rmtree(created)  # a run refused before writing leaves no empty dirs behind
