"""The demo's whole lifecycle in one call: inputs in, Lance, pushed, trained, registered.

    report = mreg.demo.train(TrainOptions(offline=True, steps=30))

1. the model to start from and the data set's splits are downloaded (or taken from the download
   cache, or from the repository) and converted to Lance by ``mreg import`` / ``mreg add``;
2. they are committed under ``demo/``, and each split gets a version tag;
3. they are pushed to the remote (S3 from the options, or a local directory);
4. ResNet18 (or the Transformers model) trains on rows read from the Lance data (or, with
   ``dataset_mode="arrow"``, from the Hugging Face arrow folder), and is evaluated on the
   held-out split before and after;
5. the trained model is registered (``ModelRegistry.register_model``) with its metrics and the
   dataset version it was trained on, and pushed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mreg.demo import data as rows
from mreg.demo import sources
from mreg.demo.destination import choose_remote
from mreg.demo.lineage import commit_inputs, version_dataset
from mreg.demo.network import online_or_offline
from mreg.demo.options import TrainOptions
from mreg.demo.sources import Input
from mreg.demo.training import PREPROCESSING, Evaluation, Fit, evaluate, fit
from mreg.registry import ModelEntry, ModelFormat, ModelRegistry, ModelType
from mreg.repo import Repo
from mreg.storage.transfer import TransferResult

Log = Callable[[str], None]
FRESH = "a freshly initialised ResNet18"
REPRODUCING = "MREG_REPRODUCE"  # set by `mreg reproduce` for the command it runs


@dataclass(frozen=True)
class TrainReport:
    """Where everything went, and how the training went."""

    repo: Path
    cache: Path
    download_cache: Path
    remote: str
    offline: bool
    model_source: str
    train_dataset: str
    eval_dataset: str
    manifests: tuple[str, ...]
    registered: str
    registered_manifest: str
    pushed_files: int
    pushed_bytes: int
    fit: Fit
    before: Evaluation
    after: Evaluation


@dataclass(frozen=True)
class _Inputs:
    """The tracked inputs, and the version tags of the two splits."""

    start: Input | None
    train: Input
    held_out: Input
    train_tag: str
    held_out_tag: str

    @property
    def specs(self) -> list[str]:
        return [i.spec for i in (self.start, self.train, self.held_out) if i is not None]


@dataclass(frozen=True)
class _Trained:
    model: Any
    classes: tuple[str, ...]
    fit: Fit
    before: Evaluation
    after: Evaluation


def train(options: TrainOptions, path: str | Path = ".", log: Log | None = None) -> TrainReport:
    """Run the demo in the git work tree at ``path`` (``mreg init`` is done if needed);
    ``log`` receives a line as each phase starts.

    UsageError for options that make no sense, RemoteError when a download or the remote
    fails; whatever was converted before a failure stays in the cache, so a rerun goes on.
    """
    say = log or (lambda line: None)
    options = options.checked()
    repo = Repo.init(path)
    options = online_or_offline(options, say)
    inputs = _bring_inputs(repo, options, say)
    remote = choose_remote(repo, options)
    say(f"push to {remote.name} ({remote.url})")
    pushed = repo.push(inputs.specs, remote=remote.name)
    trained = _train(repo, options, inputs, say)
    say(f"register {options.name or _default_name(options)}")
    entry = _register(repo, options, inputs, trained)
    if os.environ.get(REPRODUCING):  # `mreg reproduce` compares the model; it keeps nothing
        pushed_model = TransferResult(0, 0)
    else:
        pushed_model = repo.push([entry.tag], remote=remote.name)
    return TrainReport(
        repo=repo.root,
        cache=repo.cache.root,
        download_cache=options.download_cache,
        remote=f"{remote.name} ({remote.url})",
        offline=options.offline,
        model_source=inputs.start.source if inputs.start else FRESH,
        train_dataset=inputs.train_tag,
        eval_dataset=inputs.held_out_tag,
        manifests=tuple(_manifest_of(repo, spec) for spec in inputs.specs),
        registered=entry.tag,
        registered_manifest=entry.manifest_path,
        pushed_files=pushed.files + pushed_model.files,
        pushed_bytes=pushed.bytes + pushed_model.bytes,
        fit=trained.fit,
        before=trained.before,
        after=trained.after,
    )


def _bring_inputs(repo: Repo, options: TrainOptions, say: Log) -> _Inputs:
    """The model and both splits tracked, committed, and the splits tagged."""
    say(f"model: {options.model_source or FRESH}")
    start = sources.prepare_model(repo, options)
    say(f"data set: {options.dataset_name} ({options.split} and {options.eval_split})")
    train_input, held_out = sources.prepare_datasets(repo, options)
    commit_inputs(repo, sources.DEMO_FOLDER)
    return _Inputs(
        start,
        train_input,
        held_out,
        version_dataset(repo, train_input.name),
        version_dataset(repo, held_out.name),
    )


def _train(repo: Repo, options: TrainOptions, inputs: _Inputs, say: Log) -> _Trained:
    train_split = _split(repo, options, inputs.train, inputs.train_tag)
    held_out = _split(repo, options, inputs.held_out, inputs.held_out_tag)
    rows.check_same_classes(train_split, held_out, (inputs.train_tag, inputs.held_out_tag))
    model = _starting_model(repo, options, inputs.start, len(train_split.classes))
    say(f"train on {len(train_split):,} rows, evaluate on {len(held_out):,}")
    before = evaluate(model, held_out)
    done = fit(
        model, train_split, options.batch, options.lr, options.epochs, options.steps, options.seed
    )
    return _Trained(model, train_split.classes, done, before, evaluate(model, held_out))


def _split(repo: Repo, options: TrainOptions, source: Input, tag: str) -> rows.Split:
    """One split as a map-style dataset of at most ``--limit`` rows."""
    if options.dataset_mode == "arrow":
        split = rows.arrow_split(source.path, options.image_size)
    else:
        version = tag.split("@", 1)[1]
        split = rows.lance_split(repo, source.name, version, options.image_size)
    return rows.subset(split, options.limit, options.seed)


def _starting_model(
    repo: Repo, options: TrainOptions, start: Input | None, num_classes: int
) -> Any:
    """The model to train: fresh, or the starting weights with a head for ``num_classes``."""
    import torch

    torch.manual_seed(options.seed)
    if options.model_mode == "transformers" and start is not None:
        from mreg.demo.hf_classifier import from_folder

        return from_folder(start.path, num_classes)
    from mreg.demo.resnet import ResNet18, from_state_dict

    if start is None:
        return ResNet18(num_classes=num_classes)
    # The weights come from the Lance data in the cache, each tensor checked by its sha256.
    state = repo.load_state_dict(start.name, start.rev)
    return from_state_dict(state, num_classes, start.spec)


def _register(repo: Repo, options: TrainOptions, inputs: _Inputs, trained: _Trained) -> ModelEntry:
    """Register the trained model; the registry adds the training dataset's version tag."""
    model, done, size = trained.model, trained.fit, options.image_size
    return ModelRegistry(repo.root).register_model(
        options.name or _default_name(options),
        model.cpu(),
        ModelFormat.PYTORCH,
        ModelType.CLASSIFICATION,
        init_kwargs=_init_kwargs(model),
        performance_metrics={
            "accuracy": trained.after.accuracy,
            "loss": trained.after.loss,
            "accuracy_before": trained.before.accuracy,
        },
        training_dataset=inputs.train.name,
        data_versions=[inputs.train_tag, inputs.held_out_tag],
        seed=options.seed,
        command=_command(options),
        training_epochs=done.epochs,
        training_framework="pytorch",
        description=f"mreg demo: {type(model).__name__} trained on {inputs.train.name}",
        tags=["demo", "image-classification"],
        input_shape=[1, 3, size, size],
        output_shape=[1, len(trained.classes)],
        extra={
            "eval_dataset": inputs.held_out_tag,
            "eval_rows": trained.after.rows,
            "steps": done.steps,
            "batch": options.batch,
            "lr": options.lr,
            "samples_per_second": round(done.samples_per_second, 1),
            "dataset_mode": options.dataset_mode,
            "base_model": inputs.start.source if inputs.start else "fresh",
            "classes": list(trained.classes),
            "preprocessing": PREPROCESSING,
        },
    )


