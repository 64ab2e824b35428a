"""Every remote kind (S3, local, GCS, Azure, SSH, read-only HTTP) works the same way, each
against a real server started on 127.0.0.1 (tests/store_servers.py); a URL scheme mreg does not
support is refused with the list of those it does."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import itertools
import os
import shutil
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import store_servers
from helpers import assert_refused, commit_all, git, make_safetensors, make_table, snapshot

UNSUPPORTED = ["ftp://files.example.com/team", "hdfs://namenode/team", "foo://bkt/team"]


@pytest.mark.parametrize("url", UNSUPPORTED)
def test_remote_add_refuses_an_unsupported_scheme_and_lists_the_supported_ones(repo, run, url):
    before = snapshot(repo)
    line = assert_refused(run("remote", "add", "team", url), url.split(":")[0] + "://", "s3://")
    assert "not support" in line
    assert snapshot(repo) == before
    assert not any(repo.glob("*:*"))  # no local folder named after the URL


def test_remote_modify_refuses_an_unsupported_scheme(repo, run, remote_dir):
    before = snapshot(repo)
    assert_refused(run("remote", "modify", "origin", "--url", "foo://bkt/team"), "foo://")
    assert snapshot(repo) == before


def test_a_committed_config_naming_an_unsupported_scheme_is_refused_before_any_transfer(
    repo, run, tmp_path
):
    config = repo / ".mreg" / "config.toml"
    config.write_text('[core]\nremote = "team"\n\n[remote.team]\nurl = "foo://bkt/team"\n')
    make_safetensors(repo / "model.safetensors")
    assert run("add", "model.safetensors").exit_code == 0
    commit_all(repo, "a model and a remote from someone else")
    before = snapshot(repo)
    for command in (["push"], ["status", "--remote", "team"], ["gc", "--remote", "team"]):
        assert_refused(run(*command), "remote 'team'", "foo://", "s3://")
    assert snapshot(repo) == before
    assert not (repo / "foo:").exists()


# -- every kind, against a real server --------------------------------------------------------


@dataclass
class Kind:
    """A remote of one kind in a fresh bucket, container or folder on its server."""

    url: str
    add_args: list[str]
    corrupt: Callable[[str], None]  # overwrite a stored file (relative path) with other bytes
    stored: Callable[[], set[str]]  # relative paths of the stored files


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One server of each kind for the module; torn down with it."""
    folder = tmp_path_factory.mktemp("servers")
    with contextlib.ExitStack() as stack:
        found = {
            "gcs": stack.enter_context(store_servers.gcs_server(folder)),
            "ssh": stack.enter_context(store_servers.ssh_server(folder)),
        }
        if shutil.which("node") and store_servers.AZURITE.exists():
            found["azure"] = stack.enter_context(store_servers.azure_server(folder))
        yield found


_names = itertools.count()


def _gcs_kind(server, monkeypatch) -> Kind:
    from gcsfs.core import GCSFileSystem

    bucket = f"bkt-{next(_names)}"
    server.create_bucket(bucket)
    fs = GCSFileSystem(token="anon", endpoint_url=server.endpoint, skip_instance_cache=True)
    root = f"{bucket}/team/models"
    return _fsspec_kind(fs, root, f"gs://{root}", ["--endpoint-url", server.endpoint])


def _azure_kind(server, monkeypatch) -> Kind:
    from adlfs import AzureBlobFileSystem

    container = f"cont-{next(_names)}"
    server.create_container(container)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string())
    fs = AzureBlobFileSystem(connection_string=server.connection_string(), skip_instance_cache=True)
    root = f"{container}/team/models"
    return _fsspec_kind(fs, root, f"az://{root}", [])


