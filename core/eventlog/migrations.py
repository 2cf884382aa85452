"""The engine's schema: its numbered migrations, registered in order.

The mechanism (version numbers in the `schema_versions` table, one transaction per step,
a newer database refused, a PostgreSQL database started from its baseline) is
`core.eventlog.schema.Schema`, shared with the adapter's cache.  To change the schema, append a
new migration at the end of this file, written for both dialects (the step is given the
connection; ask its `dialect`); never edit one that has shipped.  If the change touches a
projection, keep `PROJECTION_TABLES` in step: replay clears exactly those tables.
"""

from __future__ import annotations

import json

from core.eventlog.postgres_baseline import STATEMENTS as POSTGRES_BASELINE
from core.eventlog.postgres_baseline import VERSION as POSTGRES_BASELINE_VERSION
from core.eventlog.schema import Migration, Schema, run_statements
from core.storage import Connection, Dialect
from core.storage.sql import json_items, table_definition

ENGINE_SCHEMA = Schema("engine", "engine.sqlite3")
ENGINE_SCHEMA.baseline(Dialect.POSTGRESQL, POSTGRES_BASELINE_VERSION, POSTGRES_BASELINE)
MIGRATIONS: list[Migration] = ENGINE_SCHEMA.migrations
migration = ENGINE_SCHEMA.migration
upgrade_schema = ENGINE_SCHEMA.upgrade

__all__ = ["ENGINE_SCHEMA", "MIGRATIONS", "PROJECTION_TABLES", "latest_version", "schema_version", "upgrade_schema"]

# Projection tables in an order that is safe to clear (children before parents).
# The event log (`events`) is the truth and is never in this list.
PROJECTION_TABLES: tuple[str, ...] = (
    "story_cast",
    "story_players",
    "story_personas",
    "clock_changes",
    "lore_knowers",
    "lore_entries",
    "lore_books",
    "lines",
    "personas",
    "digests",
    "world_event_changes",
    "world_events",
    "thread_changes",
    "plot_threads",
    "edge_changes",
    "edges",
    "memory_witnesses",
    "memories",
    "turn_witnesses",
    "turns",
    "scenes",
    "chats",
    "characters",
)


def latest_version() -> int:
    return ENGINE_SCHEMA.latest_version


async def schema_version(conn: Connection) -> int:
    return await ENGINE_SCHEMA.version(conn)


