"""The demo's inputs, brought into the repository and converted to Lance by mreg itself.

* the model to start from: a URL (``Repo.import_url``, or a copy kept in the download cache),
  an artifact already in the repository, or a Transformers folder (``mreg add``) or Hub id
  (``Repo.import_hf``); none for a freshly initialised ResNet18;
* the data set's training and evaluation splits: scikit-learn's digits rendered as images
  (``mreg add``), or a Hugging Face dataset (``Repo.import_hf`` of ``hf-dataset://``).

An input already tracked from the same source is used as it is: nothing is downloaded again.
Everything lands under ``demo/`` in the work tree, so one commit can hold it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from mreg.demo import digits
from mreg.demo.options import OFFLINE_DATASET, TrainOptions
from mreg.errors import IntegrityError, UsageError
from mreg.repo import Repo
from mreg.repo import manifest as manifests

DEMO_FOLDER = "demo"
DATA_FOLDER = f"{DEMO_FOLDER}/data"
MODELS_FOLDER = f"{DEMO_FOLDER}/pretrained"
# torchvision names its weight files NAME-<first hex digits of their sha256>.pth.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.\w+$")


@dataclass(frozen=True)
class Input:
    """One tracked input: its artifact name, the revision to read (None: the work tree's),
    its path in the work tree, and where it came from."""

    name: str
    path: Path
    source: str
    rev: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.rev}" if self.rev else self.name


# -- the model ----------------------------------------------------------------------------


def prepare_model(repo: Repo, options: TrainOptions) -> Input | None:
    """The model to start from, tracked in ``repo``; None for a fresh ResNet18."""
    source = options.model_source
    if source is None:
        return None
    if options.model_mode == "repo":
        return _artifact_model(repo, source)
    if options.model_mode == "transformers":
        return _transformers_model(repo, source, options)
    return _url_model(repo, source, options)


def _url_model(repo: Repo, url: str, options: TrainOptions) -> Input:
    file_name = PurePosixPath(unquote(urlsplit(url).path)).name
    if urlsplit(url).scheme not in ("http", "https") or not file_name:
        raise UsageError(
            f"--model '{url}' is not an http(s) URL of a file",
            hint="use --model_mode repo for an artifact in this repository",
        )
    name = artifact_name(Path(file_name).stem)
    target = repo.root / MODELS_FOLDER / file_name
    found = repo.lookup(name)
    if found is not None and found[1].source.url == url:
        return Input(name, target, url)
    kept = options.download_cache / "models" / file_name
    if kept.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept, target)
        result = repo.add(target, name=name, kind="model", source_url=url)
    elif options.offline:
        raise UsageError(
            f"{url} is not in the download cache {kept.parent}, and --offline is set",
            hint="run once with the network, or leave out --model for a fresh ResNet18",
        )
    else:
        result = repo.import_url(url, target, name=name, kind="model", force=True)
        _keep(target, kept)
    _check_hash_in_name(file_name, result.manifest.source.sha256)
    return Input(name, target, url)


def _artifact_model(repo: Repo, spec: str) -> Input:
    target = repo.target(spec)
    if target.manifest.kind != "model":
        raise UsageError(f"'{spec}' is a dataset, not a model")
    return Input(target.manifest.name, repo.root / target.artifact_rel, spec, target.rev)


def _transformers_model(repo: Repo, ref: str, options: TrainOptions) -> Input:
    folder = Path(ref).expanduser()
    if not folder.is_dir():
        return _hub_model(repo, ref, options)
    folder = folder.resolve()
    target = folder
    if not folder.is_relative_to(repo.root):
        target = repo.root / MODELS_FOLDER / folder.name
        _replace_folder(folder, target)
    name = artifact_name(target.name)
    repo.add(target, name=name, kind="model", format="transformers")
    return Input(name, target, str(folder))


def _hub_model(repo: Repo, repo_id: str, options: TrainOptions) -> Input:
    if "/" not in repo_id and not repo_id.startswith("."):
        raise UsageError(f"--model '{repo_id}' is neither a folder nor a Hub id ORG/NAME")
    name = artifact_name(repo_id.replace("/", "--"))
    target = repo.root / MODELS_FOLDER / name
    with hugging_face_environment(options):
        repo.import_hf(f"hf://{repo_id}", target, kind="model", name=name, force=True)
    return Input(name, target, f"hf://{repo_id}")


def _keep(path: Path, kept: Path) -> None:
    """Copy a download into the download cache (in one rename, never half-written)."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_name(kept.name + ".part")
    shutil.copyfile(path, partial)
    os.replace(partial, kept)


def _check_hash_in_name(file_name: str, sha256: str) -> None:
    match = _HASH_IN_NAME.search(file_name)
    if match and not sha256.startswith(match.group(1)):
        raise IntegrityError(
            f"{file_name} has sha256 {sha256[:16]}..., not the {match.group(1)} its name promises",
            hint=f"delete {MODELS_FOLDER}/{file_name} and the download cache's copy, then retry",
        )


# -- the data set -------------------------------------------------------------------------


def prepare_datasets(repo: Repo, options: TrainOptions) -> tuple[Input, Input]:
    """The training and the evaluation split, each one dataset artifact in ``repo``."""
    if options.dataset_name == OFFLINE_DATASET:
        return _digits(repo, options.split, options), _digits(repo, options.eval_split, options)
    return _hub_split(repo, options.split, options), _hub_split(repo, options.eval_split, options)


def _digits(repo: Repo, split: str, options: TrainOptions) -> Input:
    arrow = options.dataset_mode == "arrow"
    name = f"{OFFLINE_DATASET}-{split}" + ("-arrow" if arrow else "")
    target = repo.root / DATA_FOLDER / name
    source = f"sklearn.datasets.load_digits, {options.image_size}px, split {split}"
    if _tracked_in_sync(repo, name, lambda manifest: manifest.meta.get("source") == source):
        return Input(name, target, source)
    with repo.cache.staging() as stage:
        rendered = stage / name
        if arrow:
            digits.render_arrow(rendered, split, options.image_size)
        else:
            digits.render(rendered, split, options.image_size)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(rendered, target)
    repo.add(target, name=name, kind="dataset", meta={"source": source})
    return Input(name, target, source)


def _hub_split(repo: Repo, split: str, options: TrainOptions) -> Input:
    dataset = options.dataset_name
    name = artifact_name(f"{dataset.replace('/', '--')}-{split}")
    target = repo.root / DATA_FOLDER / name
    query = f"split={split}" + (f"&limit={options.limit}" if options.limit else "")
    prefix = f"hf-dataset://{dataset}@"

    def same_source(manifest: manifests.Manifest) -> bool:
        url = manifest.source.url
        return url.startswith(prefix) and url.endswith(f"?{query}")

    if _tracked_in_sync(repo, name, same_source):
        return Input(name, target, f"hf-dataset://{dataset}?{query}")
    with hugging_face_environment(options):
        result = repo.import_hf(f"hf-dataset://{dataset}?{query}", target, name=name)
    return Input(name, target, result.manifest.source.url)


def _tracked_in_sync(
    repo: Repo, name: str, same_source: Callable[[manifests.Manifest], bool]
) -> bool:
    """Whether ``name`` is tracked from the same source and the work tree holds it as tracked."""
    found = repo.lookup(name)
    if found is None or not same_source(found[1]):
        return False
    return repo.workspace_in_sync(found[0].removesuffix(manifests.SUFFIX), found[1])


# -- shared -------------------------------------------------------------------------------


def artifact_name(text: str) -> str:
    """``text`` made a valid artifact name (letters, digits, ``.``, ``_``, ``-``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"
    return manifests.check_name(name)


def _replace_folder(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)


@contextlib.contextmanager
def hugging_face_environment(options: TrainOptions) -> Iterator[None]:
    """Hugging Face downloads kept under ``--cache`` (when given), and never attempted offline.

    The libraries read these variables when first imported, which the demo does only inside
    this block; variables the user set are left alone.
    """
    wanted: dict[str, str] = {}
    if options.cache is not None:
        wanted["HF_HOME"] = str(options.download_cache / "huggingface")
    if options.offline:
        wanted |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    added = [key for key in wanted if key not in os.environ]
    os.environ.update({key: wanted[key] for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
