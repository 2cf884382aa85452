"""Streaming replies (throttled, capped, always complete) and safe rendering, with a recording sender."""

from __future__ import annotations

import asyncio

from adapter.matrix.outgoing import SendMessage, SetTyping, txn_id_for
from adapter.matrix.render import character_reply, edit_of, markdown_to_html
from adapter.matrix.streaming import StreamingReply


class RecordingSender:
    """Stands in for MatrixSender: records what would be sent; each send can take a while."""

    def __init__(self, send_delay_s: float = 0.0) -> None:
        self.sent: list[SendMessage] = []
        self.send_delay_s = send_delay_s

    async def send(self, event: SendMessage) -> str:
        await asyncio.sleep(self.send_delay_s)
        self.sent.append(event)
        return f"$event{len(self.sent)}"


async def stream_words(reply: StreamingReply, words: int, every_s: float) -> str:
    text = ""
    for index in range(words):
        text += f"word{index} "
        reply.push(text)
        await asyncio.sleep(every_s)
    return text.strip()


async def test_edits_are_throttled_and_the_final_edit_is_complete() -> None:
    sender = RecordingSender()
    reply = StreamingReply(sender, "!room", "$source", "Mira", min_interval_s=0.1, max_edits=100)  # type: ignore[arg-type]
    text = await stream_words(reply, words=50, every_s=0.01)  # 0.5 s of streaming
    event_id = await reply.finish(text)

    assert event_id == "$event1"
    first, *edits = sender.sent
    assert "m.relates_to" not in first.content
    assert all(e.content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$event1"} for e in edits)
    assert 2 <= len(edits) <= 7  # about one per 0.1 s, not one per word
    assert edits[-1].content["m.new_content"]["body"] == text


async def test_edit_count_is_capped_but_the_reply_still_ends_complete() -> None:
    sender = RecordingSender()
    reply = StreamingReply(sender, "!room", "$source", "Mira", min_interval_s=0.0, max_edits=3)  # type: ignore[arg-type]
    text = await stream_words(reply, words=40, every_s=0.005)
    await reply.finish(text)
    edits = sender.sent[1:]
    assert len(edits) == 4  # three streaming edits, then the final one
    assert edits[-1].content["m.new_content"]["body"] == text


async def test_a_slow_homeserver_means_fewer_larger_edits() -> None:
    sender = RecordingSender(send_delay_s=0.2)  # as if every send waited on a rate limit
    reply = StreamingReply(sender, "!room", "$source", "Mira", min_interval_s=0.0, max_edits=100)  # type: ignore[arg-type]
    text = await stream_words(reply, words=60, every_s=0.01)
    await reply.finish(text)
    assert len(sender.sent) <= 6
    assert sender.sent[-1].content["m.new_content"]["body"] == text


async def test_a_short_reply_is_one_message_and_transaction_ids_derive_from_the_source() -> None:
    sender = RecordingSender()
    reply = StreamingReply(sender, "!room", "$source", "Mira")  # type: ignore[arg-type]
    await reply.finish("Hello.")
    assert len(sender.sent) == 1
    assert sender.sent[0].txn_id == txn_id_for("$source", "reply:Mira")
    again = RecordingSender()
    await StreamingReply(again, "!room", "$source", "Mira").finish("Hello.")  # type: ignore[arg-type]
    assert again.sent[0].txn_id == sender.sent[0].txn_id  # a replay would be deduplicated by the homeserver


def test_markdown_is_rendered_and_html_injection_is_removed() -> None:
    html = markdown_to_html('*waves* **hello** <script>alert(1)</script> <img src=x onerror=alert(1)> [a](javascript:alert(1))')
    assert "<em>waves</em>" in html and "<strong>hello</strong>" in html
    assert "<script" not in html and "<img" not in html  # shown as text, never as markup
    assert "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert markdown_to_html("[ok](https://example.org)") == '<p><a href="https://example.org">ok</a></p>'


def test_a_reply_renders_markup_safely_and_edits_carry_new_content() -> None:
    content = character_reply("<b>Eve</b> says hi *there*")
    assert content["body"] == "<b>Eve</b> says hi *there*"
    assert content["formatted_body"] == "&lt;b&gt;Eve&lt;/b&gt; says hi <em>there</em>"
    edit = edit_of("$orig", content)
    assert edit["body"].startswith("* ") and edit["m.new_content"] == content


async def test_without_streaming_a_reply_is_one_message_when_complete_and_typing_is_kept_alive(monkeypatch) -> None:
    import adapter.matrix.streaming as streaming

    monkeypatch.setattr(streaming, "TYPING_REFRESH_S", 0.1)
    sender = RecordingSender()
    reply = StreamingReply(sender, "!room", "$source", "Mira", min_interval_s=0.0, streaming=False)  # type: ignore[arg-type]
    text = await stream_words(reply, words=30, every_s=0.01)  # 0.3 s of writing
    await reply.finish(text)
    messages = [e for e in sender.sent if isinstance(e, SendMessage)]
    assert len(messages) == 1 and "m.relates_to" not in messages[0].content  # no edit: no "(edited)"
    assert messages[0].content["body"] == text
    typing = [e for e in sender.sent if isinstance(e, SetTyping)]
    assert len(typing) >= 2 and set(typing) == {SetTyping("!room", True)}  # renewed while the model wrote
    assert sender.sent[-1] == messages[0]  # nothing renews it once the reply is there
