"""A stop asked for from outside: SIGTERM (a preempted spot machine, a rescheduled Cloud
TPU VM, a cluster's time limit, `kill`) or SIGINT (Ctrl-C).

Every command line runs under util.errors.run_cli, which installs `handle_signals`: a
signal raises `Stopped` (a BaseException, so no `except Exception` swallows it) where
the program is, and the exception unwinds through every `finally` -- the lock files are
released on the way out -- to run_cli, which prints one line and exits with 128 + the
signal's number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a killed program.

A training loop cannot stop anywhere: between two steps it can save a checkpoint, in the
middle of one it cannot. It runs its steps inside `deferred()`, where a signal only sets
a flag; the loop looks at `requested()` after each step, saves the checkpoint of the
current step and raises `Stopped` itself, naming what it saved. A second Ctrl-C while a
stop is pending raises at once (a user pressing it twice means it); a second SIGTERM is
ignored (a process group's and a wrapper's copy of one stop).
"""

import contextlib
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """The run was stopped by a signal. saved: what was saved before stopping (a
    checkpoint prefix) or None; step: that checkpoint's global step."""

    def __init__(self, signum, saved=None, step=None):
        super().__init__(signal.Signals(signum).name)
        _state["stopping"] = True
        self.signum = signum
        self.saved = saved
        self.step = step

    def message(self):
        """The one line a command prints as it exits."""
        name = signal.Signals(self.signum).name
        if self.saved:
            return ("stopped by %s: saved %s at step %d; run the same command again to "
                    "resume from step %d" % (name, self.saved, self.step, self.step))
        return ("stopped by %s: run the same command again to go on (what was finished is "
                "kept; training resumes from its last checkpoint)" % name)

    def exit_status(self):
        return 128 + self.signum


# deferring: depth of deferred() blocks; requested: the signal a deferred block has yet to
# act on; stopping: a Stopped is on its way out (further SIGTERMs are copies of that stop).
_state = {"deferring": 0, "requested": None, "stopping": False}


def _before_start(signum, frame):
    print(Stopped(signum).message(), file=sys.stderr, flush=True)
    sys.exit(128 + signum)  # (SystemExit: no traceback, whatever is being imported)


def stop_cleanly_before_start():
    """For a command's first lines, before run_cli takes over (importing TensorFlow takes
    seconds): a signal then prints the same line and exits with the same status, with no
    traceback; nothing has been written yet. Also what is in place after run_cli returns."""
    for s in STOP_SIGNALS:
        signal.signal(s, _before_start)


def _on_signal(signum, frame):
    if _state["stopping"] and signum != signal.SIGINT:
        return
    if _state["deferring"]:
        if _state["requested"] is None:
            _state["requested"] = signum  # the loop stops at its next safe point
            return
        if signum != signal.SIGINT:  # a SIGTERM sent twice (to the process group and
            return  # by a wrapper that forwards it): the save under way goes on
    raise Stopped(signum)  # (a second Ctrl-C means now)


@contextlib.contextmanager
def handle_signals():
    """SIGTERM and SIGINT raise Stopped for the block (the previous handlers come back
    after it). Outside the main thread (signal handlers cannot be set there) a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
    _state.update(requested=None, stopping=False)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.update(requested=None, stopping=False)  # (a next command starts afresh)


@contextlib.contextmanager
def deferred():
    """For the block, a signal only marks a stop as requested (see requested()): the
    caller stops at its next safe point and raises Stopped itself."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1


@contextlib.contextmanager
def shielded():
    """For a short stretch that must not be cut in two (taking or releasing a lock): a
    signal waits until the block ends and then raises Stopped; inside a deferred() block
    it is left to that block's owner."""
    with deferred():
        yield
    if _state["requested"] is not None and not _state["deferring"] \
            and not _state["stopping"]:
        raise Stopped(take_request())


def requested():
    """The number of the signal that asked the run to stop, or None."""
    return _state["requested"]


def take_request():
    """requested(), which the caller now acts on (stops): cleared, so that the blocks the
    stop unwinds through (a lock's release) do not stop again over it."""
    signum, _state["requested"] = _state["requested"], None
    return signum