def _fsspec_kind(fs, root: str, url: str, add_args: list[str]) -> Kind:
    def corrupt(relpath: str) -> None:
        data = bytearray(fs.cat_file(f"{root}/{relpath}"))
        data[len(data) // 2] ^= 0xFF
        fs.pipe_file(f"{root}/{relpath}", bytes(data))

    def stored() -> set[str]:
        fs.invalidate_cache()
        found = fs.find(f"{root}/data")
        return {path.split(root + "/", 1)[1] for path in found}

    return Kind(url, add_args, corrupt, stored)


def _folder_kind(folder: Path, url: str) -> Kind:
    def corrupt(relpath: str) -> None:
        path = folder / relpath
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    def stored() -> set[str]:
        data = folder / "data"
        return {p.relative_to(folder).as_posix() for p in data.rglob("*") if p.is_file()}

    return Kind(url, [], corrupt, stored)


def _ssh_kind(server, monkeypatch) -> Kind:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    server.trust(Path(os.environ["HOME"]))
    name = f"team-{next(_names)}"
    user = getpass.getuser()
    url = f"ssh://{user}@127.0.0.1:{server.port}/{name}/models"
    return _folder_kind(server.root / name / "models", url)


KINDS = {"gcs": _gcs_kind, "azure": _azure_kind, "ssh": _ssh_kind}


@pytest.fixture(params=sorted(KINDS))
def kind(request, servers, repo, monkeypatch) -> Kind:
    if request.param not in servers:
        pytest.skip("Azurite needs node, which is not installed")
    return KINDS[request.param](servers[request.param], monkeypatch)


def _model_and_table(repo: Path, run) -> dict[str, str]:
    """A 16-layer model and a 2,000-row table added and committed; their sha256 by name."""
    make_safetensors(repo / "model.safetensors", layers=16, width=64)
    make_table(repo / "rows.parquet", rows=2000)
    for name in ("model.safetensors", "rows.parquet"):
        assert run("add", name).exit_code == 0
    return {name: _sha256(repo / name) for name in ("model.safetensors", "rows.parquet")}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _referenced(root: Path, name: str) -> set[str]:
    manifest = tomllib.loads((root / f"{name}.mreg.toml").read_text())
    return {entry["path"] for entry in manifest["lance"]["files"]}


def test_push_clone_pull_verify_corrupt_and_gc_work_on_every_remote_kind(
    kind, repo, run, tmp_path, monkeypatch
):
    digests = _model_and_table(repo, run)
    assert run("remote", "add", "store", kind.url, "--default", *kind.add_args).exit_code == 0
    commit_all(repo, "a model, a table and a remote")
    pushed = run("push")
    assert pushed.exit_code == 0, pushed.stderr
    referenced = _referenced(repo, "model.safetensors") | _referenced(repo, "rows.parquet")
    assert kind.stored() == referenced  # no temporary upload left behind
    again = run("push")
    assert again.exit_code == 0 and "pushed 0 file(s)" in again.stdout, again

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    pulled = run("pull")
    assert pulled.exit_code == 0, pulled.stderr
    assert {name: _sha256(clone / name) for name in digests} == digests
    assert run("verify", "--remote", "store").exit_code == 0

    victim = sorted(_referenced(clone, "model.safetensors"))[0]
    kind.corrupt(victim)
    failed = run("verify", "--remote", "store")
    assert failed.exit_code != 0 and victim in failed.stdout + failed.stderr

    make_table(clone / "scratch.parquet", rows=500, start=10_000)
    assert run("add", "scratch.parquet").exit_code == 0
    assert run("push").exit_code == 0
    garbage = _referenced(clone, "scratch.parquet")
    assert garbage <= kind.stored()
    (clone / "scratch.parquet.mreg.toml").unlink()  # never committed: nothing references it
    swept = run("gc", "--remote", "store", "--force", "--older-than", "0s")
    assert swept.exit_code == 0, swept.stderr
    assert kind.stored() == referenced


def test_an_http_remote_serves_pull_and_verify_and_refuses_push_in_one_line(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    digests = _model_and_table(repo, run)
    commit_all(repo, "a model and a table")
    assert run("push").exit_code == 0
    with store_servers.http_server(remote_dir, tmp_path) as url:
        clone = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(repo), str(clone))
        monkeypatch.chdir(clone)
        assert run("remote", "add", "web", url + "/", "--default").exit_code == 0
        pulled = run("pull")
        assert pulled.exit_code == 0, pulled.stderr
        assert {name: _sha256(clone / name) for name in digests} == digests
        checked = run("verify", "--remote", "web")
        assert checked.exit_code == 0, checked.stderr

        make_table(clone / "more.parquet", rows=300, start=5000)
        assert run("add", "more.parquet").exit_code == 0
        before = snapshot(remote_dir)
        assert_refused(run("push"), "remote 'web'", "read-only")
        assert snapshot(remote_dir) == before


# -- bad input ---------------------------------------------------------------------------------


def _push_refused(repo: Path, run, url: str, *words: str, add_args: tuple[str, ...] = ()) -> None:
    _model_and_table(repo, run)
    assert run("remote", "add", "store", url, "--default", *add_args).exit_code == 0
    assert_refused(run("push"), "remote 'store'", *words)


def test_wrong_azure_credentials_are_refused_in_one_line_and_nothing_is_stored(
    repo, run, servers, monkeypatch
):
    if "azure" not in servers:
        pytest.skip("Azurite needs node, which is not installed")
    kind = _azure_kind(servers["azure"], monkeypatch)
    wrong = servers["azure"].connection_string(key=store_servers.AZURE_KEY.replace("E", "F"))
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    _push_refused(repo, run, kind.url, "credentials")
    assert kind.stored() == set()


def test_an_unknown_azure_container_is_refused(repo, run, servers, monkeypatch):
    if "azure" not in servers:
        pytest.skip("Azurite needs node, which is not installed")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", servers["azure"].connection_string())
    _push_refused(repo, run, "az://no-such-container/team", "'no-such-container' does not exist")


def test_an_unknown_gcs_bucket_is_refused(repo, run, servers):
    endpoint = ("--endpoint-url", servers["gcs"].endpoint)
    _push_refused(repo, run, "gs://no-such-bucket/team", "does not exist", add_args=endpoint)


def test_an_ssh_server_whose_host_key_does_not_match_known_hosts_is_refused(
    repo, run, servers, monkeypatch, tmp_path
):
    kind = _ssh_kind(servers["ssh"], monkeypatch)
    other = store_servers.new_key(tmp_path / "impostor")
    servers["ssh"].trust(Path(os.environ["HOME"]), public_key=other)
    _push_refused(repo, run, kind.url, "host key does not match")
    assert kind.stored() == set()


def test_an_ssh_key_the_server_does_not_accept_is_refused(
    repo, run, servers, monkeypatch, tmp_path
):
    kind = _ssh_kind(servers["ssh"], monkeypatch)
    store_servers.new_key(Path(os.environ["HOME"]) / ".ssh" / "id_ed25519")
    _push_refused(repo, run, kind.url, "rejected the credentials")
    assert kind.stored() == set()


def test_a_missing_extra_names_the_pip_command(repo, run, monkeypatch):
    monkeypatch.setitem(sys.modules, "sshfs", None)  # import sshfs now fails, as uninstalled
    _push_refused(repo, run, "ssh://me@127.0.0.1/srv/models", 'pip install "mreg[ssh]"')


def test_azure_secrets_go_to_the_local_config_only_and_are_never_printed(repo, run):
    secret = "AccountKey=s3cr3tKEY"
    added = run(
        "remote", "add", "az", "az://team/models", "--account-name", "acct",
        "--account-key", "s3cr3tKEY", "--connection-string", secret,
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert "s3cr3t" not in (repo / ".mreg" / "config.toml").read_text()
    assert "s3cr3t" in (repo / ".mreg" / "config.local.toml").read_text()
    for command in (["remote", "list"], ["remote", "list", "--json"], ["config"]):
        shown = run(*command)
        assert "s3cr3t" not in shown.stdout + shown.stderr


def test_ssh_users_and_abfs_accounts_in_urls_are_not_taken_for_credentials(repo, run):
    for url in ("ssh://me@host.example/srv/models", "abfs://team@acct.dfs.core.windows.net/m"):
        assert run("remote", "add", url.split(":")[0], url).exit_code == 0
    assert_refused(run("remote", "add", "bad", "ssh://me:pw@host/x"), "credentials")


# -- reading in place through Lance's own object store -----------------------------------------


@pytest.mark.parametrize("name", ["gcs", "azure"])
def test_a_fresh_clone_reads_a_table_in_place_from_gcs_and_azure(
    name, servers, repo, run, tmp_path, monkeypatch
):
    import mreg

    if name not in servers:
        pytest.skip("Azurite needs node, which is not installed")
    kind = KINDS[name](servers[name], monkeypatch)
    make_table(repo / "rows.parquet", rows=2000)
    assert run("add", "rows.parquet").exit_code == 0
    assert run("remote", "add", "store", kind.url, "--default", *kind.add_args).exit_code == 0
    commit_all(repo, "a table and its remote")
    assert run("push").exit_code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))

    expected = mreg.open("rows.parquet").to_table()
    monkeypatch.chdir(clone)
    in_place = mreg.open("rows.parquet", remote="store").to_table()
    assert in_place.equals(expected)
    assert in_place.num_rows == 2000
    cached = [p for p in (clone / ".mreg" / "cache").rglob("*.lance") if p.parent.name == "data"]
    assert cached == []  # read in place: no data file came down