@migration("event log, world, turns, memory with witnesses and FTS5, edges, plot")
async def _initial_schema(conn: Connection) -> None:
    await run_statements(conn, [
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            chat_id TEXT,
            payload TEXT NOT NULL,
            recorded_at REAL NOT NULL  -- wall clock, for audit only; story times live in payloads
        )""",
        "CREATE INDEX events_by_chat ON events (chat_id, seq)",
        """CREATE TABLE characters (
            character_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            personality TEXT NOT NULL,
            scenario TEXT NOT NULL,
            first_mes TEXT NOT NULL,
            mes_example TEXT NOT NULL,
            system_prompt TEXT NOT NULL,
            post_history_instructions TEXT NOT NULL,
            creator_notes TEXT NOT NULL,
            alternate_greetings TEXT NOT NULL,  -- JSON list
            tags TEXT NOT NULL,                 -- JSON list
            creator TEXT NOT NULL,
            character_version TEXT NOT NULL,
            spec TEXT NOT NULL,
            raw_card TEXT,                      -- the whole imported card, unknown fields kept
            registered_seq INTEGER NOT NULL
        )""",
        # chat_num is a dense number used to give each chat its own memory rowid range.
        """CREATE TABLE chats (
            chat_id TEXT PRIMARY KEY,
            chat_num INTEGER NOT NULL UNIQUE,
            owner TEXT NOT NULL,
            host TEXT NOT NULL REFERENCES characters (character_id),
            guest TEXT REFERENCES characters (character_id),
            title TEXT NOT NULL,
            clock TEXT NOT NULL,
            created_seq INTEGER NOT NULL
        )""",
        "CREATE INDEX chats_by_owner ON chats (owner)",
        """CREATE TABLE scenes (
            scene_id INTEGER PRIMARY KEY,
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            kind TEXT NOT NULL CHECK (kind IN ('main', 'meanwhile')),
            title TEXT NOT NULL,
            present TEXT NOT NULL,  -- JSON list of character ids (and "you")
            started_at TEXT NOT NULL,
            closed_at TEXT
        )""",
        "CREATE INDEX scenes_by_chat ON scenes (chat_id, kind, closed_at)",
        """CREATE TABLE turns (
            turn_id INTEGER PRIMARY KEY,
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            scene_id INTEGER REFERENCES scenes (scene_id),
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'narration')),
            speaker TEXT NOT NULL,
            text TEXT NOT NULL,
            source_id TEXT,
            story_time TEXT NOT NULL,
            truncated INTEGER NOT NULL DEFAULT 0,
            sibling_group INTEGER NOT NULL,
            superseded_by INTEGER REFERENCES turns (turn_id)
        )""",
        "CREATE INDEX turns_by_chat ON turns (chat_id, turn_id)",
        "CREATE INDEX turns_by_group ON turns (sibling_group)",
        "CREATE INDEX turns_by_scene ON turns (scene_id, turn_id)",
        "CREATE UNIQUE INDEX turns_by_source ON turns (chat_id, source_id) WHERE source_id IS NOT NULL",
        # memory_id = (chat_num << 32) | n-th memory of the chat, so a chat's memories
        # are one contiguous rowid range that FTS5 can seek into.
        """CREATE TABLE memories (
            memory_id INTEGER PRIMARY KEY,
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            scene_id INTEGER REFERENCES scenes (scene_id),
            kind TEXT NOT NULL CHECK (kind IN ('event', 'summary')),
            pov TEXT,
            text TEXT NOT NULL,
            significance INTEGER NOT NULL CHECK (significance BETWEEN 1 AND 3),
            story_time TEXT NOT NULL,
            source_turn_id INTEGER REFERENCES turns (turn_id),
            retracted INTEGER NOT NULL DEFAULT 0,
            recorded_seq INTEGER NOT NULL
        )""",
        "CREATE INDEX memories_by_source_turn ON memories (source_turn_id) WHERE source_turn_id IS NOT NULL",
        """CREATE TABLE memory_witnesses (
            memory_id INTEGER NOT NULL REFERENCES memories (memory_id),
            witness TEXT NOT NULL,
            PRIMARY KEY (memory_id, witness)
        ) WITHOUT ROWID""",
        "CREATE INDEX memory_witnesses_by_witness ON memory_witnesses (witness, memory_id)",
        """CREATE VIRTUAL TABLE memories_fts USING fts5 (
            text, content = 'memories', content_rowid = 'memory_id',
            tokenize = 'porter unicode61 remove_diacritics 2'
        )""",
        # Only live (not retracted) memories are indexed, so never run FTS5 'rebuild'
        # (it would index retracted rows too); replay rebuilds the index correctly.
        """CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories WHEN new.retracted = 0 BEGIN
            INSERT INTO memories_fts (rowid, text) VALUES (new.memory_id, new.text);
        END""",
        """CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories WHEN old.retracted = 0 BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.memory_id, old.text);
        END""",
        """CREATE TRIGGER memories_fts_update AFTER UPDATE OF text, retracted ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, text)
                SELECT 'delete', old.memory_id, old.text WHERE old.retracted = 0;
            INSERT INTO memories_fts (rowid, text)
                SELECT new.memory_id, new.text WHERE new.retracted = 0;
        END""",
        """CREATE TABLE edges (
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            from_id TEXT NOT NULL,
            to_id TEXT NOT NULL,
            affinity INTEGER NOT NULL,
            trust INTEGER NOT NULL,
            summary TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            updated_seq INTEGER NOT NULL,
            PRIMARY KEY (chat_id, from_id, to_id)
        )""",
        """CREATE TABLE plot_threads (
            thread_id INTEGER PRIMARY KEY,
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            title TEXT NOT NULL,
            summary TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
            opened_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            closed_at TEXT,
            resolution TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX plot_threads_by_chat ON plot_threads (chat_id, status)",
        """CREATE TABLE world_events (
            world_event_id INTEGER PRIMARY KEY,
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            title TEXT NOT NULL,
            description TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('planned', 'started', 'completed', 'cancelled')),
            due_at TEXT,
            planned_at TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT
        )""",
        "CREATE INDEX world_events_by_chat ON world_events (chat_id, status, due_at)",
        """CREATE TABLE digests (
            digest_id INTEGER PRIMARY KEY,
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            scene_id INTEGER REFERENCES scenes (scene_id),
            text TEXT NOT NULL,
            participants TEXT NOT NULL,  -- JSON list
            status TEXT NOT NULL CHECK (status IN ('pending', 'consumed')),
            created_at TEXT NOT NULL,
            consumed_at TEXT,
            consumed_by_turn INTEGER REFERENCES turns (turn_id)
        )""",
        "CREATE INDEX digests_by_chat ON digests (chat_id, status)",
    ])


