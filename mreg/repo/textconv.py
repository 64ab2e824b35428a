"""One manifest as the lines a reviewer reads: what ``git diff`` shows for ``*.mreg.toml``.

git runs ``mreg diff-textconv PATH`` on each side of a manifest's change (``diff.mreg.textconv``,
set by ``mreg install-git``) and diffs the text it prints, so a changed tensor is one ``-``/``+``
pair of lines naming its shape, dtype and digest, instead of a fragment's JSON. The file comes
from any commit of any clone: it is parsed as TOML and validated, never executed, and nothing is
written; a file that is no valid manifest is shown as it is, after one line saying why.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mreg.errors import MregError
from mreg.repo import manifest as manifests
from mreg.repo.manifest import Manifest
from mreg.terminal import printable

SHORT = 12  # digits of a sha256 shown: enough to tell versions apart in a review


def textconv(path: Path) -> str:
    """The review text of the manifest file at ``path`` (raw text when it is no manifest)."""
    raw = path.read_bytes().decode("utf-8", "replace")
    try:
        lines = describe(manifests.loads(raw, path.name))
    except MregError as error:
        notice = f"# not a valid mreg manifest ({error.message}); shown as it is"
        lines = [notice, *raw.splitlines()]
    return "".join(printable(line) + "\n" for line in lines)


def describe(manifest: Manifest) -> list[str]:
    """One line per fact a review compares: source, meta, tensors or columns, fragments."""
    source = manifest.source
    lines = [
        f"mreg {manifest.kind} {manifest.name} ({source.format}) at {manifest.path}",
        f"source sha256 {source.sha256[:SHORT]}, {source.size:,} bytes",
    ]
    lines += [f"meta {key} = {value}" for key, value in sorted(manifest.meta.items())]
    lines += [f"info {key} = {value}" for key, value in sorted(manifest.info.items())]
    lines += [f"file {f.path} {f.size:,} bytes sha256 {f.sha256[:SHORT]}" for f in source.files]
    if manifest.kind == "model":
        lines += _model_lines(manifest)
    else:
        lines.append(f"rows {manifest.rows:,}")
        lines += [f"column {c.name} {c.type}" for c in manifest.columns]
    lines += [f"fragment {f.id}: {f.rows:,} rows" for f in manifest.fragments]
    lines.append(f"data {len(manifest.files)} file(s), {manifest.data_size:,} bytes")
    return lines


def _model_lines(manifest: Manifest) -> list[str]:
    dtypes = ", ".join(manifest.dtypes)
    lines = [f"parameters {manifest.parameters:,}" + (f" ({dtypes})" if dtypes else "")]
    lines += [
        f"tensor {t.name} {list(t.shape)} {t.dtype} digest {t.digest[:SHORT]}"
        for t in manifest.weights
    ]
    lines += [f"file {t.name} digest {t.digest[:SHORT]}" for t in manifest.side_files]
    chunks = Counter(c.name for c in manifest.chunks)
    sizes = Counter[str]()
    for chunk in manifest.chunks:
        sizes[chunk.name] += chunk.shape[0]
    lines += [
        f"chunks of {name or manifest.path}: {count:,}, {sizes[name]:,} bytes"
        for name, count in sorted(chunks.items())
    ]
    return lines
