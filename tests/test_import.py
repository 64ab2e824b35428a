"""`mreg import`: http(s) downloads that resume, and Hugging Face repos and datasets from a cache.

Nothing here reaches the internet: http(s) tests talk to a server on 127.0.0.1 started by the
test; Hugging Face tests run `mreg` in a subprocess with HF_HOME pointing at a cache the test
fills by hand and HF_HUB_OFFLINE=1 (huggingface_hub and datasets read both when imported).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import Result, make_safetensors, make_table

import mreg
from mreg.storage import http as mreg_http

# -- an http server on loopback that can drop connections and ignore ranges ------------------


@dataclass
class Seen:
    path: str
    range: str | None


@dataclass
class FileServer:
    """Serves ``files`` by name; ``drop`` says which requests break off half-way."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop: str = "never"  # "never", "first" or "always"
    ignore_range: bool = False
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


class _Handler(BaseHTTPRequestHandler):
    state: FileServer

    def do_GET(self) -> None:
        state = self.state
        state.seen.append(Seen(self.path, self.headers.get("Range")))
        body = state.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if asked and not state.ignore_range:
            start = int(asked.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        dropped = state.drop == "always" or (state.drop == "first" and len(state.seen) == 1)
        # A dropped request promises every byte, sends half of them, and hangs up.
        self.wfile.write(payload[: len(payload) // 2] if dropped else payload)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FileServer]:
    state = FileServer()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def payload(tmp_path: Path) -> bytes:
    """A Parquet file of a few hundred KiB, big enough to be cut in half."""
    return make_table(tmp_path / "source.parquet", rows=20_000).read_bytes()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mreg_http, "BACKOFF_S", 0.0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(path.read_text())


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def partial_files(repo: Path) -> list[Path]:
    tmp = repo / ".mreg" / "tmp"
    return sorted(tmp.glob("import-*")) if tmp.exists() else []


# -- http(s) ----------------------------------------------------------------------------------


def test_import_downloads_the_file_and_records_its_url_and_sha256(repo, run, server, payload):
    server.files["data.parquet"] = payload

    result = run("import", server.url("data.parquet"), "--meta", "origin=test")

    assert result.exit_code == 0, result.stderr
    assert (repo / "data.parquet").read_bytes() == payload
    recorded = manifest(repo / "data.parquet.mreg.toml")
    assert recorded["source"]["url"] == server.url("data.parquet")
    assert recorded["source"]["sha256"] == sha256(payload)
    assert recorded["meta"] == {"origin": "test"}
    assert recorded["rows"] == 20_000
    assert partial_files(repo) == []
    assert run("status").stdout.strip() == "data (data.parquet): in sync"


def test_a_dropped_download_resumes_from_the_partial_size(repo, run, server, payload):
    server.files["data.parquet"] = payload
    server.drop = "first"

    result = run("import", server.url("data.parquet"), "data/train.parquet", "--sha256",
                 sha256(payload))  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert len(server.seen) == 2
    assert server.seen[0].range is None
    assert server.seen[1].range == f"bytes={len(payload) // 2}-"
    assert len(payload) // 2 > 0
    assert (repo / "data" / "train.parquet").read_bytes() == payload


def test_a_server_that_ignores_range_requests_still_yields_the_whole_file(
    repo, run, server, payload
):
    server.files["data.parquet"] = payload
    server.drop = "first"
    server.ignore_range = True

    result = run("import", server.url("data.parquet"))

    assert result.exit_code == 0, result.stderr
    assert server.seen[1].range is not None  # asked for the rest, got the whole file again
    assert (repo / "data.parquet").read_bytes() == payload
    assert manifest(repo / "data.parquet.mreg.toml")["source"]["sha256"] == sha256(payload)


def test_a_checksum_mismatch_adds_nothing_and_leaves_no_partial_file(repo, run, server, payload):
    server.files["data.parquet"] = payload

    result = run("import", server.url("data.parquet"), "--sha256", "0" * 64)

    assert result.exit_code != 0
    assert "--sha256 says 000000" in one_error_line(result)
    assert not (repo / "data.parquet").exists()
    assert not (repo / "data.parquet.mreg.toml").exists()
    assert partial_files(repo) == []


def test_a_download_that_never_completes_fails_after_the_retries(
    repo, run, server, payload, no_backoff
):
    server.files["data.parquet"] = payload
    server.drop = "always"

    result = run("import", server.url("data.parquet"))

    assert result.exit_code != 0
    line = one_error_line(result)
    assert f"could not download {server.url('data.parquet')} after {mreg_http.RETRIES}" in line
    assert len(server.seen) == mreg_http.RETRIES
    assert not (repo / "data.parquet").exists()
    assert not (repo / "data.parquet.mreg.toml").exists()


def test_running_the_command_again_resumes_an_import_that_gave_up(
    repo, run, server, payload, no_backoff
):
    server.files["data.parquet"] = payload
    server.drop = "always"
    assert run("import", server.url("data.parquet")).exit_code != 0
    kept = partial_files(repo)[0].stat().st_size
    server.drop = "never"
    server.seen.clear()

    result = run("import", server.url("data.parquet"))

    assert result.exit_code == 0, result.stderr
    assert [s.range for s in server.seen] == [f"bytes={kept}-"]
    assert (repo / "data.parquet").read_bytes() == payload
    assert partial_files(repo) == []


def test_a_missing_file_fails_at_once_naming_the_url(repo, run, server):
    result = run("import", server.url("absent.parquet"))

    assert result.exit_code != 0
    line = one_error_line(result)
    assert server.url("absent.parquet") in line
    assert "404" in line
    assert len(server.seen) == 1
    assert not (repo / "absent.parquet.mreg.toml").exists()


def test_an_unreachable_server_fails_naming_the_url(repo, run, no_backoff):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.parquet"

    result = run("import", url)

    assert result.exit_code != 0
    assert f"could not download {url}" in one_error_line(result)
    assert not (repo / "data.parquet").exists()


def test_a_path_outside_the_repository_is_refused_before_downloading(
    repo, run, server, payload, tmp_path
):
    server.files["data.parquet"] = payload

    result = run("import", server.url("data.parquet"), str(tmp_path / "elsewhere.parquet"))

    assert result.exit_code != 0
    assert "outside the repository" in one_error_line(result)
    assert server.seen == []
    assert not (tmp_path / "elsewhere.parquet").exists()


def test_a_file_of_unknown_format_is_imported_as_opaque_bytes(repo, run, server):
    server.files["notes.xyz"] = b"hello"

    result = run("import", server.url("notes.xyz"))

    assert result.exit_code == 0, result.stderr
    assert (repo / "notes.xyz").read_bytes() == b"hello"
    assert 'format = "blob"' in (repo / "notes.xyz.mreg.toml").read_text()


def test_a_different_file_at_path_is_kept_unless_forced(repo, run, server, payload, tmp_path):
    server.files["data.parquet"] = payload
    mine = make_table(tmp_path / "mine.parquet", rows=3).read_bytes()
    (repo / "data.parquet").write_bytes(mine)

    refused = run("import", server.url("data.parquet"))

    assert refused.exit_code != 0
    assert "data.parquet exists and differs" in one_error_line(refused)
    assert (repo / "data.parquet").read_bytes() == mine
    assert not (repo / "data.parquet.mreg.toml").exists()
    assert partial_files(repo) == []

    forced = run("import", server.url("data.parquet"), "--force")

    assert forced.exit_code == 0, forced.stderr
    assert (repo / "data.parquet").read_bytes() == payload


def test_a_download_mreg_cannot_read_is_removed_again(repo, run, server):
    server.files["broken.parquet"] = b"not parquet at all"

    result = run("import", server.url("broken.parquet"))

    assert result.exit_code != 0
    assert "broken.parquet" in one_error_line(result)
    assert not (repo / "broken.parquet").exists()
    assert not (repo / "broken.parquet.mreg.toml").exists()


def test_importing_the_same_url_twice_changes_nothing(repo, run, server, payload):
    server.files["data.parquet"] = payload
    assert run("import", server.url("data.parquet")).exit_code == 0
    before = (repo / "data.parquet.mreg.toml").read_text()

    again = run("import", server.url("data.parquet"))

    assert again.exit_code == 0, again.stderr
    assert "(unchanged)" in again.stdout
    assert (repo / "data.parquet.mreg.toml").read_text() == before


def test_the_python_api_imports_a_url_and_returns_the_add_result(repo, server, tmp_path):
    model = make_safetensors(tmp_path / "net.safetensors").read_bytes()
    server.files["net.safetensors"] = model

    result = mreg.Repo(".").import_url(
        server.url("net.safetensors"), "models/net.safetensors", sha256=sha256(model), name="net"
    )

    assert result.manifest.name == "net"
    assert result.manifest.source.url == server.url("net.safetensors")
    assert result.manifest.source.sha256 == sha256(model)
    assert (repo / "models" / "net.safetensors").read_bytes() == model


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://example.invalid/x.parquet"], "cannot import 'ftp://"),
        (["http://127.0.0.1:9/", "--sha256", "0" * 64], "does not end in a file name"),
        (["http://127.0.0.1:9/x.parquet", "--sha256", "xyz"], "--sha256 expects 64 hex digits"),
        (["http://127.0.0.1:9/x.parquet", "--kind", "model"], "would be a dataset, not a model"),
        (["http://127.0.0.1:9/x.parquet", "--allow", "*"], "--allow selects files of hf://"),
        (["hf://org/x", "--sha256", "0" * 64], "--sha256 checks http(s) downloads"),
        (["hf://org/x@"], "cannot read 'hf://org/x@'"),
        (["hf-dataset://org/x?limit=-1"], "limit must be a positive whole number"),
        (["hf-dataset://org/x?colour=red"], "bad query 'colour'"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_before_any_download(repo, run, args, message):
    result = run("import", *args)

    assert result.exit_code != 0
    assert message in one_error_line(result)
    assert list(repo.glob("*.mreg.toml")) == []


# -- Hugging Face: a cache filled by hand, used offline ----------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hf_env(hf_home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    }


def mreg_offline(hf_home: Path, *args: str) -> Result:
    """Run `mreg` in a fresh interpreter, so the Hugging Face libraries read this HF_HOME."""
    done = subprocess.run(
        [sys.executable, "-c", "from mreg.cli import main; main()", *args],
        env=hf_env(hf_home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def fill_hub_cache(
    hf_home: Path, repo_id: str, repo_type: str, files: dict[str, bytes], commit: str = COMMIT
) -> None:
    """The layout huggingface_hub leaves behind: blobs, snapshot links to them, refs/main."""
    storage = hf_home / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    for rel, data in files.items():
        blob = storage / "blobs" / sha256(data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = storage / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def saved_dataset_dict(folder: Path) -> Path:
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"text": ["a", "b", "c"], "label": [0, 1, 0]}, features=features
            ),
            "test": datasets.Dataset.from_dict({"text": ["d"], "label": [1]}, features=features),
        }
    ).save_to_disk(str(folder))
    return folder


def test_import_hf_records_the_resolved_commit_of_a_cached_repo(repo, tmp_path):
    import datasets

    hf_home = tmp_path / "hf"
    saved = saved_dataset_dict(tmp_path / "saved")
    fill_hub_cache(hf_home, "org/tiny-data", "dataset", folder_files(saved))

    result = mreg_offline(hf_home, "import", "hf://org/tiny-data", "data/tiny", "--kind", "dataset")

    assert result.exit_code == 0, result.stderr
    recorded = manifest(repo / "data" / "tiny.mreg.toml")
    assert recorded["source"]["url"] == f"hf://org/tiny-data@{COMMIT}"
    assert recorded["source"]["format"] == "hf_dataset"
    assert recorded["meta"]["hf_commit"] == COMMIT
    assert recorded["meta"]["hf_repo"] == "org/tiny-data"
    assert recorded["meta"]["hf_revision"] == "main"
    assert recorded["rows"] == 4
    imported = datasets.load_from_disk(str(repo / "data" / "tiny"))
    assert imported["train"]["text"] == ["a", "b", "c"]
    assert not (repo / "data" / "tiny").is_symlink()
    assert not any(p.is_symlink() for p in (repo / "data" / "tiny").rglob("*"))


def test_import_hf_copies_only_the_allowed_files_of_a_model_repo(repo, tmp_path):
    pytest.importorskip("mreg.converters.transformers_folder")
    hf_home = tmp_path / "hf"
    weights = make_safetensors(tmp_path / "model.safetensors").read_bytes()
    config = b'{"model_type": "bert", "hidden_size": 16}'
    files = {"config.json": config, "model.safetensors": weights, "README.md": b"# tiny\n"}
    fill_hub_cache(hf_home, "org/tiny", "model", files)

    result = mreg_offline(
        hf_home, "import", "hf://org/tiny", "--allow", "*.json", "--allow", "*.safetensors"
    )

    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (repo / "org--tiny").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    assert (repo / "org--tiny" / "model.safetensors").read_bytes() == weights
    recorded = manifest(repo / "org--tiny.mreg.toml")
    assert recorded["kind"] == "model"
    assert recorded["source"]["url"] == f"hf://org/tiny@{COMMIT}"
    assert recorded["meta"]["hf_commit"] == COMMIT


def test_import_hf_offline_without_the_repo_in_the_cache_adds_nothing(repo, tmp_path):
    result = mreg_offline(tmp_path / "hf", "import", "hf://org/absent@v2")

    assert result.exit_code != 0
    line = one_error_line(result)
    assert line.startswith("error: hf://org/absent@v2 is not in the Hugging Face cache, and")
    assert "HF_HUB_OFFLINE" in line
    assert not (repo / "org--absent").exists()
    assert list(repo.glob("*.mreg.toml")) == []


# -- hf-dataset://: the `datasets` cache as a first online load leaves it ---------------------


def fill_datasets_cache(hf_home: Path, repo_id: str, commit: str = COMMIT) -> None:
    """Prepare a dataset into HF_HOME/datasets as `load_dataset` does for a Hub repo at
    ``commit``, so that `load_dataset(repo_id)` finds it there when offline."""
    import datasets
    import pyarrow as pa

    class Tiny(datasets.ArrowBasedBuilder):
        def _info(self) -> datasets.DatasetInfo:
            return datasets.DatasetInfo(
                features=datasets.Features(
                    {
                        "text": datasets.Value("string"),
                        "label": datasets.ClassLabel(names=["neg", "pos"]),
                    }
                )
            )

        def _split_generators(self, dl_manager):  # type: ignore[no-untyped-def]
            return [
                datasets.SplitGenerator(name=name, gen_kwargs={"rows": rows})
                for name, rows in (("train", 5), ("test", 2))
            ]

        def _generate_tables(self, rows):  # type: ignore[no-untyped-def]
            texts = [f"{rows}-{i}" for i in range(rows)]
            yield 0, pa.table({"text": texts, "label": [i % 2 for i in range(rows)]})

    builder = Tiny(
        cache_dir=str(hf_home / "datasets"),
        dataset_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        hash=commit,
    )
    builder.download_and_prepare()


def test_import_hf_dataset_loads_a_split_with_a_limit_from_the_offline_cache(repo, tmp_path):
    import datasets

    hf_home = tmp_path / "hf"
    fill_datasets_cache(hf_home, "org/tiny")

    result = mreg_offline(hf_home, "import", "hf-dataset://org/tiny?split=train&limit=3", "tiny")

    assert result.exit_code == 0, result.stderr
    recorded = manifest(repo / "tiny.mreg.toml")
    assert recorded["source"]["format"] == "hf_dataset"
    assert recorded["source"]["url"] == f"hf-dataset://org/tiny@{COMMIT}?split=train&limit=3"
    assert recorded["meta"]["hf_commit"] == COMMIT
    assert recorded["meta"]["hf_split"] == "train"
    assert recorded["rows"] == 3
    imported = datasets.load_from_disk(str(repo / "tiny"))
    assert imported["text"] == ["5-0", "5-1", "5-2"]
    assert imported.features["label"].names == ["neg", "pos"]


def test_import_hf_dataset_without_a_split_keeps_every_split(repo, tmp_path):
    import datasets

    hf_home = tmp_path / "hf"
    fill_datasets_cache(hf_home, "org/tiny")

    result = mreg_offline(hf_home, "import", "hf-dataset://org/tiny")

    assert result.exit_code == 0, result.stderr
    imported = datasets.load_from_disk(str(repo / "org--tiny"))
    assert {name: len(split) for name, split in imported.items()} == {"train": 5, "test": 2}
    assert manifest(repo / "org--tiny.mreg.toml")["rows"] == 7


def test_import_hf_dataset_offline_without_a_cache_adds_nothing(repo, tmp_path):
    result = mreg_offline(tmp_path / "hf", "import", "hf-dataset://org/absent")

    assert result.exit_code != 0
    line = one_error_line(result)
    assert line.startswith("error: hf-dataset://org/absent is not in the `datasets` cache")
    assert not (repo / "org--absent").exists()
    assert list(repo.glob("*.mreg.toml")) == []