@migration("index the live scene summaries by scene (which closed scenes still owe a summary)")
async def _summaries_by_scene(conn: Connection) -> None:
    await run_statements(conn, [
        "CREATE INDEX memories_summaries_by_scene ON memories (scene_id, pov) WHERE kind = 'summary' AND retracted = 0",
    ])


@migration("who witnessed each turn: the player and the chat's cast when it was said")
async def _turn_witnesses(conn: Connection) -> None:
    await run_statements(conn, [
        """CREATE TABLE turn_witnesses (
            turn_id INTEGER NOT NULL REFERENCES turns (turn_id),
            witness TEXT NOT NULL,
            PRIMARY KEY (turn_id, witness)
        ) WITHOUT ROWID""",
        # Turns recorded before this table existed: witnessed by the chat's cast as it is now.
        """INSERT INTO turn_witnesses (turn_id, witness)
           SELECT turn_id, 'you' FROM turns
           UNION SELECT t.turn_id, c.host FROM turns t JOIN chats c ON c.chat_id = t.chat_id
           UNION SELECT t.turn_id, c.guest FROM turns t JOIN chats c ON c.chat_id = t.chat_id
                 WHERE c.guest IS NOT NULL""",
    ])


@migration("player personas: a name and a short description per player")
async def _personas(conn: Connection) -> None:
    await run_statements(conn, [
        """CREATE TABLE personas (
            owner TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT NOT NULL
        )""",
    ])


@migration("typed causes: the change histories of edges, world events and threads; who planned an event, "
           "which line closed a scene")
