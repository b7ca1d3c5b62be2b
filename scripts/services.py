"""Prints which of the given PostgreSQL and Redis URLs do not answer (nothing when both do)."""

import socket
import sys
from urllib.parse import urlparse

import psycopg


def postgres_answers(url: str) -> bool:
    try:
        psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def redis_answers(url: str) -> bool:
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


if __name__ == "__main__":
    postgres_url, redis_url = sys.argv[1:3]
    missing = [name for name, ok in (("PostgreSQL", postgres_answers(postgres_url)), ("Redis", redis_answers(redis_url))) if not ok]
    print(" and ".join(missing))
