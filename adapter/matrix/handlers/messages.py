"""Text from a player: commands (`!...`) and in-story turns.

`run_turn` is what a room's worker runs for one player line: the engine's
streamed reply goes out as one message per character turn, with a typing
notice while it is written. Any failure becomes a notice (adapter.matrix.failures):
a line the engine refused (nothing written) is answered and done with; any other
failure leaves the line owed, for `!regen` to answer.
"""

from __future__ import annotations

import logging

from adapter.matrix.avatars import speaker_profile
from adapter.matrix.context import BotContext
from adapter.matrix.failures import explain, is_retryable, log_failure
from adapter.matrix.outgoing import SendMessage, SetTyping, txn_id_for
from adapter.matrix.render import notice
from adapter.matrix.store import (
    RoomMeta,
    get_reply_message,
    latest_reply_event,
    mark_delivered,
    mark_failed,
    newest_failed_delivery,
    set_reply_message,
)
from adapter.matrix.streaming import StreamingReply

log = logging.getLogger(__name__)

NOTICE_HEADINGS = {"digest": "Meanwhile…", "narration": "Time passes…", "scene": "The scene closes."}


def notice_text(kind: str, text: str) -> str:
    heading = NOTICE_HEADINGS.get(kind)
    return f"*{heading}*\n\n{text}" if heading else text


async def _reply_stream(ctx: BotContext, meta: RoomMeta, source_event_id: str, speaker: str, speaker_id: str) -> StreamingReply:
    """The message this speaker's reply goes into: the one already shown for this source, if any."""

    async def remember(event_id: str) -> None:
        await set_reply_message(ctx.store, source_event_id, speaker, event_id)

    shown = await get_reply_message(ctx.store, source_event_id, speaker)
    profile = await speaker_profile(ctx, speaker_id, speaker)
    return StreamingReply(ctx.sender, meta.room_id, source_event_id, speaker, event_id=shown, on_first_shown=remember, profile=profile)


async def run_turn(ctx: BotContext, meta: RoomMeta, text: str, source_event_id: str, attempt_event_id: str | None = None) -> None:
    """Answer one in-story line: stream the character's reply into the room.

    `attempt_event_id` is the event asking for a retry of a failed line (a `!regen`): a second
    failure notice gets its own transaction id, so the homeserver does not swallow it as a repeat.
    """
    assert meta.chat_id is not None
    where = {"room_id": meta.room_id, "chat_id": meta.chat_id, "event_id": source_event_id}
    log.info("turn started", extra=where)
    log.debug("turn text: %r", text, extra=where)  # message bodies only at DEBUG
    await ctx.sender.send(SetTyping(meta.room_id, True))
    reply: StreamingReply | None = None
    try:
        notices = 0
        async for update in ctx.engine.post_turn(meta.chat_id, text, source_event_id):
            kind = getattr(update, "kind", "reply")
            if kind != "reply":  # a meanwhile digest, skip narration or a scene closing: shown as a notice
                notices += 1
                content = notice(notice_text(kind, update.text))
                await ctx.sender.send(SendMessage(meta.room_id, content, txn_id_for(source_event_id, f"{kind}:{notices}")))
                continue
            if reply is None or reply.speaker != update.speaker:
                if reply is not None:
                    await reply.finish(reply.latest_text)
                reply = await _reply_stream(ctx, meta, source_event_id, update.speaker, update.speaker_id)
            if update.done:
                event_id = await reply.finish(update.text, truncated=update.truncated)
                await mark_delivered(ctx.store, source_event_id, event_id, update.turn_id)
                log.info("reply delivered%s", " (truncated)" if update.truncated else "", extra=where)
            else:
                reply.push(update.text)
    except Exception as exc:  # noqa: BLE001  (every line gets an answer, whatever went wrong)
        log_failure("turn", exc, where)
        if is_retryable(exc):
            await mark_failed(ctx.store, source_event_id)
            text = explain(exc, retry="The story paused: send `!regen` to try again.")
        else:  # refused as it stands (nothing was written): answered, not owed
            await mark_delivered(ctx.store, source_event_id, None, None)
            text = explain(exc)
        await ctx.sender.send(SendMessage(meta.room_id, notice(text), txn_id_for(attempt_event_id or source_event_id, "error")))
    finally:
        await ctx.sender.send(SetTyping(meta.room_id, False))


async def run_regenerate(ctx: BotContext, meta: RoomMeta, source_event_id: str) -> None:
    """A new swipe of the newest reply, shown in place: edits of the same message."""
    assert meta.chat_id is not None
    failed = await newest_failed_delivery(ctx.store, meta.room_id)
    if failed is not None:  # the newest line never got its reply: answer it, never over an older reply
        await run_turn(ctx, meta, failed.text, failed.source_event_id, attempt_event_id=source_event_id)
        return
    target = await latest_reply_event(ctx.store, meta.room_id)
    if target is None:
        await ctx.sender.send(SendMessage(meta.room_id, notice("There is no reply to redo yet."), txn_id_for(source_event_id, "regen")))
        return
    await ctx.sender.send(SetTyping(meta.room_id, True))
    try:
        reply: StreamingReply | None = None
        async for update in ctx.engine.regenerate(meta.chat_id):
            if reply is None:
                profile = await speaker_profile(ctx, update.speaker_id, update.speaker)
                reply = StreamingReply(ctx.sender, meta.room_id, source_event_id, update.speaker, event_id=target, profile=profile)
            if update.done:
                await reply.finish(update.text, truncated=update.truncated)
            else:
                reply.push(update.text)
    except Exception as exc:  # noqa: BLE001  (every regenerate gets an answer, whatever went wrong)
        log_failure("regenerate", exc, {"room_id": meta.room_id, "chat_id": meta.chat_id})
        text = explain(exc, retry="The reply was not redone: try `!regen` again.")
        await ctx.sender.send(SendMessage(meta.room_id, notice(text), txn_id_for(source_event_id, "regen-error")))
    finally:
        await ctx.sender.send(SetTyping(meta.room_id, False))