async def _typed_causes(conn: Connection) -> None:
    await run_statements(conn, [
        """CREATE TABLE edge_changes (
            seq INTEGER PRIMARY KEY,  -- the edge_set event
            chat_id TEXT NOT NULL,
            from_id TEXT NOT NULL,
            to_id TEXT NOT NULL,
            affinity INTEGER NOT NULL,
            trust INTEGER NOT NULL,
            summary TEXT NOT NULL,
            reason TEXT NOT NULL,
            cause_turn_id INTEGER  -- the reply whose exchange made the change
        )""",
        "CREATE INDEX edge_changes_by_edge ON edge_changes (chat_id, from_id, to_id, seq)",
        "CREATE INDEX edge_changes_by_cause ON edge_changes (cause_turn_id) WHERE cause_turn_id IS NOT NULL",
        # Older edge_set events named their turn only in the reason ("turn:<id>; ...").
        """INSERT INTO edge_changes
           SELECT seq, chat_id, json_extract(payload, '$.from_id'), json_extract(payload, '$.to_id'),
                  json_extract(payload, '$.affinity'), json_extract(payload, '$.trust'),
                  coalesce(json_extract(payload, '$.summary'), ''), coalesce(json_extract(payload, '$.reason'), ''),
                  CASE WHEN json_extract(payload, '$.reason') GLOB 'turn:[0-9]*;*'
                       THEN CAST(substr(json_extract(payload, '$.reason'), 6,
                                        instr(json_extract(payload, '$.reason'), ';') - 6) AS INTEGER) END
           FROM events WHERE kind = 'edge_set'""",
        """CREATE TABLE world_event_changes (
            seq INTEGER PRIMARY KEY,  -- the world_event_transitioned or world_event_reverted event
            chat_id TEXT NOT NULL,
            world_event_id INTEGER NOT NULL,
            status TEXT NOT NULL,  -- the status it moved to
            is_undo INTEGER NOT NULL,  -- 1 for a compensating reversion
            cause_turn_id INTEGER
        )""",
        "CREATE INDEX world_event_changes_by_event ON world_event_changes (world_event_id, seq)",
        "CREATE INDEX world_event_changes_by_chat ON world_event_changes (chat_id, seq)",
        """INSERT INTO world_event_changes
           SELECT seq, chat_id, json_extract(payload, '$.world_event_id'), json_extract(payload, '$.to'),
                  kind = 'world_event_reverted', json_extract(payload, '$.cause_turn_id')
           FROM events WHERE kind IN ('world_event_transitioned', 'world_event_reverted')""",
        "ALTER TABLE world_events ADD COLUMN planned_by_turn INTEGER",
        """UPDATE world_events SET planned_by_turn =
               (SELECT json_extract(payload, '$.cause_turn_id') FROM events WHERE seq = world_events.world_event_id)""",
        """CREATE TABLE thread_changes (
            seq INTEGER PRIMARY KEY,  -- the thread_opened, thread_updated or thread_closed event
            chat_id TEXT NOT NULL,
            thread_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('opened', 'updated', 'closed')),
            title TEXT,  -- as the event set it (NULL: unchanged)
            summary TEXT,
            cause_scene_id INTEGER  -- detected at this scene's close
        )""",
        "CREATE INDEX thread_changes_by_thread ON thread_changes (thread_id, seq)",
        "CREATE INDEX thread_changes_by_scene ON thread_changes (cause_scene_id) WHERE cause_scene_id IS NOT NULL",
        """INSERT INTO thread_changes
           SELECT seq, chat_id,
                  CASE kind WHEN 'thread_opened' THEN seq ELSE json_extract(payload, '$.thread_id') END,
                  substr(kind, 8), json_extract(payload, '$.title'),
                  CASE kind WHEN 'thread_closed' THEN NULL ELSE json_extract(payload, '$.summary') END,
                  json_extract(payload, '$.cause_scene_id')
           FROM events WHERE kind IN ('thread_opened', 'thread_updated', 'thread_closed')""",
        "ALTER TABLE scenes ADD COLUMN closed_by_turn INTEGER",
        """UPDATE scenes SET closed_by_turn =
               (SELECT json_extract(payload, '$.cause_turn_id') FROM events
                WHERE kind = 'scene_closed' AND json_extract(payload, '$.scene_id') = scenes.scene_id
                  AND json_extract(payload, '$.cause_turn_id') IS NOT NULL
                ORDER BY seq DESC LIMIT 1)""",
        "CREATE INDEX scenes_by_closing_turn ON scenes (closed_by_turn) WHERE closed_by_turn IS NOT NULL",
    ])


