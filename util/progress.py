"""The progress line of a loop over a known number of items (featurising, writing a cache,
predicting; training steps have util.training_utils.ProgressHook):

    featurising cmrc2018 train 1,200/9,600 examples | 120.0/s | elapsed 10s | ETA 1m10s

at most every `interval` seconds, and once more at finish(). With quiet_if_short, a loop
that ends within its first interval prints nothing (a short phase needs no progress)."""

import sys
import time

from util.io import format_duration, format_eta


class Progress(object):
    """Call update(n) as items are done and finish() at the end."""

    def __init__(self, total, what, unit="", interval=5.0, stream=None, quiet_if_short=False,
                 clock=time.monotonic):
        self._total, self._what, self._unit = total, what, unit
        self._interval, self._stream, self._clock = interval, stream, clock
        self._quiet_if_short = quiet_if_short
        self._count = self._shown = 0
        self._start = self._last = clock()

    def update(self, n=1):
        self._count += n
        if self._clock() - self._last >= self._interval:
            self._report()

    def finish(self):
        if self._shown != self._count and (self._shown or not self._quiet_if_short):
            self._report()

    def _report(self):
        now = self._clock()
        self._last, self._shown = now, self._count
        elapsed = now - self._start
        print("%s %s/%s%s | %.1f/s | elapsed %s | ETA %s" % (
            self._what, format(self._count, ","), format(self._total, ","),
            " " + self._unit if self._unit else "", self._count / max(elapsed, 1e-9),
            format_duration(elapsed), format_eta(self._count, self._total, elapsed)),
            file=self._stream or sys.stdout, flush=True)  # looked up now: may be redirected
