"""util/lock.py: one writer per directory. Real processes where it is about processes:
runs racing to break one stale lock, a live pid whose start time does not match."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from util import fs, lock
from util.errors import InputError

REPO = Path(__file__).resolve().parents[1]

needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/stat"),
                                reason="needs Linux /proc (process start times, boot id)")


def dead_pid():
    """The pid of a process of this host that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def start_ticks(pid):
    """Field 22 of /proc/<pid>/stat (read here independently of util/lock.py)."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def boot_id():
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def another_runs_record(**fields):
    """A lock record as another run of this host writes it (older format unless fields
    add the process identity or the lease)."""
    return dict({"host": socket.gethostname(), "pid": os.getppid(), "started": "earlier",
                 "command": "run_pretraining.py --model-name m", "token": "theirs"}, **fields)


def this_hosts_live_record(pid):
    """The record a live run (pid) of this host writes, with its process identity."""
    return another_runs_record(pid=pid, boot_id=boot_id(), start_ticks=start_ticks(pid),
                               pid_ns=os.readlink("/proc/self/ns/pid"), renewed=time.time())


def heartbeats():
    return [t for t in threading.enumerate() if t.name.startswith("lock heartbeat")]


def wait_for(condition, seconds=5.0):
    """True once condition() is; False after seconds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# ----------------------------------------------------------------- runs racing