@migration("player lines: received from the adapter, owed an answer until it was shown")
async def _lines(conn: Connection) -> None:
    await run_statements(conn, [
        """CREATE TABLE lines (
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            source_id TEXT NOT NULL,
            text TEXT NOT NULL,
            received_seq INTEGER NOT NULL,
            answered_seq INTEGER,  -- NULL: owed
            PRIMARY KEY (chat_id, source_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX lines_owed ON lines (received_seq) WHERE answered_seq IS NULL",
    ])


@migration("lorebooks per chat: books, their entries, and which characters know an entry")
async def _lore(conn: Connection) -> None:
    await run_statements(conn, [
        """CREATE TABLE lore_books (
            book_id INTEGER PRIMARY KEY,  -- the lore_imported event
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            name TEXT NOT NULL,
            origin TEXT NOT NULL CHECK (origin IN ('card', 'world_info')),
            character_id TEXT,  -- whose card the book came with
            scan_depth INTEGER,
            token_budget INTEGER,
            recursive INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX lore_books_by_name ON lore_books (chat_id, name)",
        """CREATE TABLE lore_entries (
            book_id INTEGER NOT NULL REFERENCES lore_books (book_id),
            position INTEGER NOT NULL,  -- the entry's place in its book
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            uid TEXT NOT NULL,
            title TEXT NOT NULL,
            keys TEXT NOT NULL,            -- JSON list
            secondary_keys TEXT NOT NULL,  -- JSON list
            selective_logic INTEGER NOT NULL CHECK (selective_logic BETWEEN 0 AND 3),
            content TEXT NOT NULL,
            constant INTEGER NOT NULL,
            enabled INTEGER NOT NULL,
            insertion_order INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            case_sensitive INTEGER NOT NULL,
            match_whole_words INTEGER NOT NULL,
            use_regex INTEGER NOT NULL,
            exclude_recursion INTEGER NOT NULL,
            prevent_recursion INTEGER NOT NULL,
            delay_until_recursion INTEGER NOT NULL,
            ignore_budget INTEGER NOT NULL,
            scan_depth INTEGER,
            known_by TEXT NOT NULL CHECK (known_by IN ('everyone', 'only', 'except')),
            PRIMARY KEY (book_id, position)
        ) WITHOUT ROWID""",
        "CREATE INDEX lore_entries_by_chat ON lore_entries (chat_id, book_id, position)",
        """CREATE TABLE lore_knowers (
            book_id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            character_id TEXT NOT NULL,
            PRIMARY KEY (book_id, position, character_id),
            FOREIGN KEY (book_id, position) REFERENCES lore_entries (book_id, position)
        ) WITHOUT ROWID""",
    ])


@migration("a chat's own story scenario, shared by everyone present (empty: the host's card's)")
async def _chat_scenario(conn: Connection) -> None:
    await run_statements(conn, ["ALTER TABLE chats ADD COLUMN scenario TEXT NOT NULL DEFAULT ''"])


@migration("taking turns back: withdrawn scenes, the clock's history, cleared edges, the persona each player "
           "line was spoken under")
async def _taking_back(conn: Connection) -> None:
    await run_statements(conn, [
        # An edge taken back to never having been set (its row goes; the change history says so).
        "ALTER TABLE edge_changes ADD COLUMN cleared INTEGER NOT NULL DEFAULT 0",
        # A main scene whose every turn was taken back (rewound) is withdrawn: closed, owes nothing, shown nowhere.
        "ALTER TABLE scenes ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0",
        # The persona name a player's line was spoken under (NULL: the story's persona, for lines older than this).
        "ALTER TABLE turns ADD COLUMN speaker_name TEXT",
        """CREATE TABLE clock_changes (
            seq INTEGER PRIMARY KEY,  -- the clock_set event
            chat_id TEXT NOT NULL,
            clock_before TEXT NOT NULL,
            clock TEXT NOT NULL
        )""",
        "CREATE INDEX clock_changes_by_chat ON clock_changes (chat_id, seq)",
        # Every clock change so far, with the clock it replaced (the previous change's, or the chat's start).
        """INSERT INTO clock_changes (seq, chat_id, clock_before, clock)
           SELECT seq, chat_id, before, clock FROM (
               SELECT seq, kind, chat_id, json_extract(payload, '$.clock') AS clock,
                      LAG(json_extract(payload, '$.clock')) OVER (PARTITION BY chat_id ORDER BY seq) AS before
               FROM events WHERE kind IN ('chat_created', 'clock_set'))
           WHERE kind = 'clock_set'""",
    ])


@migration("a story's own note (the Author's Note) and the persona each player plays in each story")
async def _story_note_and_personas(conn: Connection) -> None:
    await run_statements(conn, [
        "ALTER TABLE chats ADD COLUMN note TEXT NOT NULL DEFAULT ''",
        """CREATE TABLE story_personas (
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            player TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            PRIMARY KEY (chat_id, player)
        ) WITHOUT ROWID""",
    ])


@migration("rolling summaries: what a summary covers (a closed scene, a stretch of an open one, the story so far) "
           "and the turns it was made from")
async def _rolling_summaries(conn: Connection) -> None:
    await run_statements(conn, [
        "ALTER TABLE memories ADD COLUMN summary_of TEXT CHECK (summary_of IN ('scene', 'part', 'story'))",
        "ALTER TABLE memories ADD COLUMN covers_from_turn INTEGER",  # the turns a summary was made from
        "ALTER TABLE memories ADD COLUMN covers_to_turn INTEGER",
        "UPDATE memories SET summary_of = 'scene' WHERE kind = 'summary'",
        """CREATE INDEX memories_summaries_of_pov ON memories (pov, summary_of, scene_id)
           WHERE kind = 'summary' AND retracted = 0""",
        """CREATE INDEX memories_by_covered_turns ON memories (chat_id, covers_to_turn)
           WHERE covers_to_turn IS NOT NULL AND retracted = 0""",
    ])


@migration("several players in a story: who plays in it (the owner, and those who join), who said each line "
           "received; the one player \"you\" of older stories is their owner everywhere")
async def _players(conn: Connection) -> None:
    d = conn.dialect
    owner_of = "coalesce((SELECT owner FROM chats c WHERE c.chat_id = {table}.chat_id), 'you')"
    turn_owner = "(SELECT c.owner FROM turns t JOIN chats c ON c.chat_id = t.chat_id WHERE t.turn_id = turn_witnesses.turn_id)"
    memory_owner = """(SELECT c.owner FROM memories m JOIN chats c ON c.chat_id = m.chat_id
                       WHERE m.memory_id = memory_witnesses.memory_id)"""
    await run_statements(conn, [
        table_definition(d, """CREATE TABLE story_players (
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            player TEXT NOT NULL,
            joined_seq BIGINT NOT NULL,  -- when they first joined (the chat's creation, for its owner)
            active INTEGER NOT NULL,  -- 0: they left (they keep what they witnessed)
            PRIMARY KEY (chat_id, player)
        ) WITHOUT ROWID"""),
        "INSERT INTO story_players (chat_id, player, joined_seq, active) SELECT chat_id, owner, created_seq, 1 FROM chats",
        table_definition(d, "ALTER TABLE lines ADD COLUMN player TEXT"),
        f"UPDATE lines SET player = {owner_of.format(table='lines')}",
        f"UPDATE turns SET speaker = {owner_of.format(table='turns')} WHERE speaker = 'you'",
        # Each row once: a witness the owner already was (none in a real story) is not doubled.
        f"""UPDATE turn_witnesses SET witness = {turn_owner}
            WHERE witness = 'you' AND NOT EXISTS (
                SELECT 1 FROM turn_witnesses w WHERE w.turn_id = turn_witnesses.turn_id AND w.witness = {turn_owner})""",
        "DELETE FROM turn_witnesses WHERE witness = 'you'",
        f"""UPDATE memory_witnesses SET witness = {memory_owner}
            WHERE witness = 'you' AND NOT EXISTS (
                SELECT 1 FROM memory_witnesses w WHERE w.memory_id = memory_witnesses.memory_id
                  AND w.witness = {memory_owner})""",
        "DELETE FROM memory_witnesses WHERE witness = 'you'",
        *(f"UPDATE {table} SET {end} = {owner_of.format(table=table)} WHERE {end} = 'you'"
          for table in ("edges", "edge_changes") for end in ("from_id", "to_id")),
    ])
    # JSON lists, written as the projectors write them (json.dumps: ", " between items, no duplicates).
    for table, key, column in (("scenes", "scene_id", "present"), ("digests", "digest_id", "participants")):
        rows = await conn.fetch_all(
            f"""SELECT t.{key}, t.{column}, c.owner FROM {table} t JOIN chats c ON c.chat_id = t.chat_id
                WHERE EXISTS (SELECT 1 FROM {json_items(d, f't.{column}', 'p')} WHERE p.value = 'you')""")
        for ident, values, owner in rows:
            named = list(dict.fromkeys(owner if value == "you" else value for value in json.loads(values)))
            await conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?",
                               (json.dumps(named, ensure_ascii=False), ident))


