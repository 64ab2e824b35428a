"""The wrappers that turn an error raised by a call of the service into its gRPC status (the
table in ``statuses``), with the error's one-line message as the details."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from mreg.errors import MregError
from mreg.server import statuses

if TYPE_CHECKING:
    import grpc

T = TypeVar("T")


def abort(context: grpc.ServicerContext, error: BaseException) -> None:
    import grpc

    if isinstance(error, MregError):
        context.abort(statuses.grpc_code(error), " ".join(str(error).split()))
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
