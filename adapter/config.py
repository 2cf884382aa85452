"""rpbot's configuration: a TOML file, every key overridable by `RPBOT_<SECTION>__<KEY>`.

`load_config(path)` returns a validated `Config` or raises `ConfigError` whose
message names each bad or missing key the way an operator writes it
(`matrix.homeserver`) together with the environment variable that sets it.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from adapter.errors import AdapterError
from core import DEFAULT_CONTEXT_TOKENS

RESERVED_SAMPLING_KEYS = ("model", "messages", "stream")  # rpbot sends these itself
_MXID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:[0-9]+)?$")
# The TOML file's contents while `load_config` builds a `Config`; None outside it.
_toml_data: ContextVar[dict[str, Any] | None] = ContextVar("_toml_data", default=None)


class ConfigError(AdapterError, ValueError):
    """The configuration is unreadable or has bad or missing values; the message names them."""

    player_summary = "The bot's configuration has a problem"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatrixConfig(_Section):
    """[matrix]: the homeserver and the bot's account."""

    homeserver: str = Field(description="Base URL of the homeserver's client API, like `https://matrix.example.org`.")
    user_id: str = Field(description="The bot's full Matrix user id, like `@rpbot:example.org`.")
    password: str = Field(
        default="",
        description="The bot account's password; used once to log in (the session is then kept in `data_dir/session.json`).",
    )
    access_token: str = Field(default="", description="An access token for the bot account, instead of `password`.")
    device_name: str = Field(default="rpbot", description="Display name of the device the bot logs in as.")
    allowed_users: list[str] = Field(
        default_factory=list,
        description="Glob patterns of user ids who may use the bot (`@*:example.org`); an empty list allows nobody.",
    )
    encryption: bool = Field(
        default=True,
        description="Create end-to-end encrypted rooms and answer in encrypted rooms (keys in `data_dir/crypto/`).",
    )
    cross_signing: bool = Field(
        default=True,
        description="With encryption, cross-sign the bot's device with keys of its account (kept in `data_dir/crypto/`), "
        "which Element requires before it talks to a device; the first start prints a recovery key (see the README). "
        "Turn off only to test what clients do without it.",
    )
    streaming: bool = Field(
        default=True,
        description="Show a reply while the model writes it, as one message updated by edits (Element marks it \"(edited)\"). "
        "`false`: only the typing notice while the model writes, then the reply as one message when it is complete.",
    )
    round_window_s: float = Field(
        default=60.0, gt=0, le=3600,
        description="In a story room with `!rounds on`: how long a round waits, from its first line, for the other players' "
        "lines before it is answered (it is answered at once when every player has spoken).",
    )
    display_name: str = Field(
        default="",
        description="The bot account's own name (in the invite, the Space, the Lobby). Empty: the account keeps the name it has. "
        "Set only when it differs, since a change rewrites the bot's member event in every room it is in.",
    )
    avatar: str = Field(
        default="",
        description="The bot account's own picture: an image file (PNG or JPEG) or an `mxc://` URI. Empty: the account keeps its "
        "picture, or gets the portrait that ships with rpbot if it has none. Uploaded once; set only when it differs.",
    )

    @field_validator("homeserver")
    @classmethod
    def _homeserver_is_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL, like http://127.0.0.1:8008")
        return value.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _user_id_is_mxid(cls, value: str) -> str:
        if not _MXID.match(value):
            raise ValueError("must be a full Matrix user id, like @rpbot:example.org")
        return value

    @field_validator("avatar")
    @classmethod
    def _avatar_is_a_file_or_mxc(cls, value: str) -> str:
        if value and not value.startswith("mxc://") and not Path(value).expanduser().is_file():
            raise ValueError(f"no such image file: {value} (give a PNG or JPEG file, or an mxc:// URI)")
        return value

    @model_validator(mode="after")
    def _has_credentials(self) -> MatrixConfig:
        if not self.password and not self.access_token:
            raise ValueError("set matrix.password or matrix.access_token")
        return self

    def is_allowed(self, user_id: str) -> bool:
        """Whether `user_id` may use the bot: it matches one of the glob patterns."""
        return any(fnmatch.fnmatchcase(user_id, pattern) for pattern in self.allowed_users)


