class PainterError(Exception):
    """An error the user can act on: the CLI prints its message without a traceback."""


class Stopped(PainterError):
    """A stage stopped by a signal with its work saved; the exit code says which signal (128 + its number)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum
