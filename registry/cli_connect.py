"""The command line's connection options, and errors as one line that shows no secret.

Every subcommand takes the same options: `--url` (or $THREAD_REGISTRY_URL), `--cluster`,
or `--sentinel HOST:PORT[,...]` with `--service NAME`; `--namespace`; `--timeout`. A
password comes in the URL (``redis://user:password@host``) or, for Sentinel, in
$THREAD_REGISTRY_PASSWORD; `Target.redact` removes it from anything the CLI prints.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.exceptions
import redis.sentinel

from .default import URL_ENV
from .errors import RegistryError

PASSWORD_ENV = "THREAD_REGISTRY_PASSWORD"
DEFAULT_TIMEOUT = 10.0
# user:password@ in any URL, whatever the password holds: hidden even where we do not
# know the password (a URL inside a library's own message).
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s]*@", re.IGNORECASE)


class UsageError(Exception):
    """A command line that cannot work as given (exit status 2)."""


def add_connection_arguments(cmd: argparse.ArgumentParser, *, namespace_required: bool = True) -> None:
    where = cmd.add_argument_group("where the registry lives")
    where.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        help=f"redis://, rediss:// or unix:// URL (default: ${URL_ENV})",
    )
    where.add_argument("--cluster", action="store_true", help="the URL names a Redis Cluster node")
    where.add_argument(
        "--sentinel",
        metavar="HOST:PORT[,...]",
        help=f"ask these Sentinels for the primary (with --service; password in ${PASSWORD_ENV})",
    )
    where.add_argument("--service", metavar="NAME", help="the Sentinel service name of the primary")
    where.add_argument(
        "--namespace", required=namespace_required, help="the namespace (1-64 of A-Z a-z 0-9 _ - . :)"
    )
    where.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on an unresponsive server after this long (default {DEFAULT_TIMEOUT:g})",
    )


@dataclass
class Target:
    """Where a command connects, from its options; knows the secrets it must not print."""

    url: str | None = None
    cluster: bool = False
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    service: str | None = None
    password: str | None = None  # for Sentinel-managed connections
    timeout: float = DEFAULT_TIMEOUT
    secrets: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, required: bool = True) -> Target | None:
        url = args.url or None
        target = cls(url=url, cluster=bool(args.cluster), timeout=args.timeout)
        if url:
            target.secrets += _url_secrets(url)
        password = os.environ.get(PASSWORD_ENV)
        if password:
            target.secrets.append(password)
        if not (args.timeout > 0):
            raise UsageError(f"--timeout {args.timeout} must be a number of seconds > 0")
        if args.sentinel:
            if url:
                raise UsageError("give --url or --sentinel, not both")
            if args.cluster:
                raise UsageError("--cluster and --sentinel do not go together")
            if not args.service:
                raise UsageError("--sentinel needs --service NAME (the primary's service name)")
            target.sentinels = [_host_port(item) for item in args.sentinel.split(",") if item.strip()]
            target.service = args.service
            target.password = password
            return target
        if args.service:
            raise UsageError("--service goes with --sentinel")
        if not url:
            if not required:
                return None
            raise UsageError(f"give --url (or set ${URL_ENV}), or --sentinel HOST:PORT with --service")
        return target

    def where(self) -> str:
        """Where the command talks to, for messages: no password, no user."""
        if self.sentinels:
            return f"Sentinel service {self.service!r} at " + ",".join(f"{h}:{p}" for h, p in self.sentinels)
        assert self.url is not None
        try:
            parts = urlsplit(self.url)
            if parts.scheme == "unix":
                return f"unix socket {parts.path}"
            return f"{parts.hostname}:{parts.port or 6379}" + (" (cluster)" if self.cluster else "")
        except ValueError:
            return self.redact(self.url)

    def connection_kwargs(self) -> dict[str, Any]:
        return {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout}

    def sync_registry(self, namespace: str, **kwargs: Any) -> Any:
        from .client import ThreadRegistry

        return self._open(ThreadRegistry, namespace, **kwargs)

    def async_registry(self, namespace: str, **kwargs: Any) -> Any:
        from .aio import AsyncThreadRegistry

        return self._open(AsyncThreadRegistry, namespace, **kwargs)

    def _open(self, cls: Any, namespace: str, **kwargs: Any) -> Any:
        # A command waits out a failover no longer than its timeout.
        kwargs.setdefault("retry_seconds", self.timeout)
        if self.sentinels:
            return cls.from_sentinel(
                self.sentinels,
                self.service,
                namespace=namespace,
                password=self.password,
                sentinel_kwargs=self.connection_kwargs(),
                **self.connection_kwargs(),
                **kwargs,
            )
        assert self.url is not None
        try:
            return cls.from_url(
                self.url, namespace=namespace, cluster=self.cluster, **self.connection_kwargs(), **kwargs
            )
        except ValueError as exc:
            if isinstance(exc, RegistryError):
                raise
            raise UsageError(f"bad URL {self.redact(self.url)}: {exc}") from None

    def redact(self, text: str) -> str:
        """`text` with every secret this target knows (and any URL's password) hidden."""
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
        for secret in sorted(set(self.secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _url_secrets(url: str) -> list[str]:
    """The password of a URL as written and decoded (a URL that does not parse gives
    what sits between the user and the '@', so the message about it hides it too)."""
    out: list[str] = []
    try:
        raw = urlsplit(url).password
    except ValueError:
        raw = None
    if raw is None:
        m = re.search(r"://[^:/@\s]*:([^@\s]*)@", url)
        raw = m.group(1) if m else None
    if raw:
        out += [raw, unquote(raw)]
    return out


def _host_port(item: str) -> tuple[str, int]:
    host, sep, port = item.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--sentinel {item.strip()!r} must be HOST:PORT (port 1-65535)")
    return host, int(port)


def describe_error(exc: BaseException, target: Target | None) -> str:
    """One line saying what went wrong, with every secret hidden."""
    where = target.where() if target is not None else "the server"
    text: str
    if isinstance(exc, UsageError | RegistryError):
        text = str(exc)
    elif isinstance(exc, redis.exceptions.AuthenticationError):
        text = f"authentication to {where} failed ({exc}); check the user and password"
    elif isinstance(exc, redis.exceptions.NoPermissionError | redis.exceptions.AuthorizationError):
        text = f"{where} refused a command: the ACL user lacks a permission ({exc})"
    elif isinstance(exc, redis.sentinel.MasterNotFoundError):
        text = f"no primary found for {where} (the Sentinels do not answer, or do not know the service)"
    elif isinstance(exc, redis.exceptions.TimeoutError):
        timeout = target.timeout if target is not None else DEFAULT_TIMEOUT
        text = f"{where} did not answer within {timeout:g} s ({exc})"
    elif isinstance(exc, redis.exceptions.ConnectionError):
        text = f"cannot reach {where}: {exc}"
    elif isinstance(exc, redis.exceptions.RedisClusterException):
        text = f"cannot use the cluster at {where}: {exc or type(exc).__name__}"
    elif isinstance(exc, redis.exceptions.ResponseError):
        text = f"{where} answered with an error: {exc}"
    elif isinstance(exc, OSError):
        text = f"cannot reach {where}: {exc}"
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    text = target.redact(text) if target is not None else _USERINFO.sub(r"\g<scheme>\g<user>:***@", text)
    # Cut after hiding secrets (a cut could leave part of one). Some library messages
    # carry a client's whole repr.
    return text if len(text) <= 400 else text[:400] + "..."
