"""The per-hook sections of CONTRIBUTING.md's hook reference, written from the docstrings of
``keyloader.hookspecs`` (their one source): ``python tools/hook_reference.py`` rewrites
them between the markers, ``--check`` says whether they agree (a test runs it)."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
BEGIN = "<!-- hooks: written from core/src/keyloader/hookspecs.py by tools/hook_reference.py -->"
END = "<!-- end of the hooks -->"


def _markdown(docstring: str) -> str:
    """reST inline literals and roles as Markdown code, paragraphs kept."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", docstring)
    return text.replace("``", "`")


def render() -> str:
    """The hook sections, in the order the hooks are declared."""
    sys.path.insert(0, str(ROOT / "core" / "src"))
    from keyloader import hookspecs

    source = inspect.getsource(hookspecs)
    names = re.findall(r"^def (keyloader_\w+)\(", source, re.M)
    sections = []
    for name in names:
        function = getattr(hookspecs, name)
        signature = inspect.signature(function)
        params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
        heading = f"### `{name}({params}) -> {signature.return_annotation}`"
        sections.append(f"{heading}\n\n{_markdown(inspect.getdoc(function) or '')}\n")
    return "\n".join(sections)


def _split(text: str) -> tuple[str, str, str]:
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    return text[:start], text[start:end], text[end:]


def main(argv: list[str]) -> int:
    text = CONTRIBUTING.read_text()
    head, current, tail = _split(text)
    wanted = f"\n\n{render()}\n"
    if "--check" in argv:
        if current != wanted:
            print(
                "CONTRIBUTING.md's hook sections differ from the hookspec docstrings: run "
                "python tools/hook_reference.py",
                file=sys.stderr,
            )
            return 1
        return 0
    CONTRIBUTING.write_text(head + wanted + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
