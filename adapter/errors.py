"""The adapter's errors, under one root: `AdapterError`, worded for whoever meets it.

Most reach only the operator, as one line from the `rpbot` commands, without a traceback
(`StartupError` and the other set-up errors). Any of them that reaches a player (a command, a
story line, a reaction) is told in the player's words (`AdapterError.for_player`, through
`adapter.matrix.failures.explain`), while its details go to the bot's log.
"""

from __future__ import annotations

from typing import ClassVar


class AdapterError(Exception):
    """Base class of every error the adapter raises on purpose.

    A player who meets one is told `for_player()`: the message itself when it was written for the
    player (`worded_for_player`: bad arguments, a file that could not be had), otherwise what
    failed in a player's words (`player_summary`), the operator's details left to the log.
    """

    worded_for_player: ClassVar[bool] = False
    player_summary: ClassVar[str] = "Something on my side failed"

    def for_player(self) -> str:
        if self.worded_for_player:
            return str(self)
        return f"{self.player_summary}; the details are in the bot's log."


class StartupError(AdapterError, RuntimeError):
    """The bot cannot start against this homeserver; the message says why and what to do."""

    player_summary = "The bot could not start"