@migration("characters come and go: the characters present in each story (its host, and those who joined it), "
           "host first, then in the order they came")
async def _story_cast(conn: Connection) -> None:
    await run_statements(conn, [
        table_definition(conn.dialect, """CREATE TABLE story_cast (
            chat_id TEXT NOT NULL REFERENCES chats (chat_id),
            character_id TEXT NOT NULL REFERENCES characters (character_id),
            joined_seq BIGINT NOT NULL,  -- when it came into the story (the chat's creation, for its host)
            PRIMARY KEY (chat_id, character_id)
        ) WITHOUT ROWID"""),
    ])
    # Stories so far had a host and at most one guest, set at creation or changed since: followed
    # through the log, the way the projections follow it, so a replay gives the same rows.
    present: dict[str, dict[str, int]] = {}
    hosts: dict[str, str] = {}
    guests: dict[str, str | None] = {}
    rows = await conn.fetch_all(
        "SELECT seq, kind, chat_id, payload FROM events WHERE kind IN ('chat_created', 'chat_guest_set') ORDER BY seq")
    for seq, kind, chat_id, payload in rows:
        event = json.loads(payload)
        if kind == "chat_created":
            hosts[chat_id] = event["host"]
            present[chat_id] = {event["host"]: seq}
        elif chat_id not in present:
            continue
        elif (old := guests.get(chat_id)) and old != hosts[chat_id]:
            present[chat_id].pop(old, None)
        guests[chat_id] = guest = event.get("guest")
        if guest:
            present[chat_id].setdefault(guest, seq)
    for chat_id, cast in present.items():
        for character_id, seq in cast.items():
            await conn.execute(
                """INSERT INTO story_cast (chat_id, character_id, joined_seq)
                   SELECT chat_id, :character, :seq FROM chats WHERE chat_id = :chat
                     AND EXISTS (SELECT 1 FROM characters WHERE character_id = :character)""",
                {"chat": chat_id, "character": character_id, "seq": seq})


