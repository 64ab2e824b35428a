"""mreg's remote engine: one repository served over REST, gRPC and WebSocket (``mreg serve``).

The server is a thin layer over the library API (``mreg.registry``, ``mreg.repo``): every write is
what the CLI would do, under the repository lock. ``access`` decides who may read and write.
"""
