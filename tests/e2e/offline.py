"""An environment for child processes (the demo, notebook kernels) that keeps them on loopback.

tests/conftest.py guards the sockets of the pytest process only. A child process gets the same
guard from a ``sitecustomize`` module put first on its ``PYTHONPATH``, and no TOKENHUB_* variable,
so it never sees a developer's real key.
"""

from __future__ import annotations

import os
from pathlib import Path

GUARD = '''\
"""Written by tests/e2e/offline.py: this process may only reach loopback addresses."""
import ipaddress
import socket

_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _loopback(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address):
    if isinstance(address, tuple) and not _loopback(address[0]):
        raise OSError(f"offline test process tried to reach {address[0]!r}")


def getaddrinfo(host, *args, **kwargs):
    _check((host,))
    return _getaddrinfo(host, *args, **kwargs)


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
'''


def offline_env(directory: Path) -> dict[str, str]:
    """This process's environment minus TOKENHUB_*, with the loopback guard installed."""
    (directory / "sitecustomize.py").write_text(GUARD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(directory), env.get("PYTHONPATH")) if p)
    return env
