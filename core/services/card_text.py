"""A character card as prompts show it: macros resolved, fields in SillyTavern's order.

- `main_prompt`: the story's instruction to the speaking character; a card's `system_prompt`
  replaces it, with `{{original}}` standing for it (as in SillyTavern).
- `card_block`: main prompt, then `Character:` / `Description:` / `Personality:` /
  `Scenario:` (the lines the demo model reads too), then the persona of the story's owner
  (`User:`, whom `{{user}}` stands for).
- `present_block`: who else is present, each in a line (the other characters, each player).
- `story_scenario`: the one scenario everyone present shares (the story's, else the host's).
- `example_blocks`: `mes_example` split at `<START>` into separate example dialogues.
- `post_history`: the card's `post_history_instructions`, sent after the dialogue.
- `character_brief`: who a character is, for prompts where it does not reply to the player
  (scene summaries, meanwhile scenes); `brief_within` cuts it to a request's share.

The full list of card fields and what rpbot does with each is in `docs/prompts.md`.
"""

from __future__ import annotations

import re

from core.services.dialogue import Cast, join_names
from core.services.macros import MacroValues, expand
from core.state import world

BRIEF_CHARS = 200  # a one-line brief of another character or a player, in a reply prompt
_START = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)


def nickname(character: world.Character) -> str:
    """A V3 card's `nickname` (what `{{char}}` stands for when set), else the name."""
    data = (character.raw_card or {}).get("data")
    nick = data.get("nickname") if isinstance(data, dict) else None
    return nick.strip() if isinstance(nick, str) and nick.strip() else character.name


def _values(character: world.Character, cast: Cast, original: str, scenario: str) -> MacroValues:
    return MacroValues(
        char=nickname(character), user=cast.player.name, clock=cast.chat.clock, persona=cast.player.description,
        original=original, description=character.description, personality=character.personality,
        scenario=scenario,
    )


def story_scenario(cast: Cast) -> str:
    """The scenario everyone present shares, macros resolved as its host's (`{{char}}` is the
    host): the story's own, else its host's card's (a guest joins the host's story; its own
    card's scenario would put it somewhere else)."""
    return expand(cast.chat.scenario or cast.host.scenario, _values(cast.host, cast, "", ""))


def macro_values(character: world.Character, cast: Cast, original: str = "") -> MacroValues:
    return _values(character, cast, original, story_scenario(cast))


def fill(text: str, character: world.Character, cast: Cast, original: str = "") -> str:
    """`text` (a card field, greeting or example) with every macro resolved for `character`."""
    return expand(text, macro_values(character, cast, original))


def main_prompt(character: world.Character, cast: Cast) -> str:
    """The instruction to the speaking character: the roleplay is with every player playing (and
    the other characters present), and it never speaks, acts or decides for any of them."""
    players = [p.name for p in cast.present_players]
    others = [c.name for c in cast.characters if c.character_id != character.character_id]
    company = join_names(players) + (f", with {join_names(others)} also in the scene" if others else "")
    default = (
        f"You are {character.name} in an ongoing roleplay with {company}. Stay in character. Write only "
        f"{character.name}'s own words and actions, in a few short paragraphs at most; never speak, act "
        f"or decide for {join_names(players + others, 'or')}."
    )
    if not character.system_prompt.strip():
        return default
    return fill(character.system_prompt, character, cast, original=default) or default


def _profile_lines(character: world.Character, cast: Cast, *, scenario: bool = True) -> list[str]:
    lines = [f"Character: {character.name}"]
    for label, text in (("Description", character.description), ("Personality", character.personality)):
        filled = fill(text, character, cast)
        if filled:
            lines.append(f"{label}: {filled}")
    if scenario and (shared := story_scenario(cast)):
        lines.append(f"Scenario: {shared}")
    return lines


