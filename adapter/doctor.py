"""`rpbot doctor`: check a deployment before (or while) running it, one verdict per check.

Checks, in order: the config file; who may use the bot; the data directory; the database (the
stories: a SQLite file in the data directory, or the PostgreSQL database `storage.database_url`
names): that it can be reached and written, and its schema version; that the homeserver answers;
that the bot account logs in (reusing `data_dir/session.json`, see `adapter.operator_session`, so
no device is left behind); which room version new rooms will be made in (FAIL when the homeserver
offers none with restricted joins); whether Synapse rate-limits the bot (readable only with an
admin token: `--admin-token` or `RPBOT_ADMIN_TOKEN`; otherwise "unknown"); with encryption,
whether the bot's device is cross-signed with keys the homeserver accepted and the bot holds
(Element talks to no other device); and that the LLM endpoint answers a one-token request. Each
check prints OK, WARN or FAIL; the command exits 1 if any check failed. Secrets are never printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import httpx

from adapter.config import Config, ConfigError, LLMConfig, load_config
from adapter.matrix.cross_signing import AccountKeys, CrossSigningError, load_keys
from adapter.matrix.room_versions import (
    CAPABILITIES_PATH,
    NoUsableRoomVersion,
    choose_room_version,
    creators_have_unlimited_power,
    stable_versions,
)
from adapter.operator_session import BotSession, SessionError, bot_session, saved_session
from core import database_status

Verdict = Literal["OK", "WARN", "FAIL"]
HTTP_TIMEOUT_S = 15.0


def lift_limits_hint(user_id: str, homeserver: str = "https://matrix.example.org") -> str:
    """How an operator lifts the bot's rate limits (Synapse admin API), as a shell command."""
    return (
        "curl -X POST -H \"Authorization: Bearer $ADMIN_TOKEN\" "
        f"-d '{{\"messages_per_second\": 0, \"burst_count\": 0}}' "
        f"{homeserver}/_synapse/admin/v1/users/{user_id}/override_ratelimit"
    )


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str


def format_checks(checks: list[Check]) -> str:
    width = max(len(check.name) for check in checks)
    return "\n".join(f"{check.verdict:<4}  {check.name:<{width}}  {check.detail}" for check in checks)


def check_data_dir(config: Config) -> Check:
    data_dir = Path(config.storage.data_dir)
    if not data_dir.exists():
        parent = data_dir.resolve().parent
        if os.access(parent, os.W_OK):
            return Check("data_dir", "WARN", f"{data_dir} does not exist yet; the bot will create it")
        return Check("data_dir", "FAIL", f"{data_dir} does not exist and {parent} is not writable")
    if not os.access(data_dir, os.W_OK):
        return Check("data_dir", "FAIL", f"{data_dir} is not writable by this user")
    stories = "engine.sqlite3 present" if (data_dir / "engine.sqlite3").exists() else "no engine.sqlite3 yet (a new install)"
    return Check("data_dir", "OK", f"{data_dir} ({stories})")


async def check_database(config: Config) -> Check:
    """The stories' database: reachable, writable, and at which schema version."""
    status = await database_status(config.storage.engine_location())
    where = f"{status.backend} {status.where}"
    if status.problem:
        return Check("database", "FAIL", f"{where} {status.problem}")
    if status.version > status.latest:
        return Check("database", "FAIL", f"{where} is at schema version {status.version}, newer than this rpbot "
                                         f"(up to {status.latest}): run the rpbot that wrote it")
    if status.version == 0:
        return Check("database", "OK", f"{where}: no stories yet; the bot creates its tables (schema version {status.latest})")
    if status.version < status.latest:
        return Check("database", "OK", f"{where}: schema version {status.version}; the bot upgrades it to {status.latest} at start")
    return Check("database", "OK", f"{where}: schema version {status.version} (current), writable")


