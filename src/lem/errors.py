"""The one exception type for problems a user can fix."""


class LemError(Exception):
    """Bad input or a missing resource: the CLI prints it as one line and exits with code 2.

    The message names the file, line, item or option at fault and says what to do.
    Bugs are not LemErrors; they keep their traceback.
    """
