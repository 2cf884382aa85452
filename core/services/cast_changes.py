"""Characters come and go: a character invited into a story makes its entrance; one dismissed leaves.

A story holds at most `MAX_CHARACTERS` characters at once, its host first.  An invited character
comes in at once (`character_invited`): it is present in the open scene (its entrance opens one
if none is), its card's lorebook comes with it, and from then on it witnesses what is said, and nothing said
before: its prompts hold no earlier line, and no earlier exchange is its memory.  Then its
entrance is written like a guest's (`TurnPipeline.write_entrance`, from its own greeting, or a
V3 card's group greeting), under an engine source id of its own (`invite-<seq>#guest`).  A model
failure leaves it present without an entrance.  A dismissed character (`character_dismissed`)
leaves the story and keeps what it witnessed; the host never leaves its own story, so a story is
never left without a character.  Both run in the chat's turn, after its previous reply's after-work.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from core.errors import InvalidCastError
from core.services.dialogue import GUEST_SUFFIX, INVITED_ENTRANCE_PREFIX, load_cast
from core.services.lorebook import import_card_books
from core.services.replying import TurnUpdate
from core.services.talk import TurnPipeline
from core.state import world

MAX_CHARACTERS = 4  # present at once, the host included


class CastChanges:
    def __init__(self, pipeline: TurnPipeline) -> None:
        self.pipeline = pipeline
        self.db = pipeline.db

    async def invite(self, chat_id: str, character: world.Character) -> AsyncGenerator[TurnUpdate, None]:
        """`character` comes into the story, then its entrance streams.  InvalidCastError when it is
        present already or the story holds `MAX_CHARACTERS`."""
        async with self.pipeline.hold(chat_id):
            cast = await load_cast(self.db, chat_id)
            if cast.get(character.character_id) is not None:
                raise InvalidCastError(f"{character.name} is already in this story")
            if len(cast.characters) >= MAX_CHARACTERS:
                raise InvalidCastError(f"a story holds at most {MAX_CHARACTERS} characters at once: dismiss one first")
            async with self.db.transaction() as tx:
                seq = await world.invite_character(tx, chat_id, character.character_id)
                scene = await world.current_scene(tx, chat_id)
                if scene is not None:
                    await world.join_scene(tx, scene, character.character_id, player=False)
                await import_card_books(tx, chat_id, [character])
            cast = await load_cast(self.db, chat_id)
            entrance = self.pipeline.write_entrance(cast, character, f"{INVITED_ENTRANCE_PREFIX}{seq}{GUEST_SUFFIX}")
            async with aclosing(entrance) as updates:
                async for update in updates:
                    yield update

    async def dismiss(self, chat_id: str, character: world.Character) -> None:
        """`character` leaves the story.  InvalidCastError when it is not present, or is the host."""
        async with self.pipeline.exclusive(chat_id):
            cast = await load_cast(self.db, chat_id)
            if cast.get(character.character_id) is None:
                raise InvalidCastError(f"{character.name} is not in this story")
            if character.character_id == cast.host.character_id:
                raise InvalidCastError(f"{character.name} is this story's host and stays in it")
            await world.dismiss_character(self.db, chat_id, character.character_id)
