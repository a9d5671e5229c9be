"""Ports for the CI scripts' servers, chosen below the kernel's ephemeral range.

A port taken from that range and released (bind to port 0, close) can be handed to any
outgoing connection, a service's own to PostgreSQL or Kafka, before the server meant to
listen on it binds it; CI failed on exactly that once. Ports below the range are never
given out implicitly, so one that binds now stays free until a listener asks for it.

`python3 free_ports.py N` prints N distinct ports, one per line."""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

_given: set[int] = set()


def free_port() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first = 10000 if low > 11000 else 1024
    for _ in range(1000):
        port = random.randrange(first, low)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise SystemExit(f"no free port between {first} and {low}")


if __name__ == "__main__":
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
        print(free_port())
