"""``mreg config`` and ``mreg doctor``: what is set, and what this machine lacks."""

from __future__ import annotations

from json import dumps

import typer

from mreg.cli.options import Json, open_repo, print_json, shown, stdout
from mreg.cli.root import app


@app.command("config")
def config(json: Json = False) -> None:
    """List the effective settings and where each comes from (committed .mreg/config.toml,
    local .mreg/config.local.toml, environment); secrets masked."""
    settings = open_repo().config.settings()
    if json:
        print_json(settings)
        return
    for setting in settings:
        value = setting.value if isinstance(setting.value, str) else dumps(setting.value)
        stdout.print(f"{shown(setting.key)} = {shown(value)}  ({setting.source})")


@app.command()
def doctor(json: Json = False) -> None:
    """Check git identity, remotes (reachable, credentials), the cache (sizes) and optional
    packages; print a fix for each problem; exit 1 when something is wrong."""
    checks = open_repo().doctor()
    if json:
        print_json(checks)
    else:
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            stdout.print(f"{mark} {shown(check.name)}: {shown(check.detail)}")
            if check.fix and not check.ok:
                stdout.print(f"     fix: {shown(check.fix)}")
    if not all(check.ok for check in checks):
        raise typer.Exit(1)
