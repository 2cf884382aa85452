"""Read models of the engine, one module per concern, over the projections of the event log.

world (characters, chats, the chat clock, scenes), turns, memory (witness-scoped
search), edges (directed relationships), threads (plot threads), plans (planned
world events), digests (meanwhile digests), personas (the players' personas).  Each module also offers small write
helpers; every write goes through core.eventlog.append_and_apply.
"""
