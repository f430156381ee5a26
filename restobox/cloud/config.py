"""The cloud's configuration: ``/etc/restobox/cloud.toml`` (or ``--config``).

    [cloud]
    database = "postgresql://restobox@127.0.0.1:5432/restobox"
    host = "127.0.0.1"
    port = 8700
    timezone = "Asia/Shanghai"
    offline_after_s = 90

    [[cloud.platform]]
    name = "mt"
    url = "https://open.platform.example"
    app_id = "chain-1"
    secret_file = "/etc/restobox/platform-mt.secret"

Unknown keys are errors, as in the store's files. ``RESTOBOX_CLOUD_DATABASE``
overrides ``database`` (a password belongs in the environment or
``~/.pgpass``, not in the file).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from restobox.config import ConfigError

DEFAULT_PATH = Path("/etc/restobox/cloud.toml")


class PlatformConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A delivery platform the chain sells on (docs/delivery.md)."""

    name: Annotated[str, msgspec.Meta(pattern=r"\A[a-z0-9][a-z0-9-]{0,15}\Z")]
    url: str
    """The platform's open API."""
    app_id: str
    secret_file: str
    """The app's shared secret (signs both directions)."""
    accept_within_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    """A platform order the store has not answered in this time is refused
    (the platform cancels unanswered orders itself a little later)."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0

    def secret(self) -> bytes:
        try:
            s = Path(self.secret_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read platform {self.name}'s secret {self.secret_file}: {exc.strerror}",
                              "platform_secret_unreadable") from None
        if not s:
            raise ConfigError(f"platform {self.name}'s secret file {self.secret_file} is empty",
                              "platform_secret_unreadable")
        return s


class CloudSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    database: str = "sqlite:///var/lib/restobox/cloud.db"
    """postgresql://user@host:port/name, or sqlite:///path (one process only)."""
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8700
    pool: Annotated[int, msgspec.Meta(ge=1, le=200)] = 16
    """Database connections per process."""
    timezone: str = "Asia/Shanghai"
    """The chain's day for the owner's dashboard ("today's sales")."""
    offline_after_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 90.0
    """A store not heard from for this long is offline: the dashboard says so,
    and its shops close on the delivery platforms."""
    platform: tuple[PlatformConfig, ...] = ()

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"[cloud] timezone {self.timezone!r} is not an IANA time zone", "config_invalid") from None


class CloudConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    cloud: CloudSection = msgspec.field(default_factory=CloudSection)


def load(path: str | os.PathLike | None = None, **override) -> CloudSection:
    """The [cloud] section of ``path`` (defaults if there is no file and
    none was named), with ``override`` (command-line flags) on top."""
    p = Path(path) if path else DEFAULT_PATH
    raw: dict = {}
    if path or p.exists():
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {p}: {exc.strerror}", "config_unreadable") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p} is not valid TOML: {exc}", "config_invalid") from None
    try:
        cfg = msgspec.convert(raw, CloudConfig).cloud
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{p}: {exc}", "config_invalid") from None
    env = os.environ.get("RESTOBOX_CLOUD_DATABASE")
    if env:
        cfg = msgspec.structs.replace(cfg, database=env)
    given = {k: v for k, v in override.items() if v is not None}
    if given:
        cfg = msgspec.structs.replace(cfg, **given)
    cfg.zone()
    return cfg
