"""``mreg demo train``'s flags mean what the seed's demo documented: batches of 32, at most
1,000 rows by default, ``--steps`` counted per epoch, and MinIO's default keys for an
``--s3-endpoint`` given without keys (where mreg differs, the help text says why)."""

from __future__ import annotations

import torch
from torch import nn

from mreg.demo import TrainOptions
from mreg.demo.data import Split
from mreg.demo.destination import S3_REMOTE, choose_remote
from mreg.demo.training import fit


def digits_split(rows: int = 64) -> Split:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (rows, 3, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.arange(rows) % 10
    return Split(list(zip(images, labels, strict=True)), tuple(str(i) for i in range(10)))


def test_the_defaults_are_the_seeds_batch_and_row_limit(run) -> None:  # type: ignore[no-untyped-def]
    options = TrainOptions()
    assert (options.batch, options.limit, options.epochs, options.steps) == (32, 1000, 1, None)
    shown = run("demo", "train", "--help").stdout
    assert "[default: 32]" in shown and "[default: 1000]" in shown
    assert "Optimizer steps per epoch" in shown


def test_steps_count_per_epoch_and_the_data_repeat_as_needed() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    done = fit(model, digits_split(64), batch=16, lr=1e-3, epochs=3, steps=5)
    # 3 epochs of 5 steps, each step a batch of 16: 4 batches make one pass, so data repeat.
    assert (done.steps, done.epochs, done.samples) == (15, 3, 15 * 16)


def test_without_steps_each_epoch_is_one_pass() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    done = fit(model, digits_split(64), batch=16, lr=1e-3, epochs=2)
    assert (done.steps, done.epochs, done.samples) == (8, 2, 128)


def test_an_s3_endpoint_without_keys_uses_minios_default_keys(repo) -> None:  # type: ignore[no-untyped-def]
    from mreg import Repo

    options = TrainOptions(s3_endpoint="http://127.0.0.1:9000", bucket="my-bucket").checked()
    assert (options.access_key, options.secret_key) == ("minioadmin", "minioadmin123")
    remote = choose_remote(Repo(repo), options)
    assert remote.name == S3_REMOTE and remote.access_key_id == "minioadmin"
    given = TrainOptions(
        s3_endpoint="http://127.0.0.1:9000", bucket="b", aws_access_key="k", aws_secret_key="s"
    )
    assert (given.access_key, given.secret_key) == ("k", "s")
    # Without an endpoint (AWS itself) the usual AWS credential chain decides.
    assert TrainOptions(bucket="b").access_key is None
