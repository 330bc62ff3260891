"""Documentation tests for plugin authors: what CONTRIBUTING.md, docs/plugins.md and the
template's README say matches the code, and their examples compile (the tutorial runs)."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
import textwrap
import tomllib
import typing
from pathlib import Path

import pytest

import keyloader_command
from keyloader import hookspecs
from keyloader.audit import AUDIT_ACTIONS, AuditEvent
from keyloader.errors import MasterKeyNotFoundError
from keyloader.masterkey import generate_master_key
from keyloader.providers import MasterKeyProvider, Option, OptionType
from keyloader_command import plugin as template_plugin
from keyloader_command.provider import CommandProvider

ROOT = Path(__file__).resolve().parents[2]
CONTRIBUTING = (ROOT / "CONTRIBUTING.md").read_text()
PLUGINS_DOC = (ROOT / "docs" / "plugins.md").read_text()
TEMPLATE = ROOT / "examples" / "plugin-template"
TEMPLATE_README = (TEMPLATE / "README.md").read_text()
DOCS = {
    "CONTRIBUTING.md": CONTRIBUTING,
    "docs/plugins.md": PLUGINS_DOC,
    "examples/plugin-template/README.md": TEMPLATE_README,
}
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("keyloader_"))


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole line) up to the next heading outside code blocks."""
    lines = text.splitlines(keepends=True)
    assert heading + "\n" in lines, f"no heading {heading!r}"
    body: list[str] = []
    fenced = False
    for line in lines[lines.index(heading + "\n") + 1 :]:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            break
        body.append(line)
    return "".join(body)


def code_blocks(text: str, language: str) -> list[str]:
    """The fenced ``language`` blocks of ``text`` (indented ones too, dedented)."""
    blocks = re.findall(rf"^( *)```{language}\n(.*?)^\1```", text, flags=re.M | re.S)
    return [textwrap.dedent(block) for _, block in blocks]


# -- the Option schema ----------------------------------------------------------------------


def test_option_signature_matches_the_dataclass() -> None:
    schema = section(CONTRIBUTING, "### The `Option` schema")
    match = re.search(r"`(Option\(.*?\))`", schema, flags=re.S)
    assert match, "CONTRIBUTING.md shows no `Option(...)` signature"
    call = ast.parse(" ".join(match.group(1).split()).replace('"|"', "|"), mode="eval").body
    assert isinstance(call, ast.Call)
    documented = [arg.id for arg in call.args if isinstance(arg, ast.Name)]
    documented += [keyword.arg for keyword in call.keywords if keyword.arg]
    fields = dataclasses.fields(Option)
    assert documented == [field.name for field in fields]
    defaults = {kw.arg: kw.value for kw in call.keywords}
    for field in fields:
        if field.name == "type":
            continue  # documented as the list of its values, checked below
        if field.default is not dataclasses.MISSING:
            assert ast.literal_eval(defaults[field.name]) == field.default, field.name


def test_every_option_type_is_documented() -> None:
    schema = section(CONTRIBUTING, "### The `Option` schema")
    line = re.search(r'type="([^,]*)"', schema)
    assert line, "no type=... in the Option signature"
    assert line.group(1).split('"|"') == list(typing.get_args(OptionType))
    type_row = next(row for row in schema.splitlines() if row.startswith("| `type` |"))
    for value in typing.get_args(OptionType):
        assert f"`{value}`" in type_row, f"type {value!r} is not explained"


def test_every_option_field_has_a_row() -> None:
    schema = section(CONTRIBUTING, "### The `Option` schema")
    rows = re.findall(r"^\| `(\w+)` \|", schema, flags=re.M)
    assert rows == [field.name for field in dataclasses.fields(Option)]


# -- the audit event ------------------------------------------------------------------------


def test_audit_event_fields_and_actions_are_documented() -> None:
    hook = section(CONTRIBUTING, "### `keyloader_audit_event(event: AuditEvent) -> None`")
    shown = re.search(r"AuditEvent\(([^)]*)\)", " ".join(hook.split()))
    assert shown, "the audit hook section does not show AuditEvent(...)"
    names = [name.strip() for name in shown.group(1).split(",")]
    assert names == [field.name for field in dataclasses.fields(AuditEvent)]
    audit = section(PLUGINS_DOC, "## The audit hook")
    rows = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", audit, flags=re.M)
    assert [name for row in rows for name in row if name] == names
    for action in AUDIT_ACTIONS:
        assert f"`{action}`" in hook
        assert f"`{action}`" in audit


# -- docs/plugins.md ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    [
        "## How plugins load",
        "## Choosing which plugins load",
        "## Embedding apps: register plugins explicitly",
        "## When a plugin fails",
        "## Writing a provider",
        "## Writing a key store",
        "## The audit hook",
        "## CLI commands",
        "## Testing a plugin",
        "## Publishing",
    ],
)
def test_plugins_doc_covers(topic: str) -> None:
    assert section(PLUGINS_DOC, topic).strip()


