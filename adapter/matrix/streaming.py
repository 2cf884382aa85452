"""One streamed reply: a single message, updated by `m.replace` edits while the model writes.

The model's text is pushed here as it grows; a pump sends the newest text,
never more often than `min_interval_s` and at most `max_edits` times, so a rate
limit or a slow homeserver just means fewer, larger edits (the newest text
always wins). `finish` sends the complete text: as the only message if nothing
was shown yet, else as the final edit. Transaction ids derive from the source
event, so a replayed turn cannot post a second message.

With `streaming=False` (`[matrix] streaming = false`) nothing is shown while the model
writes but the typing notice (kept alive), and the reply is one message when complete:
no "(edited)" mark in Element, later first words. The reply's first message is sent
wearing the speaker's face in the room (`adapter.matrix.speaking`); edits need no switch,
as clients show an edited message under its original sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from adapter.matrix.outgoing import MatrixSender, SendMessage, SetTyping, txn_id_for
from adapter.matrix.render import SpeakerProfile, character_reply, edit_of
from adapter.matrix.speaking import RoomFaces

log = logging.getLogger(__name__)

TYPING_REFRESH_S = 20.0  # the typing notice is sent for 30 s; renewed before it lapses while the model writes


class StreamingReply:
    def __init__(
        self,
        sender: MatrixSender,
        room_id: str,
        source_event_id: str,
        speaker_name: str,
        *,
        speaker_id: str | None = None,
        min_interval_s: float = 1.0,
        max_edits: int = 20,
        event_id: str | None = None,
        on_first_shown: Callable[[str], Awaitable[None]] | None = None,
        profile: SpeakerProfile | None = None,
        faces: RoomFaces | None = None,
        streaming: bool = True,
        mentions: tuple[str, ...] = (),
    ) -> None:
        self.sender = sender
        self.room_id = room_id
        self.source_event_id = source_event_id
        self.speaker_name = speaker_name
        self.speaker_id = speaker_id or speaker_name  # names the transaction ids: one reply per character
        self.min_interval_s = min_interval_s
        self.max_edits = max_edits
        self.event_id = event_id  # set when resuming a reply already shown before a restart
        self.on_first_shown = on_first_shown
        self.profile = profile
        self.faces = faces
        self.streaming = streaming
        self.mentions = mentions
        self.edits_sent = 0
        self._latest = ""
        self._shown = ""
        self._last_send = 0.0
        self._changed = asyncio.Event()
        self._show_lock = asyncio.Lock()  # one send at a time: the pump's edit, then the final one
        self._pump: asyncio.Task[None] | None = None

    @property
    def latest_text(self) -> str:
        return self._latest

    def push(self, text: str) -> None:
        """The text so far; never blocks."""
        if not text.strip():
            return
        self._latest = text
        self._changed.set()
        if self._pump is None:
            self._pump = asyncio.create_task(self._run_pump() if self.streaming else self._keep_typing())

    async def _keep_typing(self) -> None:
        """Not streaming: only the typing notice shows the reply being written, renewed until it is done."""
        while True:
            await asyncio.sleep(TYPING_REFRESH_S)
            try:
                await self.sender.send(SetTyping(self.room_id, True))
            except Exception:  # noqa: BLE001  (a courtesy: the reply comes anyway)
                log.debug("typing notice not renewed in %s", self.room_id, exc_info=True)

    async def _run_pump(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            wait = self.min_interval_s - (time.monotonic() - self._last_send)
            if self.event_id is not None and wait > 0:
                await asyncio.sleep(wait)
            if self.event_id is not None and self.edits_sent >= self.max_edits:
                return  # the final edit carries the rest
            text = self._latest
            if text == self._shown:
                continue
            # Shielded: `finish` cancels the pump, and a send cut off half way (the homeserver has
            # the message, we do not have its id) would make `finish` re-send under the same
            # transaction id and get the stale first chunk back as "the" message, never edited.
            await asyncio.shield(self._show_locked(text))

    async def _show_locked(self, text: str) -> None:
        async with self._show_lock:
            await self._show(text, final=False)

    async def _show(self, text: str, *, final: bool, truncated: bool = False) -> None:
        content = character_reply(text, truncated=truncated, profile=self.profile, mentions=self.mentions)
        if self.event_id is None:
            async with self._speaking():
                self.event_id = await self.sender.send(
                    SendMessage(self.room_id, content, txn_id_for(self.source_event_id, f"reply:{self.speaker_id}"))
                )
            if self.on_first_shown is not None and self.event_id is not None:
                await self.on_first_shown(self.event_id)
        else:
            purpose = f"final:{self.speaker_id}" if final else f"edit:{self.speaker_id}:{self.edits_sent}"
            await self.sender.send(SendMessage(self.room_id, edit_of(self.event_id, content), txn_id_for(self.source_event_id, purpose)))
            if not final:
                self.edits_sent += 1
        self._shown = text
        self._last_send = time.monotonic()

    @contextlib.asynccontextmanager
    async def _speaking(self) -> AsyncIterator[None]:
        if self.faces is None:
            yield
            return
        async with self.faces.speaking(self.room_id, self.profile):
            yield

    async def finish(self, text: str, *, truncated: bool = False) -> str | None:
        """Show the complete text; return the reply's event id."""
        if self._pump is not None:
            self._pump.cancel()
            try:
                await self._pump
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("streaming edit failed in %s; the final text is sent anyway", self.room_id)
        async with self._show_lock:  # waits for an edit still in flight, so its event id is known
            if self.event_id is None or text != self._shown or truncated:
                await self._show(text, final=True, truncated=truncated)
        return self.event_id
