"""A reply that finishes while its first chunk is still being sent ends complete (found by the load test).

The homeserver keeps a message as soon as the request reaches it and answers a repeated
transaction id with the first event, unchanged. If `finish` cut the first send off half way,
it re-sent under the same transaction id, got the stale first chunk back, and never edited it.
"""

from __future__ import annotations

import asyncio

from adapter.matrix.streaming import StreamingReply


class SlowDedupingHomeserver:
    """Stores a message on arrival, answers slowly; a repeated txn id returns the first event unchanged."""

    def __init__(self, answer_delay_s: float) -> None:
        self.answer_delay_s = answer_delay_s
        self.by_txn: dict[str, str] = {}
        self.shown: dict[str, str] = {}  # event id -> body a client shows (edits applied)

    async def send(self, event) -> str | None:
        content = event.content
        if event.txn_id in self.by_txn:
            return self.by_txn[event.txn_id]
        event_id = f"$e{len(self.by_txn)}"
        self.by_txn[event.txn_id] = event_id
        relates = content.get("m.relates_to", {})
        if relates.get("rel_type") == "m.replace":
            self.shown[relates["event_id"]] = content["m.new_content"]["body"]
        else:
            self.shown[event_id] = content["body"]
        await asyncio.sleep(self.answer_delay_s)
        return event_id


async def test_finishing_during_the_first_send_still_shows_the_whole_reply() -> None:
    homeserver = SlowDedupingHomeserver(answer_delay_s=0.2)
    reply = StreamingReply(homeserver, "!room", "$line", "Mira")  # type: ignore[arg-type]
    reply.push("Answering li")
    await asyncio.sleep(0.05)  # the first chunk is on its way, its answer not back yet
    event_id = await reply.finish("Answering line-1: the whole reply.")
    assert event_id is not None
    assert list(homeserver.shown.values()) == ["Answering line-1: the whole reply."]
