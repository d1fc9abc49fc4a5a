"""The one exception type for problems with what the user gave us.

Command-line entry points catch `InputError`, print its message (which names the
file, line or key at fault and what was expected) and exit with status 2, without a
traceback: the message is the whole story.
"""


class InputError(ValueError):
    """Bad user input: a file, flag or hparam. The message says where and what."""
