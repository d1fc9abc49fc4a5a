"""Progress lines for phases that are not training steps: featurising, writing caches,
predicting. A phase shorter than `interval` seconds prints nothing; a longer one prints
`what: done/total unit | elapsed | ETA` every `interval` seconds and once at the end."""

import time

from util.io import format_duration, format_eta


class Progress(object):
    """Counts work done in a phase; call update(n) as it goes and finish() at the end."""

    def __init__(self, what, total, unit, interval=10.0, printer=print, clock=time.monotonic):
        self._what, self._total, self._unit = what, total, unit
        self._interval, self._print, self._clock = interval, printer, clock
        self._start = self._last = clock()
        self._done = 0
        self._printed = False

    def update(self, n=1):
        self._done += n
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._line(now)

    def finish(self):
        if self._printed and self._printed != self._done:  # a short phase stays silent
            self._line(self._clock())

    def _line(self, now):
        elapsed = now - self._start
        self._printed = self._done or True  # (the count last shown)
        self._print("%s: %s/%s %s | elapsed %s | ETA %s" % (
            self._what, format(self._done, ","), format(self._total, ","), self._unit,
            format_duration(elapsed), format_eta(self._done, self._total, elapsed)),
            flush=True)
