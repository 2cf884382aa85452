"""What the bot says when a player fixes a turn: an edit or a delete it cannot act on, a take
out of range, what a take-back did, and the hint after a skip or scene close a line asked for."""

from __future__ import annotations

from core.engine import Rewound, Takes

TAKE_IT_BACK = "_`!rewind` takes this back; your line and its answer stay._"
OLDER_LINE_EDITED = (
    "Only your latest line can be changed by editing it; the story has gone on since this one. "
    "To change the story from here, take the later lines back with `!rewind <n>` (or delete your latest line), "
    "then say it again."
)
OLDER_LINE_DELETED = (
    "Only your latest line can be taken back by deleting it. `!rewind <n>` takes back your last n lines "
    "(with their answers); the story keeps this one meanwhile."
)
REPLY_DELETED = (
    "Deleting a reply does not change the story. React 🔄 to it for a new take, ◀ ▶ for another one, "
    "or delete your own line to take the exchange back."
)
NOT_A_STORY_LINE = "That message is not a line of the story (an out-of-character line, or one I could not take), so editing it changes nothing."
NOT_YOUR_LINE = "Only the player who said a line can change it or take it back: it stays in the story."
TAKEN_BACK_LINE_EDITED = "That line was taken back, so editing it changes nothing: say it again as a new line."
TAKEN_BACK_REASON = "taken back from the story"
ONLY_THE_NEWEST_TAKES = "Only the newest reply has takes to show: react ◀ ▶ to that one, or send `!take <n>`."
ONLY_THE_NEWEST_GOES_ON = "Only the newest reply can go on: react ⏩ to that one, or send `!continue`."


def rewind_text(rewound: Rewound) -> str:
    lines = len(rewound.line_sources)
    if not lines:
        what = "Taken back: the skip or scene close your last line asked for; your line and its answer stay."
    elif rewound.steps > lines:
        what = f"Taken back: {rewound.steps} steps, {lines} of your lines among them."
    else:
        what = f"Taken back: your last {lines} line{'s' if lines != 1 else ''} and what followed."
    return taken_back_text(rewound, what)


def taken_back_text(rewound: Rewound, what: str) -> str:
    """What a take-back did, in a few words."""
    parts = [what]
    if rewound.scene_reopened:
        parts.append("The scene is open again.")
    return " ".join(parts) + f" It is {rewound.clock.strftime('%A %d %B %Y, %H:%M').replace(' 0', ' ')} in the story."


def take_bounds_text(wanted: int, takes: Takes) -> str:
    if wanted < 1:
        return f"This is the first take (1 of {takes.count}). React ▶ for a later one."
    if takes.count == 1:
        return "This reply has one take so far: react 🔄 (or send `!regen`) to write another."
    if wanted > takes.count:
        return f"This is the newest take ({takes.count} of {takes.count}): react 🔄 (or send `!regen`) to write another."
    return f"Take {wanted} of {takes.count} is the one shown."
