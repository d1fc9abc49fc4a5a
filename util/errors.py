"""The one exception type for problems with what the user gave us.

Command-line entry points catch `InputError`, print its message (which names the
file, line or key at fault and what was expected) and exit with status 2, without a
traceback: the message is the whole story.
"""

import errno
import os
import re
import shutil
import sys

from util import interrupt


class InputError(ValueError):
    """Bad user input: a file, flag or hparam. The message says where and what."""


def run_cli(job):
    """Runs job() for a command-line entry point and returns its exit status.

    InputError -> its message on stderr, status 2 (no traceback: the message says it all);
    a full disk mid-run -> which path, how much is free, and that a rerun resumes, status 3;
    SIGTERM or Ctrl-C -> one line: what was saved and how to resume, status 128 + the
    signal's number (143, 130); the locks are released on the way out (util/interrupt.py).
    """
    try:
        with interrupt.handle_signals():
            job()
    except interrupt.Stopped as e:
        print(e.message(), file=sys.stderr, flush=True)
        return e.exit_status()
    except InputError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 (only a full disk is handled; the rest re-raised)
        message = disk_full_message(e)
        if message is None:
            raise
        print("error: %s" % message, file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    return 0


def _written_path(text):
    """The file a TensorFlow error's text names, or None: the first absolute path that
    starts the text or follows a space, quote or bracket (not a node name's tail such as
    save/SaveV2) and lies under an existing directory other than the root."""
    candidates = re.findall(r"(?:^|[\s'\"(\[=])(/[^\s:;,'\"\]\)]+)", text)
    for path in candidates:
        directory = os.path.dirname(path)
        while directory and not os.path.isdir(directory):
            directory = os.path.dirname(directory)
        if directory and directory != os.path.dirname(directory):  # not "/"
            return path
    return None


def disk_full_message(error):
    """The message for an error that means "no space left on device", else None. Python's
    OSError carries errno ENOSPC and the file; TensorFlow's errors (checkpoints, summaries)
    only say it in their text, usually with the file's path."""
    text = str(error)
    if getattr(error, "errno", None) == errno.ENOSPC:
        path = error.filename
    elif "No space left on device" in text or "ENOSPC" in text:
        path = _written_path(text)
    else:
        return None
    free = ""
    directory = os.path.dirname(path) if path else None
    while directory and not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    if directory:
        free = " (%.0f MB free on the disk of %s)" % (
            shutil.disk_usage(directory).free / 2 ** 20, directory)
    return ("the disk is full: writing %s failed%s. Free some space and rerun the same "
            "command: it resumes from the last checkpoint" % (path or "a file", free))
