"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class GanforgeError(Exception):
    """A problem the user can fix (bad name, missing file, corrupt checkpoint ...).

    The message is a complete sentence meant for the terminal: no traceback is shown.
    """


class Interrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM after writing a checkpoint. The message says how
    to continue; the command exits with 130."""