# One racer: several rounds; in each it waits for the round's start file, then tries the
# lock. The winner logs enter, keeps the lock until every other racer has logged its
# outcome (so a correct lock has exactly one winner however the racers are scheduled; at
# most 5 s, for a lock that lets two in), then logs leave. The log is appended with
# O_APPEND writes, so its lines are in the order things happened.
# check_writable_dir goes through tf.io.gfile, and importing TensorFlow in each racer
# (6 s of CPU each) would dominate the test; it is not part of the lock protocol.
RACER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from util import lock
from util.errors import InputError
lock.check_writable_dir = lambda directory, what: None
directory, work, rounds, racers = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
log = os.open(os.path.join(work, "log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def note(r, event):
    os.write(log, ("%d %d %s\n" % (r, os.getpid(), event)).encode())

def outcomes(r):
    with open(os.path.join(work, "log")) as f:
        return sum(1 for line in f if line.startswith("%d " % r)
                   and line.split()[2] in ("refused", "error"))

note(-1, "ready")
for r in range(rounds):
    while not os.path.exists(os.path.join(work, "go-%d" % r)):
        time.sleep(0.001)
    try:
        with lock.hold(directory, "model dir"):
            note(r, "enter")
            deadline = time.monotonic() + 5
            while outcomes(r) < racers - 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            note(r, "leave")
    except InputError:
        note(r, "refused")
    except Exception as e:
        note(r, "error %s: %s" % (type(e).__name__, str(e).replace("\n", " ")[:200]))
    note(r, "done")
"""


def log_lines(work, round_):
    text = (work / "log").read_text() if (work / "log").exists() else ""
    return [line.split(" ", 2)[1:] for line in text.splitlines()
            if line.startswith("%d " % round_)]


def test_runs_racing_to_break_one_stale_lock_let_exactly_one_in(tmp_path):
    """Each round: a stale lock (a dead pid of this host), then 8 processes released at
    once all find it stale; exactly one gets the lock, the others are refused, and no two
    ever hold it at the same time (the old lock let a second breaker delete the first's
    fresh lock and go in too)."""
    directory, work = tmp_path / "m", tmp_path / "work"
    directory.mkdir()
    work.mkdir()
    racers, rounds = 8, 6
    processes = [subprocess.Popen([sys.executable, "-c", RACER, str(REPO), str(directory),
                                   str(work), str(rounds), str(racers)])
                 for _ in range(racers)]
    try:
        assert wait_for(lambda: len(log_lines(work, -1)) == racers, 30)
        for r in range(rounds):
            (directory / ".lock").write_text(json.dumps(another_runs_record(pid=dead_pid())))
            (work / ("go-%d" % r)).touch()
            finished = wait_for(lambda: sum(e == ["done"] for _, *e in log_lines(work, r))
                                == racers, 60)
            holding, entered = set(), []
            for pid, event in log_lines(work, r):
                if event == "enter":
                    assert not holding, "round %d: %s entered while %s held the lock" % (
                        r, pid, holding)
                    holding.add(pid)
                    entered.append(pid)
                elif event == "leave":
                    holding.discard(pid)
                else:
                    assert event in ("refused", "done"), "round %d: %s %s" % (r, pid, event)
            assert finished, "round %d unfinished: %s" % (r, log_lines(work, r))
            assert len(entered) == 1, "round %d: winners %s" % (r, entered)
            assert sum(event == "refused" for _, event in log_lines(work, r)) == racers - 1
            assert os.listdir(directory) == [], "round %d left %s" % (r, os.listdir(directory))
    finally:
        for process in processes:
            process.kill()
            process.wait()


# ----------------------------------------------------------------- process identity

@needs_proc
def test_a_lock_whose_pid_was_reused_or_from_an_earlier_boot_is_broken(tmp_path, capsys):
    """A live pid only counts if it is still the same process (its start time) of this
    boot; the old lock took any live pid for the holder (a restarted container's pid 1
    kept the lock forever)."""
    directory = tmp_path / "m"
    directory.mkdir()
    path = directory / ".lock"
    live = this_hosts_live_record(os.getppid())

    path.write_text(json.dumps(dict(live, start_ticks=live["start_ticks"] + 1)))
    with lock.hold(str(directory), "model dir"):
        assert json.loads(path.read_text())["token"] != "theirs"
    assert "breaking a stale lock on model dir: pid %d of this host" % os.getppid() in \
        capsys.readouterr().out
    assert not path.exists()

    path.write_text(json.dumps(live))
    with pytest.raises(InputError, match=r"the model dir %s is in use by another run \(host "
                       r"%s, pid %d, started earlier: run_pretraining.py --model-name m\); "
                       r"wait for it" % (directory, socket.gethostname(), os.getppid())):
        with lock.hold(str(directory), "model dir"):
            pass
    assert json.loads(path.read_text()) == live

    path.write_text(json.dumps(dict(live, boot_id=str(uuid.uuid4()))))
    with lock.hold(str(directory), "model dir"):
        pass
    assert "rebooted" in capsys.readouterr().out and not path.exists()


@needs_proc
def test_a_lock_of_another_pid_namespace_of_this_host_waits_for_its_lease(tmp_path):
    """Containers sharing the host name (host networking) have pids we cannot look at
    from here: their dead-looking pid is no proof, only the lease is (the old lock broke
    such a live run's lock because the pid is not running in our namespace)."""
    directory = tmp_path / "m"
    directory.mkdir()
    theirs = another_runs_record(pid=dead_pid(), boot_id=boot_id(), start_ticks=1,
                                 pid_ns="pid:[1]", renewed=time.time())
    (directory / ".lock").write_text(json.dumps(theirs))
    with pytest.raises(InputError, match="is in use by another run"):
        with lock.hold(str(directory), "model dir"):
            pass
    assert json.loads((directory / ".lock").read_text()) == theirs


def test_records_without_process_identity_are_judged_by_their_pid_as_before(tmp_path):
    """Locks written by the previous version (host, pid only) keep working."""
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / ".lock").write_text(json.dumps(another_runs_record()))  # our parent: alive
    with pytest.raises(InputError, match="pid %d" % os.getppid()):
        with lock.hold(str(directory), "model dir"):
            pass
    (directory / ".lock").write_text(json.dumps(another_runs_record(pid=dead_pid())))
    with lock.hold(str(directory), "model dir"):
        pass
    assert not (directory / ".lock").exists()


# ----------------------------------------------------------------- the lease

@pytest.mark.parametrize("where", ["local", "ram"])
def test_a_lock_of_another_host_is_broken_once_its_lease_ran_out(where, tmp_path,
                                                                 monkeypatch, capsys):
    """Another host's run cannot be looked at: its lock is stale once not renewed for
    LEASE_SECONDS (10 min), on a local (shared) disk and in a bucket alike. The old lock
    never broke another host's lock."""
    monkeypatch.setattr(lock, "BUCKET_SETTLE_SECONDS", 0.05)
    directory = str(tmp_path / "m") if where == "local" else \
        "ram://lock-test-%s/m" % uuid.uuid4().hex
    path = fs.join(directory, ".lock")
    fs.makedirs(directory)
    theirs = another_runs_record(host="lost-machine.example", pid=4242,
                                 renewed=time.time() - 11 * 60)
    fs.write_text(path, json.dumps(theirs))
    with lock.hold(directory, "model dir"):
        assert json.loads(fs.read_text(path))["host"] == socket.gethostname()
    assert ("breaking a stale lock on model dir: host lost-machine.example has not renewed "
            "it for 11 min (run_pretraining.py --model-name m)") in capsys.readouterr().out
    assert not fs.exists(path)

    theirs["renewed"] = time.time() - 60
    fs.write_text(path, json.dumps(theirs))
    with pytest.raises(InputError, match=r"in use by another run \(host lost-machine.example,"
                                         r" pid 4242.*rm %s" % path):
        with lock.hold(directory, "model dir"):
            pass
    assert json.loads(fs.read_text(path)) == theirs
    if where == "ram":
        fs.rmtree(fs.dirname(directory))


def take_over(path, record):
    """Replaces the lock as another run breaking it does: under the lock file's flock,
    after checking path still names that file (so it cannot race a renewal)."""
    import fcntl
    while True:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                continue
            if record is None:
                os.unlink(path)
            else:
                tmp = "%s.theirs" % path
                Path(tmp).write_text(json.dumps(record))
                os.replace(tmp, path)
            return
        finally:
            os.close(fd)


def test_the_heartbeat_renews_the_lease_and_never_resurrects_a_lock_taken_away(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lock, "LEASE_RENEW_SECONDS", 0.02, raising=False)  # old: none
    directory = tmp_path / "m"
    path = directory / ".lock"
    with lock.hold(str(directory), "model dir"):
        first = json.loads(path.read_text())
        assert wait_for(lambda: json.loads(path.read_text())["renewed"]
                        > first["renewed"] + 0.05)
        renewed = json.loads(path.read_text())
        assert renewed["token"] == first["token"] and renewed["started"] == first["started"]
        assert renewed["renewed_at"].endswith(" UTC")

        theirs = another_runs_record(renewed=time.time())
        take_over(str(path), theirs)
        assert wait_for(lambda: not heartbeats())  # renewals stop once the lock is not ours
        time.sleep(0.1)
        assert json.loads(path.read_text()) == theirs
    assert json.loads(path.read_text()) == theirs  # the release leaves their lock alone
    assert capsys.readouterr().out.count("is no longer this run's") == 1

    path.unlink()
    with lock.hold(str(directory), "model dir"):
        take_over(str(path), None)  # deleted (by hand, or broken by a run of another host)
        assert wait_for(lambda: not heartbeats())
        time.sleep(0.1)
        assert not path.exists()
    assert not path.exists() and "is no longer this run's" in capsys.readouterr().out


class Terminated(BaseException):
    """As a runner raises on SIGTERM: not an Exception."""


def test_a_base_exception_in_the_body_releases_the_lock_and_stops_the_heartbeat(tmp_path):
    """With the real renewal interval (60 s): the heartbeat's thread runs while the lock is
    held and is stopped and joined at once on leaving, and it is a daemon."""
    directory = tmp_path / "m"
    started = time.monotonic()
    with pytest.raises(Terminated):
        with lock.hold(str(directory), "model dir") as path:
            assert Path(path).exists()
            assert len(heartbeats()) == 1 and heartbeats()[0].daemon
            raise Terminated()
    assert time.monotonic() - started < 5
    assert not Path(path).exists() and not heartbeats()
