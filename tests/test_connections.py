"""Ways to reach one server (SPEC 6): a unix socket shared by local processes, an ACL user
limited to the registry's keys, and TLS (rediss://)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from registry import ThreadRegistry
from tests.servers import RedisServer, free_port

CHAINS = ["system.acme.console.router", "system.acme.console.calculator.add", "a.b"]

# Several processes on one host: each prints the ids it got, one per line.
WORKER = textwrap.dedent(
    """
    import sys
    from registry import ThreadRegistry
    reg = ThreadRegistry.from_url(sys.argv[1], namespace="local")
    reg.initialize_root("acme")
    for chain in sys.argv[2:]:
        print(reg.get_or_create(chain))
    """
)


def test_processes_share_a_private_server_on_a_unix_socket() -> None:
    with RedisServer(unix_socket=True) as server:
        assert server.url.startswith("unix://")
        outputs = [
            subprocess.run(
                [sys.executable, "-c", WORKER, server.url, *order],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.split()
            for order in (CHAINS, CHAINS[::-1], CHAINS)
        ]
        first = outputs[0]
        assert outputs[1] == first[::-1] and outputs[2] == first
        reg = ThreadRegistry.from_url(server.url, namespace="local")
        assert [reg.lookup(tid) for tid in first] == CHAINS


def test_an_acl_user_limited_to_the_registry_keys_is_enough() -> None:
    acl = ["--user", "app", "on", ">s3cret", "~threadreg:*", "+@all", "-@dangerous", "+script|load"]
    with RedisServer(extra_args=acl) as server:
        url = f"redis://app:s3cret@127.0.0.1:{server.port}/0"
        reg = ThreadRegistry.from_url(url, namespace="acl")
        root = reg.initialize_root("acme")
        leaf = reg.extend_chain(root, "calculator.add")
        assert reg.prune_for_response(leaf) == ("acme", root)
        with reg.batch() as b:
            b.lookup(leaf).debug_dump()
        assert b.results is not None and b.results[0] == "system.acme.calculator.add"
        server.client().script_flush()  # the reload path works under the ACL too
        assert reg.lookup(leaf) == "system.acme.calculator.add"
        reg.clear()
        with pytest.raises(redis.AuthenticationError):
            ThreadRegistry.from_url(f"redis://app:wrong@127.0.0.1:{server.port}/0", namespace="acl").lookup(
                root
            )


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate (Debian: apt-get install openssl)"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(tmp_path / "server.key"), "-out", str(tmp_path / "server.crt"),
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield tmp_path


def test_tls_with_rediss_url(tls_files: Path) -> None:
    tls_port = free_port()
    tls = [
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(tls_files / "server.crt"),
        "--tls-key-file", str(tls_files / "server.key"),
        "--tls-ca-cert-file", str(tls_files / "server.crt"),
        "--tls-auth-clients", "no",
    ]  # fmt: skip
    with RedisServer(extra_args=tls):
        url = (
            f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=required&ssl_ca_certs={tls_files / 'server.crt'}"
        )
        reg = ThreadRegistry.from_url(url, namespace="tls")
        root = reg.initialize_root("acme")
        assert reg.lookup(reg.extend_chain(root, "console")) == "system.acme.console"
        reg.close()
        # Without trusting the server's certificate, no connection is made.
        untrusted = ThreadRegistry.from_url(
            f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=required", namespace="tls"
        )
        with pytest.raises(redis.ConnectionError):
            untrusted.lookup(root)
