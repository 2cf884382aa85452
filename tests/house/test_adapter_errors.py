"""The adapter's errors are one tree, so any of them that reaches a player is worded for them.

Every exception class a module of `adapter/` defines derives from `adapter.errors.AdapterError`;
the dispatcher's catch-all (work that fails in a room) tells the player each one's own words:
the message itself when it was written for the player, otherwise what failed, with the
operator's details left to the log, never the apology kept for faults nobody foresaw.
"""

from __future__ import annotations

import importlib
import inspect

from adapter.errors import AdapterError
from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.outgoing import SendMessage
from tests.adapter.matrix.stand_ins import Ctx
from tests.house.test_layering import ROOT

OPERATOR_DETAIL = "M_FORBIDDEN at https://hs.example/_matrix/client/v3/rooms (token syt_secret)"


def exception_classes_of_the_adapter() -> list[type[BaseException]]:
    found = []
    for path in sorted((ROOT / "adapter").rglob("*.py")):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"))
        found += [
            cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__
        ]
    return found


def test_every_exception_the_adapter_defines_derives_from_the_adapter_error() -> None:
    classes = exception_classes_of_the_adapter()
    names = {cls.__name__ for cls in classes}
    assert {"AdapterError", "CommandError", "MediaError", "SendFailed", "StartupError", "ConfigError"} <= names
    assert [cls.__qualname__ for cls in classes if not issubclass(cls, AdapterError)] == []


def instance_of(cls: type[BaseException], message: str) -> BaseException:
    """An instance with `message`, whatever the class's own constructor asks for."""
    exc = cls.__new__(cls)
    BaseException.__init__(exc, message)
    return exc


async def test_the_dispatchers_catch_all_words_each_of_them_for_the_player() -> None:
    dispatcher = Dispatcher(Ctx(None, None))  # type: ignore[arg-type]
    for cls in exception_classes_of_the_adapter():
        assert issubclass(cls, AdapterError)
        worded = cls.worded_for_player
        exc = instance_of(cls, "That file is too large (over 8 MiB)." if worded else OPERATOR_DETAIL)

        async def work(exc: BaseException = exc) -> None:
            raise exc

        dispatcher.spawn(work, answer_in=("!room", f"$event-{cls.__name__}"))
        await dispatcher.idle()
        sent = dispatcher.ctx.sender.sent.pop()  # type: ignore[attr-defined]
        assert isinstance(sent, SendMessage) and sent.room_id == "!room"
        told = sent.content["body"]
        assert exc.for_player() in told, cls  # type: ignore[attr-defined]
        assert "Something went wrong on my side" not in told, cls
        if worded:
            assert told == "That file is too large (over 8 MiB)."
        else:
            assert OPERATOR_DETAIL not in told and told.endswith("the details are in the bot's log. Try again."), (cls, told)
