"""Global options: accepted before the command and after any leaf command (the leaf wins)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer import _click
from typer._click.globals import get_current_context

if TYPE_CHECKING:
    from ..config import Layer

__all__ = [
    "GLOBAL_OPTION_NAMES",
    "GlobalOptions",
    "check_key_values",
    "current_options",
    "record_options",
]

GLOBAL_OPTION_NAMES = (
    "config",
    "enterprise",
    "provider",
    "option",
    "keystore",
    "store_option",
    "keys_dir",
    "keystore_version",
    "json_output",
    "previous_provider",
    "previous_option",
)
"""The parameter names of the global options, as declared on the root callback."""

_META_KEY = "keyloader.options"


@dataclass(frozen=True)
class GlobalOptions:
    """The global options of one run; ``option`` lists hold raw ``KEY=VALUE`` text."""

    config: Path | None = None
    enterprise: bool = False
    provider: str | None = None
    option: tuple[str, ...] = ()
    keystore: str | None = None
    store_option: tuple[str, ...] = ()
    keys_dir: Path | None = None
    keystore_version: str | None = None
    json_output: bool = False
    previous_provider: str | None = None
    previous_option: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> GlobalOptions:
        """Build from click parameter values (None or empty when not given)."""
        return cls(
            config=_path(params.get("config")),
            enterprise=bool(params.get("enterprise")),
            provider=params.get("provider"),
            option=tuple(params.get("option") or ()),
            keystore=params.get("keystore"),
            store_option=tuple(params.get("store_option") or ()),
            keys_dir=_path(params.get("keys_dir")),
            keystore_version=params.get("keystore_version"),
            json_output=bool(params.get("json_output")),
            previous_provider=params.get("previous_provider"),
            previous_option=tuple(params.get("previous_option") or ()),
        )

    def overridden_by(self, leaf: GlobalOptions) -> GlobalOptions:
        """These options (given before the command) with the leaf's values on top.

        Scalars: the leaf value when given. Flags: on if given anywhere. Repeated
        ``KEY=VALUE`` options: both lists, the leaf's last, so a leaf key wins.
        """
        return replace(
            self,
            config=leaf.config if leaf.config is not None else self.config,
            enterprise=self.enterprise or leaf.enterprise,
            provider=leaf.provider if leaf.provider is not None else self.provider,
            option=self.option + leaf.option,
            keystore=leaf.keystore if leaf.keystore is not None else self.keystore,
            store_option=self.store_option + leaf.store_option,
            keys_dir=leaf.keys_dir if leaf.keys_dir is not None else self.keys_dir,
            keystore_version=(
                leaf.keystore_version
                if leaf.keystore_version is not None
                else self.keystore_version
            ),
            json_output=self.json_output or leaf.json_output,
            previous_provider=(
                leaf.previous_provider
                if leaf.previous_provider is not None
                else self.previous_provider
            ),
            previous_option=self.previous_option + leaf.previous_option,
        )

    def layer(self) -> Layer:
        """The CLI layer of the settings (config refuses secret options here)."""
        from ..config import Layer

        keystore, store_options = self.keystore, _key_values(self.store_option)
        if keystore in ("v1", "v2"):  # Acra's --keystore=v1|v2: no store has those names
            store_options.setdefault("keystore_version", keystore)
            keystore = None
        if self.keystore_version is not None:
            store_options["keystore_version"] = self.keystore_version
        return Layer(
            provider=self.provider,
            provider_options=_key_values(self.option),
            keystore=keystore,
            store_options=store_options,
            keys_dir=self.keys_dir,
            enterprise=True if self.enterprise else None,
            previous_provider=self.previous_provider,
            previous_options=_key_values(self.previous_option),
            config_file=self.config,
        )


def _path(value: object) -> Path | None:
    return None if value is None else Path(str(value))


def key_values(items: Iterable[str]) -> dict[str, object]:
    """``KEY=VALUE`` items (checked by :func:`check_key_values`) as a mapping."""
    return _key_values(items)


def _key_values(items: Iterable[str]) -> dict[str, object]:
    pairs: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        pairs[key.strip()] = value
    return pairs


def check_key_values(
    ctx: typer.Context, param: _click.Parameter, values: list[str] | None
) -> list[str] | None:
    """Click callback: every value must be ``KEY=VALUE`` (the value is never echoed)."""
    for item in values or ():
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(
                "expected KEY=VALUE, e.g. -o variable=MY_MASTER_KEY", ctx=ctx, param=param
            )
    return values


ToOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--to-option",
        metavar="KEY=VALUE",
        callback=check_key_values,
        help="An option of the new key's provider (repeatable); an env target defaults "
        "to variable=DST_ACRA_MASTER_KEY.",
    ),
]
"""``--to-option`` of the commands that load a second master key (``rewrap``, ``migrate``)."""


def record_options(ctx: _click.Context, options: GlobalOptions, *, leaf: bool) -> None:
    """Store the options of the root callback, or merge a leaf command's on top."""
    if leaf:
        before = ctx.meta.get(_META_KEY, GlobalOptions())
        options = before.overridden_by(options)
    ctx.meta[_META_KEY] = options


def current_options() -> GlobalOptions:
    """The merged global options of the running command."""
    ctx = get_current_context()
    options = ctx.meta.get(_META_KEY)
    return options if isinstance(options, GlobalOptions) else GlobalOptions()
