"""Where a dataset's rows come from: the local cache, a remote read in place, or a Lance path.

``resolve`` turns what a user names into a ``Source``: a small, picklable recipe for opening one
exact Lance version. Every process opens its own dataset from it (``Reader``), because an open
``lance.LanceDataset`` must not cross a pickle or a fork (DataLoader workers).

An artifact's version is opened by ``Repo.open`` (``mreg.repo.opening``), from the cache or read
in place from a remote through a small Lance view in ``.mreg/cache/views/``; the Source is that
view's path. Data read from a remote is as trustworthy as the remote: no sha256 is checked on
partial reads (``mreg verify --remote`` checks the remote).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mreg.errors import MissingData, MregError, RemoteError, UsageError, one_line
from mreg.repo import Repo

if TYPE_CHECKING:
    import lance


@dataclass(frozen=True)
class Source:
    """How to open one exact version of a dataset; cheap to pickle into a worker.

    ``what`` names the dataset in messages; ``remote`` describes the remote the rows are read
    from, when they are (read errors then name it).
    """

    uri: str
    what: str
    storage_options: dict[str, str] | None = field(default=None, hash=False)
    version: int | str | None = None
    remote: str | None = None


def resolve(
    name: str,
    rev: str | None = None,
    repo: str | Path | Repo | None = None,
    remote: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> Source:
    """The Source of ``name``: an artifact of ``repo`` (default: the current directory) at
    ``rev``, or a Lance dataset path or URI.

    An artifact is opened as ``Repo.open`` opens it: from the local cache (what it lacks is
    fetched from the default remote first), or with ``remote="NAME"`` read in place from that
    remote, nothing downloaded ahead. A model artifact is refused.
    """
    if _is_lance_path(name):
        if remote is not None:
            raise UsageError("remote= applies to artifacts; a Lance path or URI is read as it is")
        version: int | str | None = int(rev) if rev and rev.isdigit() else rev
        return Source(name, f"Lance dataset {name}", storage_options, version)
    repo = repo if isinstance(repo, Repo) else Repo(repo or ".")
    target = repo.target(f"{name}@{rev}" if rev else name)
    manifest = target.manifest
    shown = f"'{manifest.name}'" + (f" at {target.rev}" if target.rev else "")
    if manifest.kind != "dataset":
        raise UsageError(
            f"{shown} is a model, not a dataset",
            hint=f"load its weights with mreg.torch.load_into(module, '{manifest.name}')",
        )
    dataset = repo.open(name, rev, remote=remote)
    if remote is None:
        return Source(dataset.uri, shown)
    # Read errors name the remote; workers reopen the view with the same storage options.
    where = repo.store(remote).description
    return Source(dataset.uri, shown, dataset.initial_storage_options, remote=where)


def _is_lance_path(name: str) -> bool:
    if "://" in name:
        return True
    path = Path(name)
    return path.is_dir() and (path / "_versions").is_dir()


# The process in which a Reader last opened Lance: a process forked from it must not use Lance.
_lance_opened_in: int | None = None


class Reader:
    """A Source opened at most once per process: pickling drops the open dataset, so a worker
    started by spawn or a forkserver opens its own on first use. A worker *forked* from a process
    that had opened Lance is refused (see ``mreg.torch.workers``).

    ``in_memory``: the first ``take`` in a process reads the columns whole into memory, and
    every ``take`` after it is an Arrow take there (random access as cheap as sequential).
    """

    def __init__(self, source: Source, in_memory: bool = False) -> None:
        self.source = source
        self.in_memory = in_memory
        self._dataset: lance.LanceDataset | None = None
        self._fragments: list[Any] = []
        self._starts = np.zeros(0, dtype=np.int64)
        self._memory: pa.Table | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        dropped: dict[str, Any] = {"_dataset": None, "_fragments": [], "_memory": None, "_pid": -1}
        return {**self.__dict__, **dropped}

    @property
    def dataset(self) -> lance.LanceDataset:
        global _lance_opened_in
        if self._dataset is None or self._pid != os.getpid():
            _refuse_after_fork()
            import lance

            with self.errors():
                self._dataset = lance.dataset(
                    self.source.uri,
                    version=self.source.version,
                    storage_options=self.source.storage_options,
                )
                self._fragments = self._dataset.get_fragments()
                rows = [0] + [f.count_rows() for f in self._fragments]
            self._starts = np.cumsum(rows, dtype=np.int64)
            self._memory = None
            self._pid = _lance_opened_in = os.getpid()
        return self._dataset

    def take(self, offsets: np.ndarray, columns: list[str]) -> pa.Table:
        """The rows at ``offsets`` (as ``LanceDataset.take`` counts them), in that order.

        Each fragment is asked for its rows in increasing order (``LanceFragment.take``): a
        quarter less CPU per row than ``LanceDataset.take`` on random indices, which is what a
        shuffled DataLoader sends.
        """
        dataset = self.dataset  # opened (and its fragments listed) in this process
        if not len(offsets):
            return dataset.schema.empty_table().select(columns)
        if self.in_memory:
            return self._in_memory(columns).take(pa.array(offsets))
        wanted, order = np.unique(offsets, return_inverse=True)
        owner = np.searchsorted(self._starts, wanted, side="right") - 1
        tables = []
        with self.errors():
            for fragment in np.unique(owner):
                local = wanted[owner == fragment] - self._starts[fragment]
                tables.append(self._fragments[fragment].take(local, columns=columns))
        table = pa.concat_tables(tables) if len(tables) != 1 else tables[0]
        return table.take(pa.array(order.reshape(-1)))

    def _in_memory(self, columns: list[str]) -> pa.Table:
        if self._memory is None or self._memory.column_names != columns:
            with self.errors():
                # In fragment order, which is the order of offsets.
                self._memory = self.dataset.to_table(columns=columns).combine_chunks()
        return self._memory

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Lance's I/O errors as one MregError naming the dataset and, if any, the remote."""
        try:
            yield
        except (OSError, RuntimeError) as error:
            if isinstance(error, MregError):
                raise
            reason = _lance_reason(error)
            if self.source.remote:
                raise RemoteError(
                    f"{self.source.remote}: reading {self.source.what} failed: {reason}",
                    hint="check that the remote is reachable, then start again",
                ) from None
            raise MissingData(
                f"reading {self.source.what} failed: {reason}",
                hint="run `mreg verify` to find missing or corrupt data files",
            ) from None


def _refuse_after_fork() -> None:
    if _lance_opened_in is not None and _lance_opened_in != os.getpid():
        raise UsageError(
            f"this process (pid {os.getpid()}) was forked from one that had read Lance data, "
            "and Lance is not fork-safe (forked DataLoader workers hang at random)",
            hint="use mreg.torch.loader(dataset, ...), or pass "
            "multiprocessing_context='forkserver' to the DataLoader",
        )


def _lance_reason(error: BaseException) -> str:
    """Lance's message without its nested prefixes and the Rust source locations."""
    text = one_line(error, limit=1000)
    text = text.rsplit("LanceError(IO): ", 1)[-1]
    text = re.split(r", /\S+\.rs:\d+", text, maxsplit=1)[0]
    return text[:300]
