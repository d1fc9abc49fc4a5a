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
current step and raises `Stopped` itself, naming what it saved. A second signal while a
stop is pending raises at once (a user pressing Ctrl-C twice means it).
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
        self.signum = signum
        self.saved = saved
        self.step = step

    def message(self):
        """The one line a command prints as it exits."""
        name = signal.Signals(self.signum).name
        if self.saved:
            return ("stopped by %s: saved %s at step %d; run the same command again to "
                    "resume from step %d" % (name, self.saved, self.step, self.step))
        return ("stopped by %s: run the same command again to resume from the last "
                "checkpoint (finished work is kept)" % name)

    def exit_status(self):
        return 128 + self.signum


_state = {"deferring": 0, "requested": None}


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
    if _state["deferring"] and _state["requested"] is None:
        _state["requested"] = signum  # the training loop stops after its current step
        return
    raise Stopped(signum)


@contextlib.contextmanager
def handle_signals():
    """SIGTERM and SIGINT raise Stopped for the block (the previous handlers come back
    after it). Outside the main thread (signal handlers cannot be set there) a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
    _state["requested"] = None
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred():
    """For the block, a signal only marks a stop as requested (see requested()): the
    caller stops at its next safe point and raises Stopped itself."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1


def requested():
    """The number of the signal that asked the run to stop, or None."""
    return _state["requested"]


def signal_handled():
    """True when a signal handler of ours is in place (run under handle_signals): only then
    may a loop defer a stop and expect to be told."""
    return signal.getsignal(signal.SIGTERM) is _on_signal