def test_plugins_doc_names_the_switches_and_the_api() -> None:
    choosing = section(PLUGINS_DOC, "## Choosing which plugins load")
    assert "`KEYLOADER_PLUGINS=" in choosing
    assert "`KEYLOADER_DISABLE_PLUGIN_AUTOLOAD=1`" in choosing
    assert "make_plugin_manager(" in section(
        PLUGINS_DOC, "## Embedding apps: register plugins explicitly"
    )
    assert "plugins=[" in PLUGINS_DOC
    failures = section(PLUGINS_DOC, "## When a plugin fails")
    assert "keyloader plugins --json" in failures
    for field in ("entry_point", "distribution", "version", "hooks", "providers", "stores"):
        assert f'"{field}"' in failures
    testing = section(PLUGINS_DOC, "## Testing a plugin")
    assert "MasterKeyProviderContract" in testing
    assert "KeyStoreContract" in testing
    for hook in HOOKS:
        assert hook in PLUGINS_DOC, f"docs/plugins.md does not mention {hook}"


def test_the_documented_json_listing_parses_with_the_cli_fields() -> None:
    failures = section(PLUGINS_DOC, "## When a plugin fails")
    (console,) = code_blocks(failures, "console")
    import json

    document = json.loads(console.split("\n", 1)[1])
    columns = [
        "name",
        "entry_point",
        "distribution",
        "version",
        "hooks",
        "providers",
        "stores",
        "status",
        "error",
    ]
    assert [list(row) for row in document["plugins"]] == [columns] * len(document["plugins"])


def test_enterprise_doc_links_to_the_plugins_doc() -> None:
    assert "](plugins.md)" in (ROOT / "docs" / "enterprise.md").read_text()
    assert "](docs/plugins.md" in CONTRIBUTING


# -- code in the docs -------------------------------------------------------------------------


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_python_examples_compile(doc: str) -> None:
    blocks = code_blocks(DOCS[doc], "python")
    assert blocks or doc.endswith("README.md")
    for block in blocks:
        compile(block, f"<{doc}>", "exec")


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_toml_examples_parse(doc: str) -> None:
    for block in code_blocks(DOCS[doc], "toml"):
        tomllib.loads(block)


def test_the_tutorial_provider_loads_a_key(tmp_path: Path) -> None:
    """The provider the CONTRIBUTING.md tutorial writes works as printed."""
    tutorial = section(CONTRIBUTING, "## Tutorial: a provider from the template")
    (source,) = [
        block
        for block in code_blocks(tutorial, "python")
        if block.startswith("# src/keyloader_filetext/provider.py")
    ]
    namespace: dict[str, object] = {"__name__": "tutorial_provider"}
    exec(compile(source, "<CONTRIBUTING.md tutorial>", "exec"), namespace)  # noqa: S102
    provider_class = namespace["FileTextProvider"]
    assert isinstance(provider_class, type)
    assert issubclass(provider_class, MasterKeyProvider)
    assert provider_class.name == "file-text"
    path = tmp_path / "master.key"
    for version in ("v1", "v2"):
        with generate_master_key(version) as key, key.to_text() as text:
            path.write_bytes(text.bytes() + b"\n")
            with provider_class({"path": path}).load() as loaded:
                assert loaded == key
    with pytest.raises(MasterKeyNotFoundError, match="does not exist"):
        provider_class({"path": tmp_path / "missing"}).load()


# -- the template documents itself, and tests its hooks -----------------------------------------


def test_template_readme_documents_its_options_variable_command_and_errors() -> None:
    options = section(TEMPLATE_README, "### Options of provider `command`")
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \|", options, flags=re.M)
    assert rows == [
        (option.name, f"KEYLOADER_COMMAND_{option.name.upper()}")
        for option in CommandProvider.option_schema()
    ]
    assert keyloader_command.AUDIT_LOG_VAR in section(TEMPLATE_README, "### The audit log")
    assert section(TEMPLATE_README, "### `keyloader command-check [--expect FINGERPRINT]`")
    errors = section(TEMPLATE_README, "### Errors")
    for name in ("CommandFailedError", "CommandTimeoutError", "ConfigError"):
        assert f"`{name}`" in errors


def test_template_readme_layout_lists_every_file() -> None:
    layout = section(TEMPLATE_README, "## Layout")
    files = [
        *(TEMPLATE / "src" / "keyloader_command").glob("*.*"),
        *(TEMPLATE / "tests").glob("*.py"),
    ]
    for path in files:
        assert re.search(rf"^\s+{re.escape(path.name)}\s", layout, flags=re.M), path.name


def test_template_tests_exercise_each_hook_it_implements() -> None:
    implemented = sorted(name for name in dir(template_plugin) if name.startswith("keyloader_"))
    assert implemented == [
        "keyloader_audit_actions",
        "keyloader_audit_event",
        "keyloader_cli_commands",
        "keyloader_master_key_providers",
    ]
    tests = [path.read_text() for path in (TEMPLATE / "tests").glob("test_*.py")]
    for hook in implemented:
        assert any(hook in text for text in tests), f"no template test names {hook}"
    assert any("(MasterKeyProviderContract)" in text for text in tests)
    assert any("CliRunner" in text and "command-check" in text for text in tests)
    assert any("open_keystore" in text and "AUDIT_LOG_VAR" in text for text in tests)


def test_the_hook_sections_are_the_hookspec_docstrings() -> None:
    """One source: CONTRIBUTING.md's per-hook sections are written from the docstrings of
    keyloader.hookspecs by tools/hook_reference.py; an edit to one side alone fails here."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "hook_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