async def check_rate_limit(http: httpx.AsyncClient, user_id: str, token: str, admin_token: str | None) -> Check:
    path = f"/_synapse/admin/v1/users/{quote(user_id, safe='@:')}/override_ratelimit"
    hint = lift_limits_hint(user_id, str(http.base_url).rstrip("/"))
    response = await http.get(path, headers={"Authorization": f"Bearer {admin_token or token}"})
    if response.status_code == 200:
        body = response.json()
        if body.get("messages_per_second") == 0 and body.get("burst_count") == 0:
            return Check("rate limits", "OK", f"{user_id} is exempt from message rate limits")
        if body:
            return Check("rate limits", "WARN", f"{user_id} has an override {body}; lift it fully with: {hint}")
        return Check("rate limits", "WARN", f"{user_id} is rate limited (Synapse's defaults, about 12 events a minute); lift with: {hint}")
    if response.status_code in (401, 403):
        return Check(
            "rate limits",
            "WARN",
            "unknown (needs an admin token: pass --admin-token or set RPBOT_ADMIN_TOKEN); "
            f"if the bot is limited, lift with: {hint}",
        )
    return Check("rate limits", "WARN", f"unknown (the homeserver answered {response.status_code}; not Synapse?)")


async def check_room_versions(http: httpx.AsyncClient, token: str) -> Check:
    response = await http.get(CAPABILITIES_PATH, headers={"Authorization": f"Bearer {token}"})
    if response.status_code not in (200, 404):
        return Check("room versions", "FAIL", f"the homeserver answered {response.status_code} to {CAPABILITIES_PATH}")
    capabilities = response.json() if response.status_code == 200 else {}
    default, _ = stable_versions(capabilities)
    try:
        version = choose_room_version(capabilities)
    except NoUsableRoomVersion as exc:
        return Check("room versions", "FAIL", f"{exc} The bot refuses to start and makes nothing.")
    how = "the homeserver's default" if version == default else f"the highest stable one with restricted joins; the default {default} has none"
    creator = "the bot is each room's creator, with unlimited power" if creators_have_unlimited_power(version) else "the bot holds power 100"
    return Check("room versions", "OK", f"new rooms are made in room version {version} ({how}; {creator})")


async def check_cross_signing(http: httpx.AsyncClient, config: Config, session: BotSession) -> Check:
    """Whether Element will talk to the bot's device: signed by the account's self-signing key, which the bot holds."""
    if not config.matrix.encryption:
        return Check("cross-signing", "OK", "not needed: matrix.encryption is off")
    if not config.matrix.cross_signing:
        return Check("cross-signing", "WARN", "matrix.cross_signing is off: Element users cannot talk with the bot in encrypted rooms")
    saved = saved_session(config)
    if saved is None:
        return Check("cross-signing", "WARN", "the bot has no device yet (no session.json): it signs its device when it starts")
    device_id = saved["device_id"]
    restart = "restart the bot with matrix.password set: it replaces them and signs its device (see the README)"
    try:
        account = await AccountKeys(http, config.matrix.user_id, headers={"Authorization": f"Bearer {session.access_token}"}).refresh()
    except CrossSigningError as exc:
        return Check("cross-signing", "FAIL", str(exc))
    master = account.public("master")
    if master is None:
        return Check("cross-signing", "FAIL", f"the homeserver has no cross-signing keys for {config.matrix.user_id}; {restart}")
    held = load_keys(Path(config.storage.data_dir) / "crypto", config.matrix.user_id)
    if held is None or not account.held_by(held):
        return Check("cross-signing", "FAIL", f"the homeserver's cross-signing keys (master {master}) are not the ones in data_dir/crypto; {restart}")
    if not account.device_signed(device_id):
        return Check("cross-signing", "FAIL", f"device {device_id} is not signed by the account's self-signing key; restart the bot to sign it")
    return Check("cross-signing", "OK", f"device {device_id} is cross-signed; the homeserver accepted the keys (master {master})")


