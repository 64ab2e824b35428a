"""The REST server's answers as the client hands them on: an error body becomes the error the
local API would raise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.errors import ModelNotFound, RemoteError, VersionConflict

if TYPE_CHECKING:
    import httpx


class ServerError(RemoteError):
    """The server answered with an error: its message and hint, and the HTTP status."""

    def __init__(self, message: str, hint: str | None = None, status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status


def checked(answer: httpx.Response, streamed: bool = False) -> httpx.Response:
    """``answer`` if it is not an error; else the error the server described, raised as the
    local registry raises it (ModelNotFound, VersionConflict) or as ServerError."""
    if answer.status_code < 400:
        return answer
    if streamed:
        answer.read()
    try:
        body = answer.json()
    except ValueError:
        body = {"error": answer.text[:200]}
    message, hint = str(body.get("error")), body.get("hint")
    # The local registry's errors, as the gRPC client gives them (mreg.client.grpc_client).
    if answer.status_code == 404:
        raise ModelNotFound(message, hint=hint)
    if answer.status_code == 409:
        raise VersionConflict(message, hint=hint)
    raise ServerError(message, hint, answer.status_code)
