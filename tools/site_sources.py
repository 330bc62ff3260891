"""Lay out the documentation site's sources: docs/, the README (the entry page), the hook
reference (CONTRIBUTING.md), the changelog, the plugin template's guide, and the API
reference pages, with links rewritten to where the pages land. ``make docs`` runs it, then
``mkdocs build --strict`` on the result (mkdocs.yml)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = {
    "keyloader": "The top-level API: open a key store, load a master key, the base classes.",
    "keyloader.aio": "The embedding API for asyncio.",
    "keyloader.stores": "Key stores: the contract, the built-in stores, helpers for authors.",
    "keyloader.testing": "The conformance suites plugins subclass.",
    "keyloader.hookspecs": "The hook specifications (the hook reference's one source).",
    "keyloader.audit": "Audit events.",
    "keyloader.errors": "The error tree.",
}
TOP_PAGES = {  # repository file -> page, and how the docs link to it
    "README.md": "index.md",
    "CONTRIBUTING.md": "CONTRIBUTING.md",
    "CHANGELOG.md": "CHANGELOG.md",
    "examples/plugin-template/README.md": "plugin-template.md",
}
_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def _rewrite(text: str, source: str) -> str:
    """Links of ``source`` (a repository path) as they resolve among the site's pages."""
    base = (ROOT / source).parent

    def repl(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        if "://" in target or target.startswith("mailto:"):
            return match.group(0)
        resolved = (base / target).resolve()
        relative = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else ""
        if relative in TOP_PAGES:
            page = TOP_PAGES[relative]
        elif relative.startswith("docs/") and relative.endswith(".md"):
            page = relative.removeprefix("docs/")
        else:
            return match.group(0)  # left as it is: a strict build reports it if it is broken
        return f"]({page}{anchor})"

    return _LINK.sub(repl, text)


def main(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    (target / "reference").mkdir(parents=True)
    for path in sorted((ROOT / "docs").glob("*.md")):
        source = path.relative_to(ROOT).as_posix()
        (target / path.name).write_text(_rewrite(path.read_text(), source))
    for source, page in TOP_PAGES.items():
        (target / page).write_text(_rewrite((ROOT / source).read_text(), source))
    for module, summary in REFERENCE.items():
        page = target / "reference" / f"{module}.md"
        page.write_text(f"# `{module}`\n\n{summary}\n\n::: {module}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "site-src")
