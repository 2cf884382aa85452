"""The turn pipeline and its steps, between the Engine API and the state read models.

- `dialogue`: shared reads every step uses (who is present, recent dialogue, the
  causes tag that ties an event to the turn that caused it).
- `recall`: witness-filtered memory reads for a prompt (per-POV summaries, digests).
- `addressee`: the routing classifier (which character answers).
- `prompt`: prompt assembly within a token budget (`tokens` holds the estimate).
- `generation`: one cancellable streamed generation.
- `memory_write`, `relationships`: what an exchange leaves behind (memories, edges).
- `regenerate`: rolling back what a superseded turn caused, by compensating events.
- `talk`: the pipeline itself (post a turn, regenerate), used by `core.engine.Engine`.

Dependency direction: services -> state -> eventlog; nothing here imports an adapter.
"""