def test_reading_in_place_from_ssh_says_to_fetch_instead(repo, run, servers, monkeypatch):
    import mreg
    from mreg.errors import RemoteError

    kind = _ssh_kind(servers["ssh"], monkeypatch)
    make_table(repo / "rows.parquet", rows=100)
    assert run("add", "rows.parquet").exit_code == 0
    assert run("remote", "add", "store", kind.url).exit_code == 0
    assert run("push", "-r", "store").exit_code == 0
    with pytest.raises(RemoteError, match="cannot be read in place"):
        mreg.open("rows.parquet", remote="store")


def test_a_push_rerun_after_an_interrupted_sftp_upload_sends_only_what_is_missing(
    repo, run, servers, monkeypatch
):
    kind = _ssh_kind(servers["ssh"], monkeypatch)
    _model_and_table(repo, run)
    assert run("remote", "add", "store", kind.url, "--default").exit_code == 0
    assert run("push").exit_code == 0
    stored = kind.stored()
    root = servers["ssh"].root / kind.url.split("/", 3)[3]
    lost = sorted(stored)[0]
    (root / lost).unlink()  # as if the push had stopped before this file
    partial = (root / lost).with_name(f".{Path(lost).name}.0123.part")
    partial.write_bytes(b"half an upload")  # what an interrupted SFTP upload leaves
    again = run("push")  # the partial file is not taken for the object
    assert again.exit_code == 0 and "pushed 1 file(s)" in again.stdout, again
    assert kind.stored() == stored | {partial.relative_to(root).as_posix()}
    assert run("verify", "--remote", "store").exit_code == 0
