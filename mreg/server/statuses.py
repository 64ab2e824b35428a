"""What each kind of mreg error answers over HTTP and over gRPC: one table for both transports,
so that a client learns the same thing whichever port it called."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.errors import (
    ArtifactNotFound,
    CorruptInput,
    IntegrityError,
    MissingData,
    ModelNotFound,
    MregError,
    RepositoryBusy,
    UnsupportedFormat,
    UsageError,
    VersionConflict,
)
from mreg.server.access import AccessDenied, WriteForbidden
from mreg.server.operations import BadName
from mreg.server.upload import UploadTooLarge

if TYPE_CHECKING:
    import grpc

# The first row whose class the error is an instance of answers: subclasses before their bases.
KINDS: tuple[tuple[type[MregError], int, str], ...] = (
    (AccessDenied, 401, "UNAUTHENTICATED"),
    (WriteForbidden, 403, "PERMISSION_DENIED"),
    (ModelNotFound, 404, "NOT_FOUND"),
    (ArtifactNotFound, 404, "NOT_FOUND"),
    (VersionConflict, 409, "ABORTED"),
    (RepositoryBusy, 409, "ABORTED"),
    (UploadTooLarge, 413, "RESOURCE_EXHAUSTED"),
    (BadName, 400, "INVALID_ARGUMENT"),
    (UsageError, 422, "INVALID_ARGUMENT"),
    (CorruptInput, 422, "INVALID_ARGUMENT"),
    (UnsupportedFormat, 422, "INVALID_ARGUMENT"),
    # The version is known but its data is on no store the server reaches.
    (MissingData, 409, "FAILED_PRECONDITION"),
    (IntegrityError, 500, "DATA_LOSS"),
)
OTHER = (500, "FAILED_PRECONDITION")


def _row(error: MregError) -> tuple[int, str]:
    for kind, status, code in KINDS:
        if isinstance(error, kind):
            return status, code
    return OTHER


def http_status(error: MregError) -> int:
    """The HTTP status of ``error``."""
    return _row(error)[0]


def grpc_code(error: MregError) -> grpc.StatusCode:
    """The gRPC status code of ``error``."""
    import grpc

    return grpc.StatusCode[_row(error)[1]]
