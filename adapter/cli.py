"""The `rpbot` command: `run` against any homeserver, `dev` with an embedded local one,
and the operator's tools `doctor`, `reconcile --dry-run`, `export` and `migrate`.

`rpbot dev` starts Synapse on loopback (data in `.rpbot-dev/`), registers the
bot and a player with generated passwords (kept for the next `dev`), starts the
bot and prints how to sign in with Element. Ctrl-C stops the bot, then Synapse.
`rpbot run` stops cleanly on SIGTERM or SIGINT (see `MatrixBot.close`).
The operator tools live in adapter/doctor.py, adapter/reconcile_preview.py and
adapter/export.py; logging is set up by adapter/logs.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from adapter.config import Config, ConfigError, load_config
from adapter.errors import StartupError
from adapter.logs import LOG_FORMATS, setup_logging

if TYPE_CHECKING:
    from core import LLMClient, ReplySettings
    from core.engine import Engine

log = logging.getLogger("rpbot")

DEV_PORT = 8008


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpbot", description="A roleplay bot with long-term, per-character memory, played through Matrix.")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("RPBOT_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR (default $RPBOT_LOG_LEVEL or INFO; message text is logged only at DEBUG)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("RPBOT_LOG_FORMAT", "text"),
        help="text or json, one JSON object per line (default $RPBOT_LOG_FORMAT or text)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the bot against a homeserver, as configured")
    run.add_argument("--config", required=True, type=Path, help="the TOML config file (see README)")
    dev = commands.add_parser("dev", help="start a local Synapse and the bot, and print how to sign in with Element")
    dev.add_argument("--dir", type=Path, default=Path(".rpbot-dev"), help="where the local homeserver and bot keep their data (default .rpbot-dev)")
    dev.add_argument(
        "--config",
        type=Path,
        default=None,
        help="a TOML file whose [llm] section to use (default: ./rpbot.toml if present, else the offline demo model)",
    )
    dev.add_argument("--port", type=int, default=DEV_PORT, help=f"homeserver port on 127.0.0.1 (default {DEV_PORT}, or a free one if taken)")
    doctor = commands.add_parser("doctor", help="check the config, the homeserver, the bot's login and rate limits, and the LLM endpoint")
    doctor.add_argument("--config", required=True, type=Path, help="the TOML config file")
    doctor.add_argument(
        "--admin-token",
        default=os.environ.get("RPBOT_ADMIN_TOKEN"),
        help="a Synapse admin's access token, to read the bot's rate-limit override (default $RPBOT_ADMIN_TOKEN)",
    )
    reconcile = commands.add_parser("reconcile", help="show what the next start would rebuild from Matrix (with --dry-run)")
    reconcile.add_argument("--config", required=True, type=Path, help="the TOML config file")
    reconcile.add_argument(
        "--dry-run",
        action="store_true",
        required=True,
        help="only print the plan; change nothing (required: the real reconciliation runs at every start)",
    )
    export = commands.add_parser("export", help="write one story as Markdown")
    export.add_argument("--config", required=True, type=Path, help="the TOML config file")
    export.add_argument("--chat", required=True, help="the engine chat id, or the platform chat id (mx-N) shown by !status")
    export.add_argument("--out", type=Path, default=None, help="write to this file instead of standard output")
    migrate = commands.add_parser(
        "migrate", help="move the stories of data_dir's SQLite file into an empty PostgreSQL database (stop the bot first)")
    migrate.add_argument("--config", required=True, type=Path, help="the TOML config file (its data_dir holds engine.sqlite3)")
    migrate.add_argument("--to", required=True, help="the PostgreSQL database to move them into: postgresql://USER:PASSWORD@HOST/DATABASE")
    return parser


def make_llm(config: Config) -> LLMClient:
    from core import make_llm_client

    llm = config.llm
    if llm.provider == "demo":
        return make_llm_client("demo")
    return make_llm_client(
        "openai",
        base_url=llm.base_url,
        api_key=llm.api_key,
        narrative_model=llm.narrative_model,
        classifier_model=llm.classifier_model,
        timeout_s=llm.timeout_s,
        sampling=llm.sampling,
        system_placement=llm.system_placement,
    )


def reply_settings(config: Config) -> ReplySettings:
    from core import ReplySettings

    llm = config.llm
    return ReplySettings(max_tokens=llm.max_reply_tokens, stop_at_names=llm.stop_at_names,
                         extra_stop=tuple(llm.stop_sequences))


async def open_engine(config: Config) -> Engine:
    """The engine on its stories (`[storage] database_url`, else `data_dir/engine.sqlite3`), with
    the configured model and its settings."""
    from core.engine import Engine

    data_dir = Path(config.storage.data_dir)
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    return await Engine.open(config.storage.engine_location(), make_llm(config), replies=reply_settings(config),
                             budget_tokens=config.llm.context_tokens)


async def run_bot(config: Config) -> None:
    from adapter.matrix.bot import MatrixBot

    if config.llm.provider == "demo":
        log.warning("llm.provider is \"demo\": characters answer from the offline demo model")
    engine = await open_engine(config)
    bot = MatrixBot(config, engine)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, bot.stop)
    try:
        await bot.run()
    finally:
        await engine.close()


def _dev_credentials(directory: Path) -> dict[str, str]:
    path = directory / "credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    creds = {"bot_password": secrets.token_urlsafe(16), "player_password": secrets.token_urlsafe(12)}
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(creds))
    path.chmod(0o600)
    return creds


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def dev(args: argparse.Namespace) -> int:
    from adapter.devserver import LocalHomeserver

    directory = args.dir.resolve()
    creds = _dev_credentials(directory)
    port = args.port if _port_is_free(args.port) else None
    homeserver = LocalHomeserver(directory / "synapse", port=port, relaxed_rate_limits=False)  # as a player's server has them
    print(f"Starting a local Synapse on {homeserver.url} (data in {directory}) ...", flush=True)
    homeserver.start()
    try:
        bot_user = homeserver.register("rpbot", creds["bot_password"])
        player = homeserver.register("player", creds["player_password"])
        llm_file = args.config or (Path("rpbot.toml") if Path("rpbot.toml").exists() else None)
        llm_section = {}
        if llm_file is not None:
            import tomllib

            llm_section = tomllib.loads(llm_file.read_text()).get("llm", {})
        os.environ.update(
            {
                "RPBOT_MATRIX__HOMESERVER": homeserver.url,
                "RPBOT_MATRIX__USER_ID": bot_user.user_id,
                "RPBOT_MATRIX__PASSWORD": creds["bot_password"],
                "RPBOT_MATRIX__ALLOWED_USERS": json.dumps([player.user_id]),
                "RPBOT_STORAGE__DATA_DIR": str(directory / "bot"),
            }
        )
        for key, value in llm_section.items():
            os.environ.setdefault(f"RPBOT_LLM__{key.upper()}", value if isinstance(value, str) else json.dumps(value))
        config = load_config(None)
        if config.llm.provider == "openai":
            llm_description = f"({config.llm.narrative_model} at {config.llm.base_url})"
        else:
            llm_description = "(offline demo model)"
        print(
            "\n".join(
                [
                    "",
                    "rpbot is starting. Sign in with Element (https://app.element.io or the desktop app):",
                    f"  homeserver:  {homeserver.url}",
                    f"  username:    {player.localpart}   (full id {player.user_id})",
                    f"  password:    {creds['player_password']}",
                    f"  then invite: {bot_user.user_id}   (start a chat with it); it makes you a Space with your stories",
                    f"  LLM:         {config.llm.provider} {llm_description}",
                    "Press Ctrl-C to stop the bot and the homeserver.",
                    "",
                ]
            ),
            flush=True,
        )
        asyncio.run(run_bot(config))
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping the homeserver ...", flush=True)
        homeserver.stop()
    return 0


def doctor(args: argparse.Namespace) -> int:
    from adapter.doctor import format_checks, run_checks

    checks = asyncio.run(run_checks(args.config, args.admin_token))
    print(format_checks(checks), flush=True)
    failed = [check.name for check in checks if check.verdict == "FAIL"]
    print(f"\n{len(failed)} failed: {', '.join(failed)}" if failed else "\nAll checks passed (see any WARN above).")
    return 1 if failed else 0


def reconcile_dry_run(args: argparse.Namespace) -> int:
    from adapter.operator_session import SessionError
    from adapter.reconcile_preview import DryRunError, format_plan, plan_restart

    config = load_config(args.config)
    try:
        plan, joined = asyncio.run(plan_restart(config))
    except (SessionError, DryRunError) as exc:
        print(f"rpbot: {exc}", file=sys.stderr)
        return 1
    print(format_plan(plan, joined))
    return 0


def export(args: argparse.Namespace) -> int:
    from adapter.export import ExportError, export_story, render_markdown

    config = load_config(args.config)
    try:
        markdown = render_markdown(asyncio.run(export_story(config, args.chat)))
    except ExportError as exc:
        print(f"rpbot: {exc}", file=sys.stderr)
        return 1
    if args.out is None:
        sys.stdout.write(markdown)
    else:
        args.out.write_text(markdown)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def migrate(args: argparse.Namespace) -> int:
    from core import MoveReport, StorageError, is_postgres_url, move_stories, shown_location
    from core.errors import StoryMoveError

    if not is_postgres_url(args.to):
        print(f"rpbot: --to must be a postgresql:// URL, not {args.to!r}", file=sys.stderr)
        return 2
    source = Path(load_config(args.config).storage.data_dir) / "engine.sqlite3"
    print(f"Moving the stories of {source} into {shown_location(args.to)}...", flush=True)
    try:
        report: MoveReport = asyncio.run(move_stories(source, args.to))
    except (StoryMoveError, StorageError) as exc:
        print(f"rpbot: nothing was moved: {exc}", file=sys.stderr)
        return 1
    print(f"{report.events} events copied; every table rebuilt from them:")
    for table, rows in report.rows.items():
        print(f"  {table}: {rows} rows")
    if not report.agree:
        print("The two differ (the SQLite file is unchanged; the PostgreSQL database holds the copy):")
        for difference in report.differences:
            print(f"  {difference}")
        return 1
    print("The two agree: set [storage] database_url to that URL and start the bot.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        setup_logging(args.log_level, args.log_format)
    except ValueError as exc:
        parser.error(str(exc))
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "run":
            asyncio.run(run_bot(load_config(args.config)))
            return 0
        if args.command == "dev":
            return dev(args)
        if args.command == "doctor":
            return doctor(args)
        if args.command == "reconcile":
            return reconcile_dry_run(args)
        if args.command == "export":
            return export(args)
        if args.command == "migrate":
            return migrate(args)
    except ConfigError as exc:
        print(f"rpbot: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"rpbot: cannot start: {exc}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