class StorageConfig(_Section):
    """[storage]: where data is kept."""

    data_dir: Path = Field(
        default=Path("./rpbot-data"),
        description="Where the bot keeps its data: `engine.sqlite3` (the stories: back it up), "
        "`adapter.sqlite3` (a cache rebuilt from Matrix), `session.json` and `crypto/`.",
    )
    database_url: str = Field(
        default="",
        description="Empty: the stories and the cache are SQLite files in `data_dir` (nothing to set up). "
        "`postgresql://user:password@host:5432/dbname`: both live in that PostgreSQL database instead (the cache "
        "in a schema of its own for this bot account), so several bot processes can share the stories; "
        "`session.json` and `crypto/` stay in `data_dir`. See docs/storage.md.",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be empty (SQLite in data_dir) or a postgresql:// URL, like postgresql://rpbot@localhost/rpbot")
        return value

    def engine_location(self) -> str | Path:
        """Where the stories live: the PostgreSQL URL, or `data_dir/engine.sqlite3`."""
        return self.database_url or Path(self.data_dir) / "engine.sqlite3"

    def adapter_location(self) -> str | Path:
        """Where the adapter's cache lives: the PostgreSQL URL, or `data_dir/adapter.sqlite3`."""
        return self.database_url or Path(self.data_dir) / "adapter.sqlite3"


class LLMConfig(_Section):
    """[llm]: the language model endpoint."""

    provider: Literal["openai", "demo"] = Field(
        default="demo", description="`openai` for any OpenAI-compatible endpoint, or `demo` for the offline demo model.",
    )
    base_url: str = Field(
        default="http://127.0.0.1:11434/v1", description="The endpoint's OpenAI base URL, ending in `/v1` (see the README for providers).",
    )
    api_key: str = Field(default="", description="The endpoint's API key, sent as a Bearer token; empty for local servers.")
    narrative_model: str = Field(
        default="", description="The model that writes the characters' replies; required with provider `openai`.",
    )
    classifier_model: str = Field(
        default="", description="The model for routing, summaries and other short calls; defaults to `narrative_model`.",
    )
    timeout_s: float = Field(default=60, gt=0, description="Seconds to wait for the endpoint before a call counts as failed.")
    context_tokens: int = Field(
        default=DEFAULT_CONTEXT_TOKENS, ge=2048, le=2_000_000,
        description="The prompt budget: every request rpbot sends (replies, summaries, classifiers) fits in this many "
        "tokens, estimated at four characters a token, and each part of a reply prompt gets its share of it. Set it to "
        "the model's context length less `max_reply_tokens` and a margin of about 15 %.",
    )
    max_reply_tokens: int = Field(
        default=400, ge=16, le=8192, validation_alias=AliasChoices("max_reply_tokens", "reply_max_tokens"),
        description="The most tokens a character's reply may take (`max_tokens`). `reply_max_tokens` (and "
        "`RPBOT_LLM__REPLY_MAX_TOKENS`) is the older spelling, still read.",
    )
    sampling: dict[str, Any] = Field(
        default_factory=dict,
        description="A table, `[llm.sampling]`, sent in every request's body as given: `temperature`, `top_p`, "
        "`top_k`, `min_p`, `repetition_penalty`, `frequency_penalty`, `presence_penalty`, or any other key the "
        "server takes (`chat_template_kwargs = {enable_thinking = false}`). A call's own value wins (structured "
        "answers ask for temperature 0). In the environment, `RPBOT_LLM__SAMPLING__TEMPERATURE=0.8`; values are "
        "read as JSON when they are JSON.",
    )
    system_placement: Literal["system", "first_user"] = Field(
        default="system",
        description="Where the system text goes: `system`, a system message; `first_user`, at the start of the "
        "first user message, for chat templates that refuse a system role (Gemma's).",
    )
    stop_at_names: bool = Field(
        default=True, description="Stop a reply where the model starts the next speaker's line (`\\n<player's persona name>:`, other characters).",
    )
    stop_sequences: list[str] = Field(default_factory=list, description="Extra stop sequences for replies (at most four are sent, names first).")

    @field_validator("sampling")
    @classmethod
    def _sampling_is_the_servers(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = [key for key in RESERVED_SAMPLING_KEYS if key in value]
        if reserved:
            raise ValueError(f"cannot set {', '.join(reserved)} (rpbot sends it with every request)")
        return {key: _json_or_text(item) for key, item in value.items()}

    @model_validator(mode="after")
    def _openai_needs_a_model(self) -> LLMConfig:
        if self.provider == "openai" and not self.narrative_model:
            raise ValueError("llm.narrative_model is required when llm.provider is \"openai\"")
        if not self.classifier_model:
            self.classifier_model = self.narrative_model
        return self


def _json_or_text(value: Any) -> Any:
    """A sampler value as the server should get it: text from the environment that is JSON
    (`0.8`, `[2, 7]`, `true`) as that JSON, anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RPBOT_", env_nested_delimiter="__", extra="forbid")

    matrix: MatrixConfig = Field(description="The homeserver and the bot's account.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Where data is kept.")
    llm: LLMConfig = Field(default_factory=LLMConfig, description="The language model endpoint.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file, which wins over defaults.
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=_toml_data.get() or {})


def _describe(loc: tuple[Any, ...]) -> tuple[str, str]:
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    key = ".".join(parts)
    env = "RPBOT_" + "__".join(p.upper() for p in parts)
    return key, env


def load_config(path: Path | str | None) -> Config:
    """Read the TOML file (if given) plus the environment; raise ConfigError naming every problem."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    token = _toml_data.set(data)
    try:
        return Config()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key, env = _describe(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                lines.append(f"  {key}: unknown key")
            elif key:
                lines.append(f"  {key}: {message} (set it in the file or with {env})")
            else:
                lines.append(f"  {message}")
        where = f" in {path}" if path is not None else ""
        raise ConfigError(f"bad configuration{where}:\n" + "\n".join(lines)) from None
    finally:
        _toml_data.reset(token)