def present_block(cast: Cast, speaker: world.Character) -> str:
    """Who else is present, for `speaker`'s prompt: with one player and no other character, one
    line; else a line each, a brief of each other character (its description's first sentences)
    and of each player (their persona's; the owner's is in the `User:` lines above)."""
    others = [c for c in cast.characters if c.character_id != speaker.character_id]
    if not others and not cast.is_group:
        return f"Present: {cast.player.name} (the player)."
    lines = []
    for character in others:
        brief = whole_sentences(fill(character.description, character, cast), BRIEF_CHARS)
        lines.append(f"- {character.name}" + (f": {brief}" if brief else ""))
    label = "a player" if cast.is_group else "the player"
    for player in cast.present_players:
        brief = "" if player.owner == cast.player.owner else whole_sentences(player.description, BRIEF_CHARS)
        lines.append(f"- {player.name} ({label})" + (f": {brief}" if brief else ""))
    return "Present:\n" + "\n".join(lines)


def persona_lines(cast: Cast) -> list[str]:
    player = cast.player
    lines = [f"User: {player.name}"]
    if player.description.strip():
        lines.append(f"{player.name}'s persona: {player.description.strip()}")
    return lines


def card_block(character: world.Character, cast: Cast) -> str:
    """The stable head of a reply prompt: main prompt, the card, the player's persona."""
    return "\n".join([main_prompt(character, cast), "", *_profile_lines(character, cast), *persona_lines(cast)])


def card_block_within(character: world.Character, cast: Cast, chars: int) -> str:
    """`card_block` in at most about `chars` characters: when it is longer, its longest lines (a
    long description, personality or scenario) are cut at a sentence until it fits, the player's
    persona and the main prompt kept."""
    lines = card_block(character, cast).split("\n")
    for _ in range(len(lines)):
        excess = sum(len(line) + 1 for line in lines) - chars
        if excess <= 0:
            break
        longest = max(range(len(lines)), key=lambda i: len(lines[i]))
        keep = max(200, len(lines[longest]) - excess)
        if keep >= len(lines[longest]):
            break
        cut = whole_sentences(lines[longest], keep)
        lines[longest] = cut if len(cut) <= keep else lines[longest][:keep].rstrip() + "…"
    return "\n".join(lines)


def character_brief(character: world.Character, cast: Cast) -> str:
    """Who `character` is (card fields but the scenario, and the player's persona), without the
    reply instruction: for prompts that say where the story stands themselves."""
    return "\n".join([*_profile_lines(character, cast, scenario=False), *persona_lines(cast)])


def brief_within(character: world.Character, cast: Cast, chars: int) -> str:
    """`character_brief` in at most `chars` characters: whole lines while they fit, then the
    next line's first sentences that do (a request's share of a long card)."""
    text = character_brief(character, cast)
    if len(text) <= chars:
        return text
    kept: list[str] = []
    used = 0
    for line in text.split("\n"):
        if used + len(line) + 1 > chars:
            rest = whole_sentences(line, chars - used)
            kept.append(rest if len(rest) <= chars - used else line[: max(0, chars - used - 1)] + "…")
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def example_blocks(character: world.Character, cast: Cast) -> list[str]:
    """The card's example dialogues (`mes_example` split at `<START>`), macros resolved."""
    blocks = [fill(block, character, cast) for block in _START.split(character.mes_example or "")]
    return [block for block in blocks if block]


def post_history(character: world.Character, cast: Cast) -> str:
    return fill(character.post_history_instructions, character, cast)


_SENTENCE = re.compile(r"[^.!?…]*[.!?…]+[\"'”’)\]*]*|[^.!?…]+$")


def whole_sentences(text: str, limit: int) -> str:
    """The first sentences of `text` that fit in `limit` characters (always at least one whole one)."""
    kept = ""
    for match in _SENTENCE.finditer(" ".join(text.split())):
        sentence = match.group().strip()
        candidate = f"{kept} {sentence}".strip()
        if kept and len(candidate) > limit:
            break
        kept = candidate
    return kept


def greeting(character: world.Character, cast: Cast) -> str:
    return fill(character.first_mes, character, cast)


def group_greeting(character: world.Character) -> str:
    """A V3 card's first `group_only_greetings` entry (its greeting for a scene with others), else ""."""
    data = (character.raw_card or {}).get("data")
    greetings = data.get("group_only_greetings") if isinstance(data, dict) else None
    found = [g for g in greetings if isinstance(g, str) and g.strip()] if isinstance(greetings, list) else []
    return found[0] if found else ""