async def check_llm(llm: LLMConfig) -> list[Check]:
    if llm.provider == "demo":
        return [Check("llm", "OK", "provider \"demo\": the offline demo model (no endpoint to check)")]
    headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
    base = llm.base_url.rstrip("/")
    checks: list[Check] = []
    async with httpx.AsyncClient(timeout=min(llm.timeout_s, 60), headers=headers) as http:
        try:
            models = await http.get(f"{base}/models")
        except httpx.HTTPError as exc:
            return [Check("llm endpoint", "FAIL", f"{base} does not answer: {exc.__class__.__name__}: {exc}")]
        if models.status_code == 200:
            try:
                listed = {entry.get("id") for entry in models.json().get("data", [])}
            except (ValueError, AttributeError):
                listed = set()
            missing = [m for m in {llm.narrative_model, llm.classifier_model} if m and listed and m not in listed]
            if missing:
                checks.append(Check("llm models", "WARN", f"{', '.join(sorted(missing))} not in {base}/models ({len(listed)} listed)"))
            else:
                checks.append(Check("llm models", "OK", f"{base}/models answers ({len(listed)} models)"))
        elif models.status_code in (401, 403):
            return [Check("llm endpoint", "FAIL", f"{base}/models refused the key ({models.status_code}): check llm.api_key")]
        else:
            checks.append(Check("llm models", "WARN", f"{base}/models answered {models.status_code} (some servers do not list models)"))
        body = {**llm.sampling, "model": llm.narrative_model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1, "stream": False}
        try:
            completion = await http.post(f"{base}/chat/completions", json=body, headers={"X-RPBot-Purpose": "doctor"})
        except httpx.HTTPError as exc:
            checks.append(Check("llm completion", "FAIL", f"one-token request failed: {exc.__class__.__name__}: {exc}"))
            return checks
        if completion.status_code == 200:
            checks.append(Check("llm completion", "OK", f"{llm.narrative_model} answered a one-token request"))
        else:
            checks.append(Check("llm completion", "FAIL", f"{llm.narrative_model} answered {completion.status_code}: {completion.text[:200]}"))
    return checks


async def run_checks(config_path: Path, admin_token: str | None = None) -> list[Check]:
    """Every check, in order; stops early only when a later check cannot run."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [Check("config", "FAIL", str(exc).replace("\n", " "))]
    checks = [Check("config", "OK", f"{config_path} (bot {config.matrix.user_id}, llm {config.llm.provider})")]
    if config.matrix.allowed_users:
        checks.append(Check("allowed_users", "OK", ", ".join(config.matrix.allowed_users)))
    else:
        checks.append(Check("allowed_users", "WARN", "empty: nobody may use the bot (set matrix.allowed_users, e.g. [\"@*:example.org\"])"))
    checks.append(check_data_dir(config))
    checks.append(await check_database(config))
    homeserver = config.matrix.homeserver
    async with httpx.AsyncClient(base_url=homeserver, timeout=HTTP_TIMEOUT_S) as http:
        try:
            versions = await http.get("/_matrix/client/versions")
            versions.raise_for_status()
            checks.append(Check("homeserver", "OK", f"{homeserver} answers (spec versions up to {versions.json().get('versions', ['?'])[-1]})"))
        except (httpx.HTTPError, ValueError) as exc:
            checks.append(Check("homeserver", "FAIL", f"{homeserver} does not answer as a Matrix homeserver: {exc}"))
            checks.extend(await check_llm(config.llm))
            return checks
        try:
            async with bot_session(config, http) as session:
                device = f", device {session.device_id}" if session.device_id else ""
                checks.append(Check("login", "OK", f"{session.user_id} via {session.how}{device}"))
                checks.append(await check_room_versions(http, session.access_token))
                checks.append(await check_rate_limit(http, session.user_id, session.access_token, admin_token))
                checks.append(await check_cross_signing(http, config, session))
        except SessionError as exc:
            checks.append(Check("login", "FAIL", str(exc)))
        except httpx.HTTPError as exc:
            checks.append(Check("login", "FAIL", f"the homeserver did not answer the login: {exc}"))
    checks.extend(await check_llm(config.llm))
    return checks
