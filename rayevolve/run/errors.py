"""`RunError`: a run that cannot start or go on, with what to do in its message."""


class RunError(RuntimeError):
    """The run cannot start or go on; the message says what to do."""
