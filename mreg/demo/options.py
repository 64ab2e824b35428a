"""What ``mreg demo train`` (and ``examples/train_resnet.py``) can be asked to do, checked."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from mreg.errors import UsageError

DEFAULT_MODEL_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
DEFAULT_DATASET = "cifar10"
# A real data set that ships inside scikit-learn: the dataset of every offline run.
OFFLINE_DATASET = "digits"
MODEL_MODES = ("url", "repo", "transformers")
DATASET_MODES = ("repo", "arrow")
DEFAULT_PREFIX = "mreg-demo"
# The seed's defaults: 1,000 rows, batches of 32, and MinIO's own keys for an --s3-endpoint.
DEFAULT_LIMIT = 1000
DEFAULT_BATCH = 32
MINIO_KEYS = ("minioadmin", "minioadmin123")


@dataclass(frozen=True)
class TrainOptions:
    """One demo run. ``None`` means "the default", resolved by ``resolved``.

    ``model`` is a URL (``model_mode="url"``), an mreg artifact ``NAME[@REV]`` (``"repo"``), or a
    Transformers image-classification folder or Hub id (``"transformers"``). ``dataset`` is
    ``digits`` (scikit-learn's, rendered as PNG images) or a Hugging Face dataset name.
    ``limit`` caps the rows used of each split (the seed's 1,000 by default); ``steps``, when
    given, is the number of optimizer steps of each of the ``epochs`` (the seed's meaning: the
    data repeat as needed), otherwise each epoch is one full pass.
    """

    model: str | None = None
    model_mode: str = "url"
    dataset: str | None = None
    dataset_mode: str = "repo"
    split: str = "train"
    eval_split: str = "test"
    limit: int | None = DEFAULT_LIMIT
    batch: int = DEFAULT_BATCH
    epochs: int = 1
    steps: int | None = None
    lr: float = 1e-3
    name: str | None = None
    s3_endpoint: str | None = None
    aws_access_key: str | None = None
    aws_secret_key: str | None = None
    aws_region: str | None = None
    bucket: str | None = None
    prefix: str = DEFAULT_PREFIX
    cache: Path | None = None
    offline: bool = False
    image_size: int = 32
    seed: int = 0

    def checked(self) -> TrainOptions:
        """These options, or UsageError naming the first one that makes no sense."""
        if self.model_mode not in MODEL_MODES:
            raise UsageError(
                f"unknown --model_mode '{self.model_mode}'", hint=f"use {'|'.join(MODEL_MODES)}"
            )
        if self.dataset_mode not in DATASET_MODES:
            raise UsageError(
                f"unknown --dataset_mode '{self.dataset_mode}'",
                hint=f"use {'|'.join(DATASET_MODES)}",
            )
        for flag, value in (
            ("--limit", self.limit),
            ("--batch", self.batch),
            ("--epochs", self.epochs),
            ("--steps", self.steps),
            ("image_size", self.image_size),
        ):
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be at least 1, not {value}")
        if not self.lr > 0:
            raise UsageError(f"--lr must be positive, not {self.lr}")
        if self.model_mode != "url" and not self.model:
            raise UsageError(f"--model_mode {self.model_mode} needs --model")
        if self.split == self.eval_split:
            raise UsageError(
                f"--split and --eval-split are both '{self.split}'",
                hint="evaluate on a held-out split",
            )
        self._check_s3()
        return self

    def _check_s3(self) -> None:
        if bool(self.aws_access_key) != bool(self.aws_secret_key):
            raise UsageError("--aws-access-key and --aws-secret-key go together")
        if (self.s3_endpoint or self.aws_access_key or self.aws_region) and not self.bucket:
            raise UsageError("the S3 options need --bucket", hint="pass --bucket BUCKET")
        if self.bucket and ("/" in self.bucket or not self.bucket.strip()):
            raise UsageError(
                f"--bucket '{self.bucket}' is not a bucket name",
                hint="put the path inside the bucket in --prefix",
            )

    @property
    def access_key(self) -> str | None:
        """``--aws-access-key``; with an ``--s3-endpoint`` (MinIO) and no keys, MinIO's default
        ``minioadmin``, as the seed had it. Without an endpoint (AWS) the usual AWS chain."""
        return self.aws_access_key or (MINIO_KEYS[0] if self.s3_endpoint else None)

    @property
    def secret_key(self) -> str | None:
        """``--aws-secret-key``, or MinIO's default ``minioadmin123`` (see ``access_key``)."""
        return self.aws_secret_key or (MINIO_KEYS[1] if self.s3_endpoint else None)

    @property
    def model_source(self) -> str | None:
        """The model to start from; ``None`` for a freshly initialised ResNet18."""
        if self.model:
            return self.model
        return None if self.offline else DEFAULT_MODEL_URL

    @property
    def dataset_name(self) -> str:
        return self.dataset or (OFFLINE_DATASET if self.offline else DEFAULT_DATASET)

    @property
    def download_cache(self) -> Path:
        """Where downloads are kept between runs (``--cache``; else the user's cache folder)."""
        if self.cache is not None:
            return self.cache.expanduser().resolve()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "mreg" / "demo"

    def offline_defaults(self) -> TrainOptions:
        """The same options, with the defaults an offline run uses."""
        return replace(self, offline=True)
