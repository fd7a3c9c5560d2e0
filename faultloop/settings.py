"""One Settings object, built once at start and passed down.

Sources, highest priority first: keyword arguments, environment (prefix ``FAULTLOOP_``),
``faultloop.toml`` in the working directory (or the file named by ``FAULTLOOP_CONFIG``),
then the defaults below. Every default is documented in the README's configuration table.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class SettingsError(Exception):
    """Raised when the configuration is invalid; the message names each bad setting."""


def _config_file() -> Path:
    # The one environment read outside the Settings class: where the settings file lives.
    return Path(os.environ.get("FAULTLOOP_CONFIG", "faultloop.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAULTLOOP_", extra="forbid", validate_default=True)

    host: str = Field("127.0.0.1", description="Address the HTTP service listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP service listens on.")
    data_dir: Path = Field(Path("var"), description="Directory for the SQLite file, key file and logs.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite at <data_dir>/faultloop.db.")
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet key(s) for secrets at rest, comma-separated, newest first. "
        "Empty: read or create <data_dir>/secret.key (mode 0600).",
    )
    token_ttl_days: int = Field(90, ge=1, le=3650, description="Lifetime of new API tokens.")
    session_ttl_hours: int = Field(12, ge=1, le=720, description="Lifetime of a dashboard login session.")
    session_cookie_secure: bool = Field(
        False, description="Mark the dashboard session cookie Secure (set when served over HTTPS)."
    )
    login_rate_per_source: str = Field(
        "30/minute",
        description="Password logins one client address may try (every attempt counts), in the `limits` "
        "notation: '<count>/<period>', e.g. '30/minute', '100 per hour'.",
    )
    login_rate_per_user: str = Field(
        "10/15 minutes", description="Failed password logins one username may take before it is refused for a while."
    )
    login_concurrency: int = Field(
        4, ge=1, le=256, description="Password checks (argon2) running at once; beyond, a login gets 503."
    )
    alarm_stream_max_per_user: int = Field(8, ge=1, le=1000, description="Live alarm streams one user may hold open.")
    alarm_stream_max_total: int = Field(200, ge=1, le=100_000, description="Live alarm streams open at once, at most.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    metrics_token: SecretStr | None = Field(
        None, description="When set, GET /metrics needs Authorization: Bearer <this token>."
    )
    role: Literal["all", "central", "collector"] = Field(
        "all",
        description="What this process runs: all (one process does everything), central (database, alarms, "
        "ticketing, provisioning, notifications, API; no collectors) or collector (collectors only).",
    )
    leader_lease_s: float = Field(
        5.0, ge=2, le=60,
        description="PostgreSQL: a leader silent (paused, cut off) this long loses the singleton loops to another "
        "central instance.",
    )  # fmt: skip
    page_size_max: int = Field(500, ge=1, le=10_000, description="Largest page a list endpoint returns.")
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=1024**3, description="Largest request body the HTTP service reads (413 beyond)."
    )
    trap_enabled: bool = Field(True, description="Run the SNMP trap receiver in the service process.")
    trap_host: str = Field("127.0.0.1", description="Address the trap receiver listens on (production: 0.0.0.0).")
    trap_port: int = Field(1162, ge=0, le=65535, description="UDP port of the trap receiver (production: 162).")
    trap_map_file: Path | None = Field(None, description="Trap mapping YAML; empty: the packaged default.")
    trap_v3_users_file: Path | None = Field(None, description="SNMPv3 USM users YAML for traps; empty: v3 refused.")
    trap_communities: SecretStr | None = Field(
        None, description="Comma-separated communities accepted on v1/v2c traps; empty: any community."
    )
    syslog_enabled: bool = Field(True, description="Run the syslog receiver in the service process.")
    syslog_host: str = Field("127.0.0.1", description="Address the syslog receiver listens on.")
    syslog_port: int = Field(1514, ge=0, le=65535, description="UDP port of the syslog receiver (production: 514).")
    syslog_rules_file: Path | None = Field(None, description="Syslog rules YAML; empty: the packaged default.")
    receiver_queue_size: int = Field(10_000, ge=1, le=10_000_000, description="Datagrams a receiver queues.")
    receiver_rate_per_source: float = Field(
        200.0, gt=0, description="Datagrams per second one source address may send to a receiver (sustained)."
    )
    receiver_burst_per_source: int = Field(1000, ge=1, description="Datagrams one source may send at once.")
    receiver_directory_refresh_s: float = Field(
        60.0, gt=0, description="How often the receivers reload address -> device from the inventory."
    )
    receiver_unknown_sources: Literal["accept", "drop"] = Field(
        "accept",
        description="Traps and syslog from a source address not in the inventory: accept (unattributed, "
        "one alarm per type at most) or drop (counted as unknown_source; production).",
    )
    receiver_relays: str = Field(
        "",
        description="Comma-separated addresses or networks of trap/syslog relays whose forwarded agent address "
        "(v1 agent-addr, snmpTrapAddress.0) or syslog HOSTNAME is trusted; empty: none.",
    )
    poll_interval_s: float = Field(60, ge=1, le=86400, description="Seconds between SNMP polls of one device.")
    poll_timeout_s: float = Field(2.0, gt=0, le=60, description="SNMP request timeout per try.")
    poll_retries: int = Field(1, ge=0, le=10, description="SNMP retries after a timed-out request.")
    poll_concurrency: int = Field(200, ge=1, le=10_000, description="Devices polled at the same time, at most.")
    poll_max_rows: int = Field(
        250_000,
        ge=100,
        le=10_000_000,
        description="Varbinds one poll's walk reads at most (a hostile agent's endless table).",
    )
    poll_max_walk_s: float = Field(
        60.0, gt=0, le=3600, description="Seconds one poll's walk may take at most, however fast the agent answers."
    )
    poll_max_interfaces: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Interfaces of one device a poll keeps (lowest ifIndexes) and inventory rows polls create for it.",
    )
    unreachable_after: int = Field(3, ge=1, le=100, description="Consecutive failed polls before unreachable.")
    sample_retention_h: float = Field(24, gt=0, le=24 * 90, description="Hours of interface samples kept for graphs.")
    backup_interval_s: int = Field(3600, ge=60, le=7 * 86400, description="Seconds between scheduled config backups.")
    cli_interval_s: int = Field(900, ge=30, le=7 * 86400, description="Seconds between scheduled CLI show collections.")
    ssh_workers: int = Field(8, ge=1, le=256, description="Threads for SSH sessions (CLI collection, backups).")
    ssh_timeout_s: float = Field(
        20.0, gt=0, le=600, description="Per-device SSH timeout: connect, banner, auth and each command's read."
    )
    ssh_max_output_bytes: int = Field(
        16 * 1024 * 1024,
        ge=4096,
        le=1024 * 1024 * 1024,
        description="Bytes one SSH command's output may have at most; beyond, the session is closed, nothing stored.",
    )

    alarm_rules_file: Path | None = Field(None, description="Extra alarm rules YAML loaded on top of the defaults.")
    alarm_event_retention_days: int = Field(30, ge=1, le=3650, description="Days of stored events kept.")
    alarm_flap_threshold: int = Field(4, ge=1, le=1000, description="State changes in the window that mean flapping.")
    alarm_flap_window_s: float = Field(600, gt=0, le=86400, description="Flapping window; also the stability period.")
    alarm_settle_s: float = Field(60, ge=0, le=3600, description="How much older than its cause a symptom may be.")
    alarm_poller_devices: str = Field("", description="Comma-separated hostnames behind which the poller sits.")
    alarm_queue_size: int = Field(200_000, ge=100, le=10_000_000, description="Events and samples queued at most.")
    alarm_batch_size: int = Field(5000, ge=1, le=100_000, description="Events processed per transaction, at most.")
    alarm_tick_s: float = Field(1.0, gt=0, le=60, description="Seconds between timer checks and durable-queue polls.")
    alarm_topology_refresh_s: float = Field(60, gt=0, le=86400, description="Seconds between topology reloads.")
    alarm_notify_file: Path | None = Field(None, description="Notification channels and routes YAML; empty: none.")
    alarm_webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for webhook signatures.")
    alarm_notify_max_attempts: int = Field(
        12, ge=1, le=100, description="Delivery attempts of one notification before it is given up (counted, logged)."
    )
    tmf_hub_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key signing TM Forum hub events (X-Faultloop-Signature); empty: unsigned."
    )
    tmf_hub_allow_private: bool = Field(
        False, description="TM Forum hub callbacks may point at loopback / link-local hosts."
    )
    tmf_hub_max_attempts: int = Field(
        12, ge=1, le=100, description="Delivery attempts of one hub event before it is given up (subscription failing)."
    )
    itsm_url: str = Field(
        "", max_length=500,
        description="Base URL of an external service desk's TMF621 API (e.g. https://desk/tmf-api/troubleTicket/v4); "
        "the tickets it owns are created there and kept in step; empty: no ITSM sync.",
    )  # fmt: skip
    itsm_token: SecretStr | None = Field(
        None, description="Bearer token faultloop sends to the service desk's TMF621 API; never logged or shown."
    )
    itsm_user: str = Field(
        "", max_length=100,
        description="The faultloop user (role oss) the service desk calls back with; its changes are not sent back.",
    )  # fmt: skip
    itsm_min_priority: Literal["P1", "P2", "P3", "P4"] = Field(
        "P4", description="Tickets of this priority or more urgent are owned by the service desk (P4: every ticket)."
    )
    itsm_allow_private: bool = Field(
        False, description="FAULTLOOP_ITSM_URL may point at a loopback / link-local host."
    )
    itsm_max_attempts: int = Field(
        12, ge=1, le=100, description="Attempts of one request to the service desk before it is given up."
    )
    itsm_timeout_s: float = Field(10.0, gt=0, le=120, description="Seconds one request to the service desk may take.")
    smtp_host: str = Field("", description="SMTP server for e-mail notifications; empty: e-mail disabled.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_from: str = Field("faultloop@localhost", description="Sender address of notification e-mail.")
    smtp_starttls: bool = Field(False, description="Use STARTTLS before authenticating.")
    smtp_username: str = Field("", description="SMTP user; empty: no authentication.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_ca_file: Path | None = Field(
        None, description="PEM CA bundle that signs the SMTP server's certificate (STARTTLS); empty: system CAs."
    )
    smtp_allow_plaintext_auth: bool = Field(
        False, description="Allow SMTP credentials over a connection without TLS (never, unless set)."
    )

    technician_notify_allow_private: bool = Field(
        False, description="Technician webhook addresses may point at loopback / link-local hosts."
    )
    ticket_policy_file: Path | None = Field(
        None, description="Auto-ticketing/priority/SLA policy YAML; empty: packaged."
    )
    ticket_hold_down_s: float = Field(
        300, ge=0, le=7 * 86400, description="Linked alarms must stay clear this long before a ticket is verified."
    )
    ticket_verify_timeout_s: float = Field(
        3600, gt=0, le=30 * 86400, description="A resolved ticket whose alarm is still active this long reopens."
    )
    ticket_reopen_window_s: float = Field(
        7 * 86400, ge=0, le=365 * 86400, description="A closed ticket reopens if its root cause recurs this soon."
    )
    ticket_tick_s: float = Field(5.0, gt=0, le=600, description="Seconds between ticket timer runs (SLA, hold-down).")
    ticket_idempotency_retention_h: float = Field(
        24, gt=0, le=24 * 90, description="Hours an Idempotency-Key and its stored answer are kept."
    )

    provisioning_catalog_dir: Path | None = Field(
        None, description="Service catalog folder (<type>/schema.yaml, <platform>.j2, ...); empty: packaged."
    )
    provisioning_four_eyes: bool = Field(
        True, description="An order must be approved by someone other than its author."
    )
    provisioning_workers: int = Field(64, ge=1, le=512, description="Devices one order pushes to at the same time.")
    provisioning_check_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Seconds post-checks (show commands, SNMP) may take to pass."
    )
    provisioning_window_grace_s: int = Field(
        300, ge=0, le=86400, description="Seconds an order's maintenance window stays open after verification."
    )
    provisioning_tick_s: float = Field(30.0, gt=0, le=3600, description="Seconds between scheduled-order checks.")

    @field_validator("receiver_relays")
    @classmethod
    def _relay_networks(cls, value: str) -> str:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"expected IP addresses or networks (a.b.c.d or a.b.c.0/24), got {item!r}") from None
        return value

    @field_validator("login_rate_per_source", "login_rate_per_user")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            rates = parse_many(value)
        except ValueError:
            rates = []
        if len(rates) != 1 or rates[0].amount < 1:
            raise ValueError("expected one rate of at least 1, like '30/minute' or '10 per 15 minutes'")
        return value

    nats_url: str = Field(
        "",
        description="NATS server URL(s), comma-separated (nats:// or tls://): collectors <-> central (JetStream) and "
        "the live alarm stream fan-out between instances; empty: no broker, one process.",
    )
    nats_user: str = Field("", description="NATS user name (with FAULTLOOP_NATS_PASSWORD); empty: none.")
    nats_password: SecretStr | None = Field(None, description="NATS password.")
    nats_token: SecretStr | None = Field(None, description="NATS authentication token; empty: none.")
    nats_creds_file: Path | None = Field(None, description="NATS user credentials file (JWT + NKey seed).")
    nats_tls_ca_file: Path | None = Field(None, description="CA bundle that signs the NATS server certificate.")
    nats_tls_cert_file: Path | None = Field(None, description="Client certificate for NATS mutual TLS.")
    nats_tls_key_file: Path | None = Field(None, description="Private key of the NATS client certificate.")
    nats_stream_prefix: str = Field(
        "faultloop", description="Prefix of the JetStream stream names and subjects (one per installation)."
    )
    nats_stream_max_age_h: float = Field(
        72, gt=0, le=24 * 365, description="Hours a message is kept in a stream when nobody consumes it."
    )
    nats_stream_max_bytes: int = Field(
        1024**3, ge=1024**2, description="Bytes each stream keeps at most (oldest discarded first)."
    )
    nats_duplicate_window_s: float = Field(
        120, ge=1, le=86400, description="Seconds JetStream remembers a Nats-Msg-Id to drop a re-published copy."
    )
    nats_spool_max_messages: int = Field(
        1_000_000, ge=100, le=100_000_000, description="Messages the local spool keeps while NATS is unreachable."
    )
    nats_batch_size: int = Field(500, ge=1, le=10_000, description="Messages published or consumed per batch.")

    collector_name: str = Field(
        "", description="This collector's name, unique in its group; empty: the host name (role collector)."
    )
    collector_group: str = Field("default", description="The collector group whose devices this collector serves.")
    collector_key: SecretStr | None = Field(
        None,
        description="Fernet key that encrypts the device directory central publishes for collectors "
        "(the same on central and on the group's collectors).",
    )
    collector_heartbeat_s: float = Field(5.0, gt=0, le=300, description="Seconds between collector heartbeats.")

    @field_validator("collector_name", "collector_group")
    @classmethod
    def _collector_token(cls, value: str) -> str:
        import re

        if value and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ValueError("expected 1-64 letters, digits, '_' or '-'")
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str) -> str:
        for url in (u.strip() for u in value.split(",")):
            if url and (not url.startswith(("nats://", "tls://", "ws://", "wss://")) or not url.split("://", 1)[1]):
                raise ValueError(f"expected nats://host:port or tls://host:port, got {url!r}")
        return value.strip()

    @field_validator("nats_stream_prefix")
    @classmethod
    def _nats_token(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
            raise ValueError("expected 1-32 letters, digits, '_' or '-' (it names streams and subjects)")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @model_validator(mode="after")
    def _smtp_credentials_over_tls(self) -> Settings:
        if self.smtp_username and not self.smtp_starttls and not self.smtp_allow_plaintext_auth:
            raise ValueError(
                "smtp_username is set but FAULTLOOP_SMTP_STARTTLS is false: the SMTP password would cross the "
                "network in clear; set FAULTLOOP_SMTP_STARTTLS=true (or FAULTLOOP_SMTP_ALLOW_PLAINTEXT_AUTH=true)"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'faultloop.db'}"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning a validation failure into one readable message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            # a rule over several settings (no single field) names them in its message
            whole = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"FAULTLOOP_{name.upper()} ({name}): {err['msg']}" if name else whole)
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
