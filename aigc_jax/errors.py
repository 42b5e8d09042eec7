"""The one exception type a user sees as a one-line message (CLI exit code 2)."""


class UserError(Exception):
    """Bad input from the user: a bad value, a missing dataset, an unusable workdir.

    The message names the bad value and what was expected; the CLI prints it on one line.
    """