def _command(options: TrainOptions) -> list[str] | None:
    """The command line that trains this model again (what ``mreg reproduce`` runs): known for
    offline runs from a fresh ResNet18, which need nothing but the repository and its remote."""
    if not options.offline or options.bucket or options.model or options.seed != 0:
        return None
    argv = ["mreg", "demo", "train", "--offline", "--dataset", options.dataset_name]
    argv += ["--dataset-mode", options.dataset_mode, "--split", options.split]
    argv += ["--eval-split", options.eval_split, "--batch", str(options.batch)]
    argv += ["--lr", repr(options.lr), "--name", options.name or _default_name(options)]
    argv += ["--steps", str(options.steps)] if options.steps else ["--epochs", str(options.epochs)]
    return argv + (["--limit", str(options.limit)] if options.limit else [])


def _init_kwargs(model: Any) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model``'s architecture (``load_model``)."""
    from mreg.demo.resnet import ResNet18

    if isinstance(model, ResNet18):
        return {"num_classes": model.num_classes}
    return {"config": model.config}  # a TransformersClassifier


def _default_name(options: TrainOptions) -> str:
    base = options.dataset_name.replace("/", "--")
    kind = "transformers" if options.model_mode == "transformers" else "resnet18"
    return sources.artifact_name(f"{base}-{kind}")


def _manifest_of(repo: Repo, spec: str) -> str:
    found = repo.lookup(spec.split("@", 1)[0])
    return found[0] if found else spec
