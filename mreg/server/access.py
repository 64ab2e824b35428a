"""Who may call the server: bearer tokens with a name and a role (``read`` or ``write``).

Tokens come from ``--token-file`` (one ``NAME ROLE TOKEN`` a line; ``#`` starts a comment) or the
``MREG_SERVER_TOKENS`` environment variable (the same lines, separated by newlines or ``;``).
Without any token the server is read-only and anyone on the network it binds to may read.

Tokens are kept only as sha256 digests and compared in constant time, so neither a log line, an
error message nor a timing difference gives one away.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from mreg.errors import MregError, UsageError

ROLES = ("read", "write")
ENVIRONMENT_VARIABLE = "MREG_SERVER_TOKENS"
ANONYMOUS = "anonymous"


class AccessDenied(MregError):
    """A request without a valid token (HTTP 401, gRPC UNAUTHENTICATED)."""


class WriteForbidden(MregError):
    """A valid token without the right to write, or a read-only server (HTTP 403)."""


@dataclass(frozen=True)
class Identity:
    """The caller a token names: commits the server makes on its behalf carry ``name``."""

    name: str
    can_write: bool


@dataclass(frozen=True)
class Access:
    """The server's token table (digest -> identity) and whether it accepts writes at all."""

    identities: dict[str, Identity]
    read_only: bool = False

    @property
    def open_to_anonymous_reads(self) -> bool:
        return not self.identities

    @property
    def accepts_writes(self) -> bool:
        return not self.read_only and any(i.can_write for i in self.identities.values())

    def identify(self, token: str | None) -> Identity:
        """The caller of a request that may only read."""
        if not token:
            if self.open_to_anonymous_reads:
                return Identity(ANONYMOUS, can_write=False)
            hint = "send 'Authorization: Bearer TOKEN'"
            raise AccessDenied("this server needs a token", hint=hint)
        wanted = _digest(token)
        for digest, identity in self.identities.items():
            if hmac.compare_digest(digest, wanted):
                return identity
        raise AccessDenied("the token is not valid on this server")

    def authorize_write(self, token: str | None) -> Identity:
        """The caller of a request that writes: a known token with the ``write`` role."""
        if not self.accepts_writes:
            raise WriteForbidden(
                "this server is read-only",
                hint="start it with --token-file naming a token with the 'write' role",
            )
        identity = self.identify(token)
        if not identity.can_write or self.read_only:
            raise WriteForbidden(f"the token of {identity.name!r} may only read")
        return identity


def load_access(token_file: Path | None = None, read_only: bool = False) -> Access:
    """The token table from ``token_file`` and ``MREG_SERVER_TOKENS`` together."""
    lines: list[tuple[str, str]] = []
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot read the token file {token_file}: {error.strerror}") from None
        lines += [(f"{token_file}:{n}", line) for n, line in enumerate(text.splitlines(), 1)]
    environment = os.environ.get(ENVIRONMENT_VARIABLE, "")
    for n, line in enumerate(environment.replace(";", "\n").splitlines(), 1):
        lines.append((f"{ENVIRONMENT_VARIABLE} entry {n}", line))
    identities: dict[str, Identity] = {}
    for where, line in lines:
        parsed = _parse_line(where, line)
        if parsed is not None:
            token, identity = parsed
            identities[_digest(token)] = identity
    return Access(identities, read_only=read_only)


def _parse_line(where: str, line: str) -> tuple[str, Identity] | None:
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    fields = text.split()
    if len(fields) != 3:
        # Never quote the line: it holds a token.
        raise UsageError(f"{where}: expected 'NAME ROLE TOKEN' (3 fields), found {len(fields)}")
    name, role, token = fields
    if role not in ROLES:
        raise UsageError(f"{where}: role must be 'read' or 'write', not {role!r}")
    if len(token) < 16:
        raise UsageError(f"{where}: a token must have at least 16 characters")
    return token, Identity(name=name, can_write=role == "write")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
