"""The one exception type for problems with what the user gave us.

Command-line entry points catch `InputError`, print its message (which names the
file, line or key at fault and what was expected) and exit with status 2, without a
traceback: the message is the whole story.
"""

import sys


class InputError(ValueError):
    """Bad user input: a file, flag or hparam. The message says where and what."""


def run_cli(job):
    """Runs job() for a command-line entry point and returns its exit status.

    InputError -> its message on stderr, status 2 (no traceback: the message says it all);
    Ctrl-C -> a note that rerunning resumes, status 130.
    """
    try:
        job()
    except InputError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    return 0
