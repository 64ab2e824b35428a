"""The gRPC protocol of ``mreg serve``: the modules ``protoc`` generates from
``mreg/server/mreg.proto`` (package ``mreg.v1``), shared by the server (``mreg.server``) and the
client (``mreg.client``), which must not import each other.

The generated modules are checked in, not generated at build or install time: mreg installs
from a plain ``pip install`` of its sources (editable or not) with setuptools alone, so a build
step would need ``grpcio-tools`` (a 30 MB compiler) on every machine that installs mreg, and an
editable install would never rerun it after the ``.proto`` changes. Checked in, the modules are
reviewed like any code, and ``tests/test_grpc_protocol.py`` regenerates them into a temporary
folder and fails when they differ, so they never go stale. Regenerate with
``python -m mreg.protocol.generate``. They import ``grpc`` and ``google.protobuf``: load them
only where a server or client is made, never at ``import mreg``.
"""
