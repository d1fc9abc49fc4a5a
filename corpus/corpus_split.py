"""Cutting the corpus into one run of whole documents per job, of about equal bytes."""

import bisect
import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class WorkPiece(object):
    """Bytes [start, end) of a corpus file, whole lines of whole documents.

    `path` is relative to the corpus dir; `first_line` is the line number at
    `start`.
    """

    path: str
    start: int
    end: int
    first_line: int = 1


def split_work(corpus_dir, files, num_processes, blanks_separate_docs):
    """Cut the corpus into `num_processes` runs of about equal bytes.

    The sorted files are read as one stream; cut i goes at the first
    document start at or after i/num_processes of the bytes (the nearest
    file start if files are the documents), so documents stay whole and a
    single big file is still shared out. Returns one list of WorkPieces per
    job, in corpus order.
    """
    sizes = [os.path.getsize(os.path.join(corpus_dir, name)) for name in files]
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    # A cut is (file index, byte offset in the file, line number there).
    cuts = [(0, 0, 1)]
    for job in range(1, num_processes):
        target = offsets[-1] * job // num_processes
        cut = _cut_near(corpus_dir, files, sizes, offsets, target,
                        blanks_separate_docs)
        cuts.append(max(cut, cuts[-1]))
    cuts.append((len(files), 0, 1))
    return [_pieces_between(files, sizes, cuts[job], cuts[job + 1])
            for job in range(num_processes)]


def _cut_near(corpus_dir, files, sizes, offsets, target, blanks_separate_docs):
    """The cut for stream offset `target` (see `split_work`)."""
    index = bisect.bisect_right(offsets, target) - 1
    local = target - offsets[index]
    if local == 0:
        return (index, 0, 1)
    if not blanks_separate_docs:
        return (index, 0, 1) if 2 * local <= sizes[index] else (index + 1, 0, 1)
    start = next_document_start(os.path.join(corpus_dir, files[index]), local)
    if start is None or start[0] >= sizes[index]:
        return (index + 1, 0, 1)
    return (index,) + start


def next_document_start(path, offset):
    """(byte offset, line number) of the first line at or after `offset`
    that follows a blank line, or None if the file has none."""
    with open(path, "rb") as reader:
        # Counting newlines in big chunks is fast; the line number is only
        # needed for messages about undecodable bytes.
        newlines, last = 0, b"\n"
        while reader.tell() < offset:
            chunk = reader.read(min(offset - reader.tell(), 1 << 20))
            if not chunk:
                return None
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
        position = offset
        if last != b"\n":  # inside a line: skip its rest, it is not blank
            rest = reader.readline()
            position += len(rest)
            newlines += rest.count(b"\n")
        for raw in reader:
            position += len(raw)
            newlines += raw.count(b"\n")
            # ASCII-blank bytes decode to a blank line, so this is a real
            # document end (other blank lines are merely not used as cuts).
            if not raw.strip():
                return position, newlines + 1
    return None


def _pieces_between(files, sizes, first, last):
    """The WorkPieces from cut `first` up to (not including) cut `last`."""
    pieces = []
    index, start, line = first
    while (index, start) < last[:2]:
        end = last[1] if index == last[0] else sizes[index]
        # Empty files stay in (as empty pieces), so they are counted.
        if end > start or start == 0:
            pieces.append(WorkPiece(files[index], start, end, line))
        index, start, line = index + 1, 0, 1
    return pieces
