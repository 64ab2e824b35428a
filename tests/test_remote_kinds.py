"""Every remote kind (S3, local, GCS, Azure, SSH, read-only HTTP) works the same way, each
against a real server started on 127.0.0.1 (tests/store_servers.py); a URL scheme mreg does not
support is refused with the list of those it does."""

from __future__ import annotations

import pytest
from conftest import assert_refused, commit_all, make_safetensors, snapshot

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