@migration("rounds: a player's line answered by the reply to a later line of the same round")
async def _rounds(conn: Connection) -> None:
    await run_statements(conn, [
        table_definition(conn.dialect, "ALTER TABLE turns ADD COLUMN answered_with TEXT"),  # the round's last line's source id
        "CREATE INDEX turns_by_round ON turns (chat_id, answered_with) WHERE answered_with IS NOT NULL",
    ])


@migration("what a player owns: the player who imported each character (none: shared with everyone, like the "
           "built-in ones and every character imported before), and whether its owner shared it")
async def _character_owners(conn: Connection) -> None:
    await run_statements(conn, [
        table_definition(conn.dialect, "ALTER TABLE characters ADD COLUMN owner TEXT"),
        "ALTER TABLE characters ADD COLUMN shared INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX characters_by_owner ON characters (owner) WHERE owner IS NOT NULL",
    ])


@migration("an index of the summaries: a search of a character's own summaries reads the chat's summaries, "
           "not every memory")
async def _summaries_index(conn: Connection) -> None:
    # The same on both backends; PostgreSQL's planner otherwise reads the whole memories table to
    # find the few summaries among the words' matches.
    await run_statements(conn, ["CREATE INDEX memories_summaries ON memories (memory_id) WHERE kind = 'summary'"])


@migration("an index of the turns a turn superseded: deleting a turn looks them up (a replay, which clears the "
           "turns, read the whole table for each one)")
async def _superseded_turns_index(conn: Connection) -> None:
    await run_statements(conn, [
        "CREATE INDEX turns_superseded ON turns (superseded_by) WHERE superseded_by IS NOT NULL",
    ])
