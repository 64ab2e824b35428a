"""``mreg import hf://ORG/NAME[@REV]`` and ``hf-dataset://NAME[@REV][?config=C&split=S&limit=N]``.

* ``hf://``: ``huggingface_hub.snapshot_download`` into the Hugging Face cache (``HF_HOME``,
  ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE`` are the library's to read), then copied into
  the work tree. The manifest records the resolved commit.
* ``hf-dataset://``: ``datasets`` loads it, ``save_to_disk`` writes it, and the ``hf_dataset``
  converter adds it.

The source lands at PATH in one rename, and goes away again if ``add`` refuses it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from mreg.errors import RemoteError, UsageError, one_line
from mreg.hashing import sha256_tree
from mreg.progress import bar
from mreg.repo.import_options import HF_DATASET_SCHEME, HF_SCHEME
from mreg.repo.placement import add_placed, check_replaceable

if TYPE_CHECKING:
    from mreg.repo.add_options import AddResult
    from mreg.repo.import_options import ImportOptions
    from mreg.repo.work_tree import WorkTree

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_DATASET_QUERY = ("config", "split", "limit")


def import_hf(
    repo: WorkTree, uri: str, options: ImportOptions, allow: list[str] | None = None
) -> AddResult:
    """Import ``hf://ORG/NAME[@REV]`` (a Hub repo) or ``hf-dataset://NAME[...]``, then add it.

    The manifest's source URL names the resolved commit; ``meta`` gains ``hf_repo``,
    ``hf_revision`` and ``hf_commit``. ``allow``: the patterns of the repo's files to download.
    """
    if uri.startswith(HF_DATASET_SCHEME):
        from mreg.converters.hf_dataset import require_datasets

        require_datasets()
        if allow:
            raise UsageError("--allow selects files of hf:// repos, not of hf-dataset://")
        return _import_hf_dataset(repo, uri, options)
    if importlib.util.find_spec("huggingface_hub") is None:
        raise UsageError(
            "hf:// imports need the `huggingface_hub` package",
            hint="pip install 'mreg[huggingface]'",
        )
    repo_id, revision = _repo_and_revision(uri.removeprefix(HF_SCHEME), uri)
    target = _folder_target(repo, options.path, repo_id)
    repo_type = options.kind or "model"
    snapshot = _snapshot(repo_id, revision, repo_type, allow, uri)
    commit = snapshot.name
    with repo.cache.staging() as stage:
        staged = stage / "snapshot"
        _copy_snapshot(snapshot, staged, allow, uri)
        source = f"{HF_SCHEME}{repo_id}@{commit}"
        check_replaceable(repo, target, sha256_tree(staged), source, options.force)
        hf_meta = {
            "hf_repo": repo_id,
            "hf_repo_type": repo_type,
            "hf_revision": revision or "main",
            "hf_commit": commit,
        }
        return add_placed(repo, staged, target, options.adding(source, meta=hf_meta))


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


def _import_hf_dataset(repo: WorkTree, uri: str, options: ImportOptions) -> AddResult:
    if options.kind not in (None, "dataset"):
        raise UsageError(f"{uri} is a dataset, not a {options.kind}")
    spec, _, query = uri.removeprefix(HF_DATASET_SCHEME).partition("?")
    dataset_name, revision = _repo_and_revision(spec, uri)
    chosen = _dataset_options(query, uri)
    target = _folder_target(repo, options.path, dataset_name)
    with repo.cache.staging() as stage:
        staged = stage / "dataset"
        commit = _save_dataset(dataset_name, revision, chosen, staged, uri)
        query = "&".join(f"{key}={value}" for key, value in chosen.items())
        source = f"{HF_DATASET_SCHEME}{dataset_name}@{commit or revision or 'main'}"
        source += f"?{query}" if query else ""
        check_replaceable(repo, target, sha256_tree(staged), source, options.force)
        hf_meta = {"hf_repo": dataset_name, "hf_revision": revision or "main"}
        hf_meta |= {"hf_commit": commit} if commit else {}
        hf_meta |= {f"hf_{key}": value for key, value in chosen.items()}
        adding = options.adding(source, format="hf_dataset", meta=hf_meta)
        return add_placed(repo, staged, target, adding)


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


def _folder_target(repo: WorkTree, path: str | Path | None, repo_id: str) -> Path:
    target = repo.path_in_work_tree(path if path is not None else repo_id.replace("/", "--"))
    if target.is_file():
        raise UsageError(f"{path or target.name} is a file; a Hugging Face import is a folder")
    return target
