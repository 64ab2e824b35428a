"""gRPC status codes for mreg's errors, and the wrappers that turn an error raised by a call of
the service into its status, with the error's one-line message as the details."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

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
from mreg.server.upload import UploadTooLarge

if TYPE_CHECKING:
    import grpc

T = TypeVar("T")


def status_code(error: MregError) -> grpc.StatusCode:
    """The gRPC status of an mreg error (the transport-neutral kinds, mapped once)."""
    import grpc

    kinds: list[tuple[type[MregError], grpc.StatusCode]] = [
        (AccessDenied, grpc.StatusCode.UNAUTHENTICATED),
        (WriteForbidden, grpc.StatusCode.PERMISSION_DENIED),
        (ArtifactNotFound, grpc.StatusCode.NOT_FOUND),
        (ModelNotFound, grpc.StatusCode.NOT_FOUND),
        (VersionConflict, grpc.StatusCode.ABORTED),
        (RepositoryBusy, grpc.StatusCode.ABORTED),
        (UploadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (UsageError, grpc.StatusCode.INVALID_ARGUMENT),
        (UnsupportedFormat, grpc.StatusCode.INVALID_ARGUMENT),
        (CorruptInput, grpc.StatusCode.INVALID_ARGUMENT),
        (MissingData, grpc.StatusCode.FAILED_PRECONDITION),
        (IntegrityError, grpc.StatusCode.DATA_LOSS),
    ]
    for kind, code in kinds:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


def abort(context: grpc.ServicerContext, error: BaseException) -> None:
    import grpc

    if isinstance(error, MregError):
        context.abort(status_code(error), " ".join(str(error).split()))
    # A bug: the traceback goes to the server's log, the caller gets its kind only.
    traceback.print_exception(error, file=sys.stderr)
    context.abort(grpc.StatusCode.INTERNAL, f"the server failed: {type(error).__name__}")


def unary(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def call(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return method(self, request, context)
        except Exception as error:
            abort(context, error)
            raise  # not reached: abort raises

    return call


def streaming(method: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    @functools.wraps(method)
    def call(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[T]:
        try:
            yield from method(self, request, context)
        except Exception as error:
            abort(context, error)

    return call
