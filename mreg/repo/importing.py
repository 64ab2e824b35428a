"""``mreg import``: bring a file from a URL, or a Hugging Face repo or dataset, then ``add`` it.

* ``http(s)://...``: downloaded into ``.mreg/tmp/`` with retries; a transfer that breaks off is
  resumed with an HTTP Range request (``If-Range`` guards against a file that changed meanwhile).
* ``hf://ORG/NAME[@REV]``: ``huggingface_hub.snapshot_download`` into the Hugging Face cache
  (``HF_HOME``, ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE`` are the library's to read), then
  copied into the work tree. The manifest records the resolved commit.
* ``hf-dataset://NAME[@REV][?config=C&split=S&limit=N]``: ``datasets`` loads it, ``save_to_disk``
  writes it, and the ``hf_dataset`` converter adds it.

The source lands at PATH in one rename, and goes away again if ``add`` refuses it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from mreg import converters
from mreg.errors import IntegrityError, RemoteError, UsageError, one_line
from mreg.hashing import sha256_bytes, sha256_file, sha256_tree
from mreg.progress import bar
from mreg.repo import manifest as manifests
from mreg.storage.http import discard, download

if TYPE_CHECKING:
    from mreg.repo import Repo
    from mreg.repo.add import AddResult

HF_SCHEME = "hf://"
HF_DATASET_SCHEME = "hf-dataset://"
KINDS = ("model", "dataset")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_DATASET_QUERY = ("config", "split", "limit")


def is_hf(uri: str) -> bool:
    """Whether ``uri`` names a Hugging Face repo or dataset rather than an http(s) file."""
    return uri.startswith((HF_SCHEME, HF_DATASET_SCHEME))


# -- http(s) ------------------------------------------------------------------------------


def import_url(
    repo: Repo,
    url: str,
    path: str | Path | None = None,
    sha256: str | None = None,
    name: str | None = None,
    kind: str | None = None,
    meta: dict[str, str] | None = None,
    force: bool = False,
) -> AddResult:
    """Download ``url`` to ``path`` (default: its file name here) and add it.

    With ``sha256``, a download with other bytes is refused and deleted. An interrupted download
    leaves a partial file in ``.mreg/tmp/`` that the same command resumes.
    """
    expected = _check_sha256(sha256)
    target = _file_target(repo, url, path)
    converter = converters.detect(target)
    _check_kind(kind, converter.kind, target)
    if name is not None:
        manifests.check_name(name)
    part = repo.cache.tmp / f"import-{sha256_bytes(url.encode())[:16]}.part"
    download(url, part)
    digest = sha256_file(part)
    try:
        if expected and digest != expected:
            raise IntegrityError(
                f"{url}: the download has sha256 {digest}, --sha256 says {expected}; "
                "nothing was added"
            )
        _check_replaceable(repo, target, digest, url, force)
        return _add_placed(repo, part, target, url, name=name, kind=kind, meta=meta or {})
    finally:
        discard(part)


def _file_target(repo: Repo, url: str, path: str | Path | None) -> Path:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"cannot import '{url}'",
            hint="use an http(s):// URL, hf://ORG/NAME[@REV] or hf-dataset://NAME",
        )
    file_name = PurePosixPath(unquote(parts.path)).name
    if path is None or Path(path).is_dir() or str(path).endswith("/"):
        if file_name in ("", ".", ".."):
            raise UsageError(f"{url} does not end in a file name", hint="pass PATH")
        path = Path(path or ".") / file_name
    target = repo.path_in_work_tree(path)
    if target.is_dir():
        raise UsageError(f"{path} is a folder; an http(s) import is one file")
    return target


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not _SHA256.match(value):
        raise UsageError(f"--sha256 expects 64 hex digits, got '{sha256}'")
    return value


# -- Hugging Face -------------------------------------------------------------------------


def import_hf(
    repo: Repo,
    uri: str,
    path: str | Path | None = None,
    kind: str | None = None,
    allow: list[str] | None = None,
    name: str | None = None,
    meta: dict[str, str] | None = None,
    force: bool = False,
) -> AddResult:
    """Import ``hf://ORG/NAME[@REV]`` (a Hub repo) or ``hf-dataset://NAME[...]``, then add it.

    The manifest's source URL names the resolved commit; ``meta`` gains ``hf_repo``,
    ``hf_revision`` and ``hf_commit``.
    """
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown kind '{kind}'", hint="use model or dataset")
    if name is not None:
        manifests.check_name(name)
    if uri.startswith(HF_DATASET_SCHEME):
        from mreg.converters.hf_dataset import require_datasets

        require_datasets()
        if allow:
            raise UsageError("--allow selects files of hf:// repos, not of hf-dataset://")
        return _import_hf_dataset(repo, uri, path, kind, name, meta or {}, force)
    if importlib.util.find_spec("huggingface_hub") is None:
        raise UsageError(
            "hf:// imports need the `huggingface_hub` package",
            hint="pip install 'mreg[huggingface]'",
        )
    repo_id, revision = _repo_and_revision(uri.removeprefix(HF_SCHEME), uri)
    target = _folder_target(repo, path, repo_id)
    snapshot = _snapshot(repo_id, revision, kind or "model", allow, uri)
    commit = snapshot.name
    with repo.cache.staging() as stage:
        staged = stage / "snapshot"
        _copy_snapshot(snapshot, staged, allow, uri)
        source = f"{HF_SCHEME}{repo_id}@{commit}"
        _check_replaceable(repo, target, sha256_tree(staged), source, force)
        hf_meta = {
            "hf_repo": repo_id,
            "hf_repo_type": kind or "model",
            "hf_revision": revision or "main",
            "hf_commit": commit,
        }
        return _add_placed(
            repo, staged, target, source, name=name, kind=kind, meta={**(meta or {}), **hf_meta}
        )


def _snapshot(
    repo_id: str, revision: str | None, repo_type: str, allow: list[str] | None, uri: str
) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(
            snapshot_download(
                repo_id, repo_type=repo_type, revision=revision, allow_patterns=allow or None
            )
        )
    except HFValidationError as error:
        raise UsageError(f"{uri}: {one_line(error)}") from None
    except LocalEntryNotFoundError:
        offline = constants.HF_HUB_OFFLINE
        raise RemoteError(
            f"{uri} is not in the Hugging Face cache, and "
            + ("HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"),
            hint="unset HF_HUB_OFFLINE" if offline else "check the network and HF_ENDPOINT",
        ) from None
    except RevisionNotFoundError:
        raise RemoteError(f"{uri}: the {repo_type} repo has no revision '{revision}'") from None
    except RepositoryNotFoundError:
        raise RemoteError(
            f"{uri}: no such {repo_type} repo on the Hub, or it is private or gated",
            hint="check the name and --kind; for private repos set HF_TOKEN",
        ) from None
    except OSError as error:
        raise RemoteError(f"cannot download {uri}: {one_line(error)}") from None


def _copy_snapshot(snapshot: Path, staged: Path, allow: list[str] | None, uri: str) -> None:
    """Copy the snapshot's files (the cache's symbolic links followed) into ``staged``."""
    from huggingface_hub.utils import filter_repo_objects

    files = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    chosen = list(filter_repo_objects(files, allow_patterns=allow or None))
    if not chosen:
        raise UsageError(f"{uri} has no files matching {' '.join(allow or [])}")
    total = sum((snapshot / rel).stat().st_size for rel in chosen)
    with bar(f"copy {uri}", total) as advance:
        for rel in chosen:
            destination = staged / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(snapshot / rel, destination)
            advance(destination.stat().st_size)


def _import_hf_dataset(
    repo: Repo,
    uri: str,
    path: str | Path | None,
    kind: str | None,
    name: str | None,
    meta: dict[str, str],
    force: bool,
) -> AddResult:
    if kind not in (None, "dataset"):
        raise UsageError(f"{uri} is a dataset, not a {kind}")
    spec, _, query = uri.removeprefix(HF_DATASET_SCHEME).partition("?")
    dataset_name, revision = _repo_and_revision(spec, uri)
    options = _dataset_options(query, uri)
    target = _folder_target(repo, path, dataset_name)
    with repo.cache.staging() as stage:
        staged = stage / "dataset"
        commit = _save_dataset(dataset_name, revision, options, staged, uri)
        query = "&".join(f"{key}={value}" for key, value in options.items())
        source = f"{HF_DATASET_SCHEME}{dataset_name}@{commit or revision or 'main'}"
        source += f"?{query}" if query else ""
        _check_replaceable(repo, target, sha256_tree(staged), source, force)
        hf_meta = {"hf_repo": dataset_name, "hf_revision": revision or "main"}
        hf_meta |= {"hf_commit": commit} if commit else {}
        hf_meta |= {f"hf_{key}": value for key, value in options.items()}
        return _add_placed(
            repo, staged, target, source, format="hf_dataset", name=name, meta={**meta, **hf_meta}
        )


def _save_dataset(
    name: str, revision: str | None, options: dict[str, str], staged: Path, uri: str
) -> str | None:
    """``save_to_disk`` the dataset into ``staged``; the Hub commit it came from, when known."""
    import datasets

    try:
        builder = datasets.load_dataset_builder(name, options.get("config"), revision=revision)
        builder.download_and_prepare()
        loaded = builder.as_dataset(split=options.get("split"))
    except ConnectionError:
        raise RemoteError(
            f"{uri} is not in the `datasets` cache and the Hub cannot be reached",
            hint="check the network; HF_HUB_OFFLINE / HF_DATASETS_OFFLINE keep it offline",
        ) from None
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as error:
        raise RemoteError(f"cannot load {uri}: {one_line(error)}") from None
    if "limit" in options:
        loaded = _first_rows(loaded, int(options["limit"]))
    loaded.save_to_disk(str(staged))
    # For Hub datasets `datasets` names its cache folder (the builder's hash) by the commit.
    commit = getattr(builder, "hash", None)
    return commit if isinstance(commit, str) and _COMMIT.match(commit) else None


def _first_rows(loaded: Any, limit: int) -> Any:
    """The first ``limit`` rows of a Dataset, or of each split of a DatasetDict."""
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        return datasets.DatasetDict({k: _first_rows(v, limit) for k, v in loaded.items()})
    return loaded.select(range(min(limit, len(loaded))))


def _dataset_options(query: str, uri: str) -> dict[str, str]:
    parsed = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    options = {}
    for key, values in parsed.items():
        if key not in _DATASET_QUERY or len(values) != 1 or not values[0]:
            raise UsageError(
                f"{uri}: bad query '{key}'", hint="use config=C, split=S and limit=N, once each"
            )
        options[key] = values[0]
    if "limit" in options and not (options["limit"].isdigit() and int(options["limit"]) > 0):
        raise UsageError(f"{uri}: limit must be a positive whole number")
    return {key: options[key] for key in _DATASET_QUERY if key in options}


def _repo_and_revision(spec: str, uri: str) -> tuple[str, str | None]:
    repo_id, at, revision = spec.partition("@")
    if not repo_id or (at and not revision) or repo_id.count("/") > 1 or "//" in repo_id:
        raise UsageError(f"cannot read '{uri}'", hint="expected hf://ORG/NAME[@REVISION]")
    return repo_id.strip("/"), revision or None


def _folder_target(repo: Repo, path: str | Path | None, repo_id: str) -> Path:
    target = repo.path_in_work_tree(path if path is not None else repo_id.replace("/", "--"))
    if target.is_file():
        raise UsageError(f"{path or target.name} is a file; a Hugging Face import is a folder")
    return target


# -- shared -------------------------------------------------------------------------------


def _check_kind(kind: str | None, actual: str, target: Path) -> None:
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown kind '{kind}'", hint="use model or dataset")
    if kind is not None and kind != actual:
        raise UsageError(f"{target.name} would be a {actual}, not a {kind}")


def _check_replaceable(repo: Repo, target: Path, digest: str, source: str, force: bool) -> None:
    """Refuse to overwrite a file (or folder) at ``target`` that mreg could not give back."""
    if force or not (target.exists() or target.is_symlink()):
        return
    rel = repo.relpath(target)
    if repo.state.file_sha256(rel) == digest:
        return
    tracked = repo.manifests().get(rel + manifests.SUFFIX)
    if tracked is not None and repo.workspace_in_sync(rel, tracked):
        return  # its bytes are in the cache: `mreg checkout` brings them back
    raise UsageError(
        f"{rel} exists and differs from {source}",
        hint="pass --force to replace it, or choose another PATH",
    )


def _add_placed(
    repo: Repo,
    staged: Path,
    target: Path,
    source: str,
    format: str | None = None,
    name: str | None = None,
    kind: str | None = None,
    meta: dict[str, str] | None = None,
) -> AddResult:
    with _placed(repo, staged, target):
        return repo.add(target, name=name, kind=kind, format=format, meta=meta, source_url=source)


@contextlib.contextmanager
def _placed(repo: Repo, staged: Path, target: Path) -> Iterator[None]:
    """Rename ``staged`` to ``target``; if the block fails, put the old ``target`` back."""
    with repo.cache.staging() as aside:
        old = aside / "old"
        had_old = target.exists() or target.is_symlink()
        if had_old:
            os.rename(target, old)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, target)
            yield
        except BaseException:
            _remove(target)
            if had_old:
                os.rename(old, target)
            raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
