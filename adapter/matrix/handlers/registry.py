"""Every `!command` in one explicit registry, and running one command line.

The registry is built here from each handler module's own `COMMANDS`, in the order
`!help` and the generated docs list them. `handle_command` decides the answer to one
line: the command's results, or for a bad command or bad arguments a short error with
the usage line, never silence.
"""

from __future__ import annotations

import difflib

from adapter.matrix.context import BotContext
from adapter.matrix.failures import explain, log_failure
from adapter.matrix.handlers import commands, lore_commands, persona, player_commands, story_commands
from adapter.matrix.handlers.commands import Command, CommandError, CommandResult, Invocation
from adapter.matrix.room_types import LOBBY_ROOMS, STORY_ROOMS
from adapter.matrix.store import RoomMeta


def help_text(room_type: str) -> str:
    where = "this story room" if room_type in STORY_ROOMS else "the Lobby"
    lines = [f"**Commands in {where}:**", ""]
    lines += [f"- `{c.usage}`: {c.summary}" for c in REGISTRY.values() if room_type in c.rooms]
    if room_type in STORY_ROOMS:
        lines += ["", "Anything else you type is your line in the story; `((like this))` is out of character. "
                  "Edit your latest line to say it differently, or delete it to take it back. "
                  "React to a reply: 🔄 a new take, ◀ ▶ another take, ⏩ go on, ⏹ stop."]
    return "\n".join(lines)


async def _help(inv: Invocation) -> list[CommandResult]:
    return inv.reply(help_text(inv.meta.room_type))


HELP = Command("help", "!help", "what you can do here", LOBBY_ROOMS | STORY_ROOMS, _help)
REGISTRY: dict[str, Command] = {
    c.name: c for c in (HELP, *commands.COMMANDS, *persona.COMMANDS, *story_commands.COMMANDS, *player_commands.COMMANDS,
                        *lore_commands.COMMANDS)
}


async def handle_command(
    ctx: BotContext, meta: RoomMeta, text: str, source_event_id: str, sender: str, reply_to: str | None = None,
    mentions: tuple[str, ...] = (),
) -> list[CommandResult]:
    """Decide the answer to one `!command` line (`mentions`: the users it mentions)."""
    name, _, args = text[1:].strip().partition(" ")
    name = name.lower()
    invocation = Invocation(ctx, meta, name, args.strip(), source_event_id, sender, reply_to, mentions)
    found = REGISTRY.get(name)
    if found is None:
        close = difflib.get_close_matches(name, [c.name for c in REGISTRY.values() if meta.room_type in c.rooms], n=1, cutoff=0.6)
        guess = f" Did you mean `!{close[0]}`?" if close else ""
        return invocation.reply(f"Unknown command `!{name}`.{guess}\n\n{help_text(meta.room_type)}")
    if meta.room_type not in found.rooms:
        elsewhere = "a story room" if found.rooms == STORY_ROOMS else "the Lobby"
        return invocation.reply(f"`!{name}` works in {elsewhere}, not here. Usage: `{found.usage}`")
    if found.owner_only and sender != meta.matrix_user_id:
        return invocation.reply(f"Only {meta.matrix_user_id}, whose story this is, can use `!{name}`.")
    try:
        return await found.handler(invocation)
    except CommandError as exc:
        return invocation.reply(f"{exc}\n\nUsage: `{found.usage}`")
    except Exception as exc:  # noqa: BLE001  (every command gets an answer, whatever went wrong)
        log_failure(f"!{name}", exc, {"room_id": meta.room_id, "chat_id": meta.chat_id})
        return invocation.reply(explain(exc, retry=f"Try `!{name}` again."), purpose="command-error")
