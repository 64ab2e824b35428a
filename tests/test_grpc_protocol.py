"""The gRPC modules checked in under mreg/protocol/ are what protoc makes of mreg/server/mreg.proto
today, and they load as part of the mreg package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mreg.protocol import generate


def test_checked_in_grpc_modules_match_a_fresh_generation_from_the_proto(tmp_path: Path) -> None:
    fresh = generate.generate(tmp_path)
    for path in fresh:
        checked_in = generate.PROTOCOL / path.name
        assert checked_in.read_bytes() == path.read_bytes(), (
            f"mreg/protocol/{path.name} is stale: run `python -m mreg.protocol.generate`"
        )


def test_generated_stubs_import_from_the_mreg_package_not_from_the_top_level() -> None:
    code = "import mreg.protocol.mreg_pb2_grpc as g, sys; print('mreg_pb2' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
