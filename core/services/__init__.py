"""The turn pipeline and its steps, between the Engine API and the state read models.

- `dialogue`: shared reads every step uses (who is present, recent dialogue, which
  exchange a regenerate answers).
- `recall`: witness-filtered memory reads for a prompt (per-POV summaries, digests).
- `addressee`: the routing classifier (which character answers, and any skip / jump / scene close).
- `prompt`: the reply prompt within a token budget, in roles every chat template accepts
  (`tokens` holds the estimate; `card_text` the card as prompts show it; `macros` the
  `{{char}}` / `{{user}}` / story-time macros; `replies` max_tokens, stop sequences, a
  leading name stripped).
- `generation`: one cancellable streamed generation.
- `memory_write`, `relationships`: what an exchange leaves behind (memories, edges).
- `regenerate`: rolling back what a superseded turn caused, by compensating events.
- `talk`: the pipeline itself (post a turn, regenerate), used by `core.engine.Engine`.
- `scenes`: opening the main scene, closing it with per-POV summaries ("Key quotes").
- `plot`: the thread detector (on scene close) and the lifecycle classifier (after a reply).
- `timeskip`: skips and jumps of the chat clock, narrated.
- `meanwhile`: two characters off-screen, remembered by them only, digested for the player.
- `reports`: read-only views for adapters (threads, world events, memory search, status, context).

Dependency direction: services -> state -> eventlog; nothing here imports an adapter.
"""
