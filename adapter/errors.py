"""Errors the `rpbot` commands report to the operator as one line, without a traceback."""


class StartupError(RuntimeError):
    """The bot cannot start against this homeserver; the message says why and what to do."""
