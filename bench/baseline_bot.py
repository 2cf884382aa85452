"""The baseline for bench/latency.py: the least a Matrix roleplay bot can do.

A plain matrix-nio bot: it joins rooms it is invited to, and for each text line it
calls the same OpenAI-compatible endpoint once (no memory, no prompt assembly, no
streaming) and sends the answer. Run as a process:

    python bench/baseline_bot.py HOMESERVER USER_ID PASSWORD LLM_BASE_URL
"""

from __future__ import annotations

import asyncio
import sys

import httpx
from nio import AsyncClient, InviteMemberEvent, MatrixRoom, RoomMessageText


async def main(homeserver: str, user_id: str, password: str, llm_base_url: str) -> None:
    client = AsyncClient(homeserver, user_id)
    await client.login(password)
    llm = httpx.AsyncClient(base_url=llm_base_url, timeout=60)
    first = await client.sync(timeout=0, full_state=True)

    async def answer(room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == client.user_id:
            return
        response = await llm.post(
            "/chat/completions",
            json={"model": "baseline", "messages": [{"role": "user", "content": event.body}]},
            headers={"X-RPBot-Purpose": "narrate"},
        )
        text = response.json()["choices"][0]["message"]["content"]
        await client.room_send(room.room_id, "m.room.message", {"msgtype": "m.text", "body": f"Baseline: {text}"})

    async def on_message(room: MatrixRoom, event: RoomMessageText) -> None:
        asyncio.create_task(answer(room, event))  # never wait inside nio's callback

    async def on_invite(room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == client.user_id:
            await client.join(room.room_id)

    client.add_event_callback(on_message, RoomMessageText)
    client.add_event_callback(on_invite, InviteMemberEvent)
    print("baseline ready", flush=True)
    await client.sync_forever(timeout=30000, since=first.next_batch)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
