"""Settings: every knob of jq, read once from JQ_* variables, a .env file, or defaults."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from jq_cli.store.base import Timeouts

NAMESPACE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _env(name: str, *legacy: str) -> AliasChoices:
    # The older service this replaces read plain names; accepting them keeps its .env working.
    return AliasChoices(f"JQ_{name}", *legacy)


class Settings(BaseSettings):
    """Built once at an entry point and passed down; nothing reads the environment later."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        "postgresql://localhost/jq", validation_alias=_env("DATABASE_URL", "DATABASE_URL")
    )
    rabbitmq_url: str = Field(
        "amqp://guest:guest@localhost:5672/", validation_alias=_env("RABBITMQ_URL", "RABBITMQ_URL")
    )
    redis_url: str = Field(
        "redis://localhost:6379/0", validation_alias=_env("REDIS_URL", "REDIS_URL")
    )
    namespace: str = Field("jq", validation_alias=_env("NAMESPACE"))

    default_max_retries: int = Field(
        3, ge=0, le=100, validation_alias=_env("DEFAULT_MAX_RETRIES", "DEFAULT_MAX_RETRIES")
    )
    retry_base_delay: float = Field(
        2.0, gt=0, validation_alias=_env("RETRY_BASE_DELAY", "DEFAULT_RETRY_BASE_DELAY")
    )
    retry_max_delay: float = Field(
        300.0, gt=0, validation_alias=_env("RETRY_MAX_DELAY", "DEFAULT_RETRY_MAX_DELAY")
    )
    retry_jitter: float = Field(0.1, ge=0, le=1, validation_alias=_env("RETRY_JITTER"))

    lease_ttl: float = Field(30.0, gt=0, validation_alias=_env("LEASE_TTL"))
    shutdown_grace: float = Field(30.0, ge=0, validation_alias=_env("SHUTDOWN_GRACE"))
    heartbeat_interval: float = Field(2.0, gt=0, validation_alias=_env("HEARTBEAT_INTERVAL"))

    worker_concurrency: int = Field(8, ge=1, le=1024, validation_alias=_env("WORKER_CONCURRENCY"))
    worker_prefetch: int = Field(0, ge=0, le=65535, validation_alias=_env("WORKER_PREFETCH"))
    worker_queues: str = Field("default", validation_alias=_env("WORKER_QUEUES"))
    # Seconds an attempt may run when neither the job nor its handler sets a limit (0: none).
    worker_time_limit: float = Field(0.0, ge=0, validation_alias=_env("WORKER_TIME_LIMIT"))
    # Seconds a handler gets to stop after a cancel request, and again after the worker raised
    # into it, before the worker abandons its thread (or kills its process).
    stop_grace: float = Field(2.0, ge=0, validation_alias=_env("STOP_GRACE"))
    # What a handler may return and report: larger results fail the attempt; longer error texts
    # and tracebacks are cut; longer progress messages fail the attempt.
    max_result_bytes: int = Field(1_048_576, gt=0, validation_alias=_env("MAX_RESULT_BYTES"))
    max_error_bytes: int = Field(65_536, ge=1024, validation_alias=_env("MAX_ERROR_BYTES"))

    # The scheduler's cadence: how often it looks for due, stuck and unpublished jobs.
    scheduler_interval: float = Field(0.5, gt=0, validation_alias=_env("SCHEDULER_INTERVAL"))
    # A queued job whose message is missing is re-published once it has waited this long.
    republish_after: float = Field(15.0, gt=0, validation_alias=_env("REPUBLISH_AFTER"))

    # Leadership: the scheduler leader's lease in PostgreSQL time, renewed every pass. A leader cut
    # off from the database stops leading, and a standby takes over, within one lease.
    leader_lease: float = Field(10.0, ge=1, le=300, validation_alias=_env("LEADER_LEASE"))
    # The network: PostgreSQL connections give up on a dead route instead of waiting for the
    # kernel's defaults (about 15 minutes). 0 disables one.
    db_statement_timeout: float = Field(60.0, ge=0, validation_alias=_env("DB_STATEMENT_TIMEOUT"))
    db_tcp_user_timeout: float = Field(15.0, ge=0, validation_alias=_env("DB_TCP_USER_TIMEOUT"))
    db_keepalives_idle: float = Field(10.0, ge=0, validation_alias=_env("DB_KEEPALIVES_IDLE"))

    # Schedules: a `skip` schedule's tick fires only if the scheduler is at most this late.
    misfire_grace: float = Field(60.0, ge=0, validation_alias=_env("MISFIRE_GRACE"))
    # Retention: the scheduler deletes terminal jobs finished longer ago than these (0 keeps them).
    retention_completed: float = Field(
        7 * 86400.0, ge=0, validation_alias=_env("RETENTION_COMPLETED")
    )
    retention_dead: float = Field(30 * 86400.0, ge=0, validation_alias=_env("RETENTION_DEAD"))
    retention_cancelled: float = Field(
        7 * 86400.0, ge=0, validation_alias=_env("RETENTION_CANCELLED")
    )
    # The audit log's own retention: rows older than this are pruned (0 keeps them).
    audit_retention: float = Field(90 * 86400.0, ge=0, validation_alias=_env("AUDIT_RETENTION"))

    max_payload_bytes: int = Field(1_048_576, gt=0, validation_alias=_env("MAX_PAYLOAD_BYTES"))
    scrape_allow_private: bool = Field(False, validation_alias=_env("SCRAPE_ALLOW_PRIVATE"))
    imports: str = Field("", validation_alias=_env("IMPORTS"))
    # jq serve: one key, and/or a file of keys (one a line; blank lines and # comments skipped).
    api_key: SecretStr | None = Field(None, validation_alias=_env("API_KEY"))
    api_keys_file: str | None = Field(None, validation_alias=_env("API_KEYS_FILE"))
    # jq serve and jq top --web: Host names they answer besides loopback (comma-separated; `*`
    # any), against DNS rebinding (jq_cli/http/sites.py).
    serve_allowed_hosts: str = Field("", validation_alias=_env("SERVE_ALLOWED_HOSTS"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))

    @field_validator("namespace")
    @classmethod
    def _namespace_is_an_identifier(cls, value: str) -> str:
        # It becomes a Postgres schema, queue names and Redis keys: keep it a plain identifier.
        if not NAMESPACE_PATTERN.match(value):
            raise ValueError(
                "must be lowercase letters, digits and _, starting with a letter, at most 40 characters"
            )
        return value

    @field_validator(
        "misfire_grace",
        "retention_completed",
        "retention_dead",
        "retention_cancelled",
        "audit_retention",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        # Seconds, or a duration such as 7d or 12h.
        if isinstance(value, str):
            from jq_cli.errors import InvalidInput
            from jq_cli.model.durations import parse_duration

            try:
                return parse_duration(value)
            except InvalidInput as exc:
                raise ValueError(exc.message.removeprefix("duration: ")) from None
        return value

    def as_environment(self) -> dict[str, str]:
        """The JQ_* variables that give a child process (a worker, the CLI) these same settings."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue  # unset: an environment variable cannot say None
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"JQ_{name.upper()}"] = str(value)
        return env

    def db_timeouts(self, deadline: float | None = None) -> Timeouts:
        """The store's connection timeouts from these settings (jq_cli.store.base.Timeouts)."""
        from jq_cli.store.base import Timeouts

        idle = self.db_keepalives_idle
        return Timeouts(
            statement=self.db_statement_timeout,
            tcp_user=self.db_tcp_user_timeout,
            keepalive_idle=idle,
            keepalive_interval=max(1.0, idle / 2),
            deadline=deadline,
        )

    @property
    def queue_names(self) -> list[str]:
        return split_names(self.worker_queues)

    @property
    def import_modules(self) -> list[str]:
        return split_names(self.imports)


def split_names(value: str) -> list[str]:
    """A comma-separated list of names (queues, modules, filter values), blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


# The settings file every command reads when it is set (`jq --config FILE` sets it for the
# command and the processes it starts): KEY=VALUE lines, # comments, as systemd's
# EnvironmentFile= and daemons/jq.env.example. Its values win over the environment's.
CONFIG_VARIABLE = "JQ_CONFIG"


def _aliases() -> dict[str, str]:
    """Every name a setting is read under (JQ_DATABASE_URL, DATABASE_URL, ...) to its field."""
    names = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        for choice in alias.choices if isinstance(alias, AliasChoices) else ():
            if isinstance(choice, str):
                names[choice.upper()] = field
    return names


def read_config_file(path: str) -> dict[str, str]:
    """The settings of an env-format file, by field name. Raises InvalidInput for a file that
    cannot be read and for a JQ_ key that names no setting (a typo would otherwise be ignored)."""
    from dotenv import dotenv_values

    from jq_cli.errors import InvalidInput, did_you_mean

    if not os.path.isfile(path):
        raise InvalidInput(f"--config: no such file {path}")
    try:
        raw = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--config: cannot read {path}: {exc}") from None
    aliases = _aliases()
    values = {}
    for key, value in raw.items():
        if value is None:
            continue
        field = aliases.get(key.upper())
        if field is None:
            if key.upper().startswith("JQ_") and key.upper() != CONFIG_VARIABLE:
                hint = did_you_mean(key.upper(), [a for a in aliases if a.startswith("JQ_")])
                raise InvalidInput(f"--config {path}: unknown setting {key}{hint}")
            continue  # another program's variable in a shared file
        values[field] = value
    return values


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and .env, then the settings file (`config_file`, else the
    one JQ_CONFIG names), then explicit overrides on top. Raises InvalidInput."""
    from pydantic import ValidationError

    from jq_cli.errors import InvalidInput

    path = config_file or os.environ.get(CONFIG_VARIABLE) or None
    values = read_config_file(path) if path else {}
    try:
        settings = Settings(**{**values, **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        where = f" (from {path})" if path and field in values else ""
        raise InvalidInput(f"invalid setting {field}{where}: {err['msg']}") from None
    from jq_cli.redaction import remember

    # Whatever this process prints from now on (errors, logs) is cleared of these passwords.
    remember((settings.database_url, settings.rabbitmq_url, settings.redis_url))
    return settings
