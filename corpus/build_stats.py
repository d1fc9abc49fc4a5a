"""Counters of a build (per job, then merged) and the jobs' progress lines."""

import dataclasses
import time

from util.io import format_eta

PROGRESS_INTERVAL = 5.0


@dataclasses.dataclass
class Stats(object):
    """Counters of one job, or of all jobs once merged."""

    files: int = 0
    lines: int = 0
    documents: int = 0
    examples: int = 0
    tokens: int = 0
    held_out_examples: int = 0  # of examples and tokens, those --eval-share held out
    held_out_tokens: int = 0
    truncated_tokens: int = 0
    bytes: int = 0
    # Whole-word masking (--segmenter): words seen, word boundaries that fell inside a
    # WordPiece token (token-level starts used there), tokens not placed in their line.
    words: int = 0
    boundary_mismatches: int = 0
    unaligned_tokens: int = 0
    # Corpus path -> [bad byte sequences, line number of the first one].
    bad_by_file: dict = dataclasses.field(default_factory=dict)

    def merge(self, other):
        """Add the counters of `other` (a Stats) to this one."""
        for field in dataclasses.fields(self):
            if field.name != "bad_by_file":
                setattr(self, field.name,
                        getattr(self, field.name) + getattr(other, field.name))
        # Two jobs may have read parts of the same file.
        for path, (count, first_line) in other.bad_by_file.items():
            old_count, old_first = self.bad_by_file.get(path, (0, first_line))
            self.bad_by_file[path] = [old_count + count,
                                      min(old_first, first_line)]

    def bad_sequences(self):
        """Total number of undecodable byte sequences replaced."""
        return sum(count for count, _ in self.bad_by_file.values())

    def first_bad(self):
        """"path:line" of the first bad sequence in corpus order, or None."""
        if not self.bad_by_file:
            return None
        path = min(self.bad_by_file)
        return "%s:%d" % (path, self.bad_by_file[path][1])

    def bad_bytes_message(self):
        """Human-readable summary of replaced byte sequences, or None."""
        if not self.bad_by_file:
            return None
        return ("%s undecodable byte sequences replaced in %d files (first: %s)"
                % (format_count(self.bad_sequences()), len(self.bad_by_file),
                   self.first_bad()))

    def word_summary(self):
        """JSON-friendly whole-word totals for dataset_info.json."""
        return {"words": self.words, "boundary_mismatches": self.boundary_mismatches,
                "unaligned_tokens": self.unaligned_tokens}

    def summary(self):
        """JSON-friendly totals for dataset_info.json."""
        return {
            "files": self.files,
            "lines": self.lines,
            "documents": self.documents,
            "examples": self.examples,
            "tokens": self.tokens,
            "mean_tokens_per_example": round(self.tokens / max(1, self.examples), 2),
            "truncated_tokens": self.truncated_tokens,
            "bytes": self.bytes,
            "undecodable_byte_sequences": self.bad_sequences(),
            "files_with_undecodable_bytes": len(self.bad_by_file),
            "first_undecodable": self.first_bad(),
        }


def format_count(number):
    """1234567 -> "1,234,567"."""
    return "{:,}".format(number)


class Progress(object):
    """Prints a job's progress line, at most every PROGRESS_INTERVAL seconds."""

    def __init__(self, job_id, num_files, total_bytes):
        self._job_id = job_id
        self._num_files = num_files
        self._total_bytes = total_bytes
        self._start = time.monotonic()
        self._last_report = self._start

    def maybe_report(self, stats, force=False):
        """Print the progress line if the interval has passed (or `force`)."""
        now = time.monotonic()
        if force or now - self._last_report >= PROGRESS_INTERVAL:
            self._last_report = now
            print(self.line(stats, now - self._start), flush=True)

    def line(self, stats, elapsed):
        """Return the progress line for `stats` after `elapsed` seconds."""
        rate = stats.tokens / elapsed if elapsed > 0 else 0.0
        eta = format_eta(stats.bytes, self._total_bytes, elapsed)
        # Bytes, not files: a job may hold only part of one large file.
        done = 100.0 * stats.bytes / self._total_bytes if self._total_bytes else 100.0
        return ("[job %d] %.0f%% of %.1f MB | lines %s | docs %s | examples %s | "
                "tokens %s | %s tok/s | ETA %s"
                % (self._job_id, done, self._total_bytes / 1e6,
                   format_count(stats.lines), format_count(stats.documents),
                   format_count(stats.examples), format_count(stats.tokens),
                   format_count(int(rate)), eta))
