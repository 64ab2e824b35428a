"""Clients of a remote ``mreg serve``: ``GrpcClient`` for ``grpc://HOST:PORT``. They offer the
local registry's method names, arguments and return types, over the wire only (never through
``mreg.server``)."""
