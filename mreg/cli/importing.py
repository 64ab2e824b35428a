"""``mreg import``: download a file, a Hugging Face repo or a Hugging Face dataset, and track it."""

from __future__ import annotations

from typing import Annotated

import typer

from mreg.cli.options import human_size, open_repo, stdout
from mreg.cli.root import app
from mreg.cli.track import parse_meta
from mreg.errors import UsageError


@app.command("import")
def import_(
    source: Annotated[
        str,
        typer.Argument(
            metavar="URL",
            # Brackets are escaped: the help is rich markup.
            help="http(s)://..., hf://ORG/NAME\\[@REV], or "
            "hf-dataset://NAME\\[@REV]\\[?config=C&split=S&limit=N].",
        ),
    ],
    path: Annotated[
        str | None,
        typer.Argument(help="Where to put it. Default: the URL's file name, or ORG--NAME."),
    ] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Expected sha256 of an http(s) download.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Artifact name.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="model or dataset (for hf://: the repo type).")
    ] = None,
    meta: Annotated[list[str] | None, typer.Option(help="Metadata KEY=VALUE (repeatable).")] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="hf:// only: download files matching PATTERN (repeatable)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a different file or folder at PATH.")
    ] = False,
) -> None:
    """Download URL to PATH, convert it to Lance, and write PATH.mreg.toml recording the source."""
    # Not at start-up: it loads the http client and the converters.
    from mreg.repo.import_options import is_hf

    repo = open_repo()
    if is_hf(source):
        if sha256:
            raise UsageError("--sha256 checks http(s) downloads; hf:// imports record the commit")
        result = repo.import_hf(
            source, path, kind=kind, allow=allow, name=name, meta=parse_meta(meta), force=force
        )
    else:
        if allow:
            raise UsageError("--allow selects files of hf:// repos")
        result = repo.import_url(
            source, path, sha256=sha256, name=name, kind=kind, meta=parse_meta(meta), force=force
        )
    m = result.manifest
    size = f"{m.rows:,} rows" if m.kind == "dataset" else f"{m.parameters:,} parameters"
    state = "" if result.changed else " (unchanged)"
    stdout.print(
        f"{m.name}: {m.kind} from {m.source.url}, {size}, "
        f"{human_size(result.new_bytes)} new data -> {result.manifest_path}{state}"
    )
    if result.changed:
        stdout.print(f"next: git add {result.manifest_path} && git commit", style="dim")
