"""``python -m mreg``: the ``mreg`` command, for git hooks and textconv (any interpreter)."""

from mreg.cli import script

if __name__ == "__main__":
    script()
