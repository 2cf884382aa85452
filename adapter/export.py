"""`rpbot export`: one story as Markdown, for the player who played it.

The chat is named by its engine chat id or by its platform chat id (`mx-7`,
the id the player sees in `!status`), looked up read-only in
`adapter.sqlite3` (room_meta). The Markdown has the title, the cast, the
turns in order with speaker names (shown turns only: swipes a player
regenerated away are left out), each closed scene's summaries from every
present character's point of view, and the plot threads.
"""

from __future__ import annotations

from pathlib import Path

from adapter.config import Config
from adapter.errors import AdapterError
from adapter.matrix.store import chat_id_of_platform_chat
from core import make_llm_client, shown_location
from core.engine import Engine, ExportedScene, StoryExport
from core.errors import ChatNotFoundError


class ExportError(AdapterError, RuntimeError):
    """The story could not be found or read; the message says why."""

    player_summary = "The story could not be exported"


async def export_story(config: Config, chat: str) -> StoryExport:
    stories = config.storage.engine_location()
    if isinstance(stories, Path) and not stories.exists():
        raise ExportError(f"no stories here: {stories} does not exist")
    engine = await Engine.open(stories, make_llm_client("demo"))
    try:
        platform_chat = await chat_id_of_platform_chat(config.storage.adapter_location(), config.matrix.user_id, chat)
        for candidate in (chat, platform_chat):
            if candidate is None:
                continue
            try:
                return await engine.export_story(candidate)
            except ChatNotFoundError:
                continue
        raise ExportError(f"no story with chat id or platform chat id {chat!r} in {shown_location(str(stories))}")
    finally:
        await engine.close()


def _quote_block(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _scene_heading(scene: ExportedScene, number: int) -> str:
    title = f": {scene.title}" if scene.title else ""
    return f"### Scene {number}{title}\n\n*{scene.started_at:%A %d %B %Y, %H:%M}*"


def _summaries(scene: ExportedScene) -> list[str]:
    if not scene.summaries:
        return []
    lines = ["#### How they remember it"]
    for name, summary in scene.summaries:
        lines.append(f"**{name}:**\n\n{_quote_block(summary)}")
    return lines


def render_markdown(story: StoryExport) -> str:
    """The story as one Markdown document."""
    blocks = [f"# {story.title}", f"*A story with rpbot. Story clock at export: {story.clock:%A %d %B %Y, %H:%M}.*", "## Cast"]
    blocks.append("\n".join(f"- **{c.name}**" + (f": {c.description.splitlines()[0]}" if c.description else "") for c in story.cast))
    blocks.append("## Story")
    scenes = {scene.scene_id: scene for scene in story.scenes}
    numbers = {scene.scene_id: n for n, scene in enumerate(story.scenes, 1)}
    current: int | None = None
    shown_scenes: set[int] = set()
    for turn in story.turns:
        if turn.scene_id != current:
            if current in scenes:
                blocks.extend(_summaries(scenes[current]))
            current = turn.scene_id
            if current in scenes:
                blocks.append(_scene_heading(scenes[current], numbers[current]))
                shown_scenes.add(current)
        cut = " *(cut short)*" if turn.truncated else ""
        if turn.role == "narration":
            blocks.append(f"*{turn.text.strip()}*{cut}")
        else:
            blocks.append(f"**{turn.speaker_name}:** {turn.text.strip()}{cut}")
    if current in scenes:
        blocks.extend(_summaries(scenes[current]))
    for scene in story.scenes:
        if scene.scene_id not in shown_scenes and scene.summaries:
            blocks.append(_scene_heading(scene, numbers[scene.scene_id]))
            blocks.extend(_summaries(scene))
    if story.threads:
        blocks.append("## Threads")
        lines = []
        for thread in story.threads:
            ending = f" Resolved: {thread.resolution}" if thread.resolution else ""
            lines.append(f"- **{thread.title}** ({thread.status}): {thread.summary}{ending}".rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
