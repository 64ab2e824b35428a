"""Regenerate the checked-in gRPC modules from ``mreg/server/mreg.proto``:
``python -m mreg.protocol.generate`` (needs ``grpcio-tools``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parent
PROTO = PROTOCOL.parent / "server" / "mreg.proto"
GENERATED = ("mreg_pb2.py", "mreg_pb2.pyi", "mreg_pb2_grpc.py")


def generate(out: Path = PROTOCOL) -> list[Path]:
    """Write the generated modules into ``out``; returns their paths."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO.parent}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        PROTO.name,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    stubs = out / "mreg_pb2_grpc.py"
    # protoc writes a top-level import; the modules live in the mreg.protocol package.
    text = stubs.read_text()
    stubs.write_text(
        re.sub(r"^import mreg_pb2 as", "from mreg.protocol import mreg_pb2 as", text, flags=re.M)
    )
    return [out / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTOCOL):
        print(path)
