"""Settings resolution (docs/configuration.md): api > cli > environment > config file > defaults."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keyloader.config import Layer, Settings, load_settings
from keyloader.errors import ConfigError
from keyloader.providers import KEYSTORE_VERSION_OPTION, Option

ENV_SCHEMA = (
    Option("variable", "Environment variable holding the key.", default="ACRA_MASTER_KEY"),
    KEYSTORE_VERSION_OPTION,
)
VAULT_SCHEMA = (
    Option("address", "Vault URL.", env=("VAULT_ADDR",), required=True),
    Option("token", "Vault token.", env=("VAULT_TOKEN",), secret=True),
    Option("token_file", "File holding the token.", type="path"),
    Option("timeout", "Deadline.", type="float", default=10.0, env=("VAULT_CLIENT_TIMEOUT",)),
    Option("retries", "Retries.", type="int", default=3),
    Option("namespace", "Namespace.", env=("VAULT_NAMESPACE", "BAO_NAMESPACE")),
    Option("tls_skip_verify", "Skip TLS checks.", type="bool", default=False),
    KEYSTORE_VERSION_OPTION,
)
FS_SCHEMA = (
    Option("keys_dir", "Key directory.", type="path"),
    Option("lock_timeout", "Lock wait.", type="float", default=30.0),
)
REDIS_SCHEMA = (
    Option("keys_dir", "Key prefix.", default="ignored-store-default"),
    Option("url", "Redis URL.", default="redis://localhost:6379/0"),
    Option("password", "Redis password.", env=("REDIS_PASSWORD",), secret=True),
)
MEMORY_SCHEMA: tuple[Option, ...] = ()
SECRET_VALUE = "s.sup3r-secret-t0ken"


def load(
    tmp_path: Path,
    *,
    api: Layer | None = None,
    cli: Layer | None = None,
    env: dict[str, str] | None = None,
    toml: str | None = None,
) -> Settings:
    """Settings with ``toml`` as ./keyloader.toml in ``tmp_path`` (if given)."""
    if toml is not None:
        (tmp_path / "keyloader.toml").write_text(textwrap.dedent(toml))
    return load_settings(api=api, cli=cli, env=env or {}, cwd=tmp_path)


# -- defaults and top-level precedence --------------------------------------------


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.provider == "env"
    assert settings.keystore == "filesystem"
    assert settings.keys_dir == Path(".acrakeys")
    assert settings.enterprise is False
    assert settings.cache_size == 1000  # Acra's default; revalidated on every use
    assert settings.cache_ttl == 0.0  # stores without revision tokens are not cached
    assert settings.log_level is None
    assert settings.debug is False
    assert settings.config_file is None
    assert settings.previous_provider is None
    assert settings.provider_options("env", ENV_SCHEMA) == {
        "variable": "ACRA_MASTER_KEY",
        "keystore_version": "auto",
    }
    assert settings.given_provider_options("env", ENV_SCHEMA) == set()
    assert settings.store_options("filesystem", FS_SCHEMA) == {
        "keys_dir": Path(".acrakeys"),
        "lock_timeout": 30.0,
    }


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLOADER_PROVIDER", "vault")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keyloader.toml").write_text('keystore = "memory"\n')
    settings = load_settings()
    assert settings.provider == "vault"
    assert settings.keystore == "memory"
    assert settings.config_file == tmp_path / "keyloader.toml"


# Each row: setting, values given by (api, cli, env text, TOML literal), what each wins as,
# and the default. Adjacent expectations differ, so each layer must beat the next.
TOP_LEVEL = [
    (
        "provider",
        ("p-api", "p-cli", "p-env", '"p-file"'),
        ("p-api", "p-cli", "p-env", "p-file"),
        "env",
    ),
    (
        "keystore",
        ("s-api", "s-cli", "s-env", '"s-file"'),
        ("s-api", "s-cli", "s-env", "s-file"),
        "filesystem",
    ),
    ("enterprise", (False, True, "no", "true"), (False, True, False, True), False),
    ("cache_size", (1, 2, "3", "4"), (1, 2, 3, 4), 1000),
    ("cache_ttl", (1.5, 2.5, "3.5", "4.5"), (1.5, 2.5, 3.5, 4.5), 0.0),
    (
        "keys_dir",
        ("api-dir", Path("cli-dir"), "env-dir", '"file-dir"'),
        (Path("api-dir"), Path("cli-dir"), Path("env-dir"), None),  # None: <file dir>/file-dir
        Path(".acrakeys"),
    ),
]


@pytest.mark.parametrize(("name", "given", "wins", "default"), TOP_LEVEL)
def test_top_level_precedence(
    tmp_path: Path, name: str, given: tuple[object, ...], wins: tuple[object, ...], default: object
) -> None:
    api_value, cli_value, env_text, toml_literal = given
    (tmp_path / "keyloader.toml").write_text(f"{name} = {toml_literal}\n")
    env = {f"KEYLOADER_{name.upper()}": str(env_text)}
    layers = [Layer(**{name: api_value}), Layer(**{name: cli_value})]  # type: ignore[arg-type]
    for level in range(4):
        settings = load_settings(
            api=layers[0] if level < 1 else None,
            cli=layers[1] if level < 2 else None,
            env=env if level < 3 else {},
            cwd=tmp_path,
        )
        expected = wins[level] if wins[level] is not None else tmp_path / "file-dir"
        assert getattr(settings, name) == expected, f"level {level}"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert getattr(load_settings(env={}, cwd=empty), name) == default


def test_previous_provider_precedence(tmp_path: Path) -> None:
    toml = '[previous]\nprovider = "file"\n'
    api, cli = Layer(previous_provider="api"), Layer(previous_provider="cli")
    assert load(tmp_path, api=api, cli=cli, toml=toml).previous_provider == "api"
    assert load(tmp_path, cli=cli).previous_provider == "cli"
    assert load(tmp_path).previous_provider == "file"
    assert (
        load(tmp_path, env={"KEYLOADER_PREVIOUS_PROVIDER": "x"}, toml="").previous_provider is None
    )


def test_log_level_and_debug_from_environment(tmp_path: Path) -> None:
    settings = load(tmp_path, env={"KEYLOADER_LOG_LEVEL": "DEBUG", "KEYLOADER_DEBUG": "1"})
    assert settings.log_level == "DEBUG"
    assert settings.debug is True
    assert load(tmp_path, env={"KEYLOADER_DEBUG": ""}).debug is False
    with pytest.raises(ConfigError, match="KEYLOADER_DEBUG"):
        load(tmp_path, env={"KEYLOADER_DEBUG": "loud"})


def test_empty_environment_variables_count_as_unset(tmp_path: Path) -> None:
    toml = 'provider = "vault"\nkeys_dir = "k"\n[providers.vault]\naddress = "https://file"\n'
    env = {
        "KEYLOADER_PROVIDER": "",
        "KEYLOADER_KEYS_DIR": "",
        "KEYLOADER_VAULT_ADDRESS": "",
        "VAULT_ADDR": "",
        "KEYLOADER_CACHE_SIZE": "",
    }
    settings = load(tmp_path, env=env, toml=toml)
    assert settings.provider == "vault"
    assert settings.keys_dir == tmp_path / "k"
    assert settings.cache_size == 1000  # the default: the empty variable counts as unset
    assert settings.provider_options("vault", VAULT_SCHEMA)["address"] == "https://file"


# -- enterprise ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("yes", True),
        ("TRUE", True),
        (" Yes ", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("", False),
    ],
)
def test_enterprise_environment_values(tmp_path: Path, text: str, expected: bool) -> None:
    assert load(tmp_path, env={"KEYLOADER_ENTERPRISE": text}).enterprise is expected


@pytest.mark.parametrize("text", ["maybe", "2", "enabled", "on!"])
def test_enterprise_environment_junk_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"KEYLOADER_ENTERPRISE.*1/true/yes/on or 0/false/no/off"):
        load(tmp_path, env={"KEYLOADER_ENTERPRISE": text})


def test_empty_enterprise_variable_means_false_over_the_file(tmp_path: Path) -> None:
    settings = load(tmp_path, env={"KEYLOADER_ENTERPRISE": ""}, toml="enterprise = true\n")
    assert settings.enterprise is False
    assert load(tmp_path, env={}).enterprise is True


# -- bad top-level values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "env", "needle"),
    [
        (Layer(cache_size=-1), {}, "cache_size (from keyword argument cache_size)"),
        (Layer(cache_ttl=float("nan")), {}, "cache_ttl (from keyword argument cache_ttl)"),
        (Layer(provider=""), {}, "provider (from keyword argument provider)"),
        (None, {"KEYLOADER_CACHE_SIZE": "many"}, "cache_size (from KEYLOADER_CACHE_SIZE)"),
        (None, {"KEYLOADER_CACHE_SIZE": "-3"}, "cache_size (from KEYLOADER_CACHE_SIZE)"),
        (None, {"KEYLOADER_CACHE_TTL": "soon"}, "cache_ttl (from KEYLOADER_CACHE_TTL)"),
        (None, {"KEYLOADER_CACHE_TTL": "inf"}, "cache_ttl (from KEYLOADER_CACHE_TTL)"),
    ],
)
def test_bad_top_level_values_name_their_source(
    tmp_path: Path, layer: Layer | None, env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, api=layer, env=env)
    assert needle in str(caught.value)


def test_cli_keys_dir_and_cache_from_cli_layer(tmp_path: Path) -> None:
    settings = load(tmp_path, cli=Layer(keys_dir=Path("x"), cache_size=7, cache_ttl=1))
    assert (settings.keys_dir, settings.cache_size, settings.cache_ttl) == (Path("x"), 7, 1.0)
    assert isinstance(settings.cache_ttl, float)


# -- the config file ---------------------------------------------------------------------


def test_config_file_choice_api_over_cli_over_env_over_default(tmp_path: Path) -> None:
    for name in ("api", "cli", "env", "keyloader"):
        (tmp_path / f"{name}.toml").write_text(f'provider = "{name}"\n')
    env = {"KEYLOADER_CONFIG": "env.toml"}
    api, cli = Layer(config_file="api.toml"), Layer(config_file=tmp_path / "cli.toml")
    chosen = load_settings(api=api, cli=cli, env=env, cwd=tmp_path)
    assert (chosen.provider, chosen.config_file) == ("api", tmp_path / "api.toml")
    assert load_settings(cli=cli, env=env, cwd=tmp_path).provider == "cli"
    chosen = load_settings(env=env, cwd=tmp_path)
    assert (chosen.provider, chosen.config_file) == ("env", tmp_path / "env.toml")
    chosen = load_settings(env={}, cwd=tmp_path)
    assert (chosen.provider, chosen.config_file) == ("keyloader", tmp_path / "keyloader.toml")


@pytest.mark.parametrize(
    ("api", "cli", "env", "source"),
    [
        (Layer(config_file="gone.toml"), None, {}, "keyword argument config_file"),
        (None, Layer(config_file=Path("gone.toml")), {}, "--config"),
        (None, None, {"KEYLOADER_CONFIG": "gone.toml"}, "KEYLOADER_CONFIG"),
    ],
)
def test_explicit_config_file_missing(
    tmp_path: Path, api: Layer | None, cli: Layer | None, env: dict[str, str], source: str
) -> None:
    (tmp_path / "keyloader.toml").write_text('provider = "would-be-used"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(api=api, cli=cli, env=env, cwd=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "gone.toml") in message
    assert source in message
    assert "does not exist" in message


def test_explicit_config_file_empty_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load(tmp_path, cli=Layer(config_file=""))


def test_config_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path, cli=Layer(config_file="conf.d"))


def test_default_config_file_absent_is_fine_and_directory_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "keyloader.toml").mkdir()
    assert load(tmp_path).config_file is None


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml='provider = "env\n')
    assert "not valid TOML" in str(caught.value)
    assert str(tmp_path / "keyloader.toml") in str(caught.value)


def test_non_utf8_config_file(tmp_path: Path) -> None:
    (tmp_path / "keyloader.toml").write_bytes(b'provider = "\xff"\n')
    with pytest.raises(ConfigError, match=r"keyloader\.toml"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("colour = 1\n", "unknown key 'colour'"),
        ("[provider]\nname = 'env'\n", "provider must be a non-empty string, not a table"),
        ("[rewrap.from]\nvariable = 'X'\n", "unknown key 'from' in [rewrap]"),
        ("[rewrap]\nto = 3\n", "rewrap.to must be a table"),
    ],
)
def test_unknown_keys_in_file(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml=toml)
    assert needle in str(caught.value)
    assert str(tmp_path / "keyloader.toml") in str(caught.value)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('cache_size = "x"\n', "cache_size must be an integer >= 0"),
        ('cache_size = "5"\n', "cache_size must be an integer >= 0"),
        ("cache_size = -1\n", "cache_size"),
        ("cache_size = 1.5\n", "cache_size must be an integer"),
        ("cache_ttl = true\n", "cache_ttl must be a number of seconds"),
        ("cache_ttl = -2.0\n", "cache_ttl"),
        ('enterprise = "maybe"\n', "enterprise must be a boolean"),
        ("provider = 5\n", "provider must be a non-empty string, not the number 5"),
        ('keystore = ""\n', "keystore must be a non-empty string"),
        ("keys_dir = []\n", "keys_dir must be a non-empty string, not an array"),
        ("providers = 5\n", "providers must be a table"),
        ("[providers]\nenv = 'x'\n", "providers.env must be a table"),
        ("[stores]\nfilesystem = 1\n", "stores.filesystem must be a table"),
        ("previous = 1\n", "previous must be a table"),
        ("[previous]\nprovider = 3\n", "[previous] provider must be a non-empty string"),
    ],
)
def test_wrong_types_in_file(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml=toml)
    assert needle in str(caught.value)
    assert str(tmp_path / "keyloader.toml") in str(caught.value)


def test_wrong_type_in_file_is_reported_even_when_overridden(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cache_size"):
        load(tmp_path, api=Layer(cache_size=3), toml='cache_size = "x"\n')


def test_relative_keys_dir_in_config_is_relative_to_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "kl.toml").write_text('keys_dir = "keys"\n[providers.vault]\ntoken_file = "tok"\n')
    settings = load(tmp_path, env={"KEYLOADER_CONFIG": str(conf / "kl.toml")})
    assert settings.keys_dir == conf / "keys"
    assert settings.store_options("filesystem", FS_SCHEMA)["keys_dir"] == conf / "keys"
    assert settings.provider_options("vault", VAULT_SCHEMA)["token_file"] == conf / "tok"
    # the same relative text from the environment stays relative to the working directory
    settings = load(tmp_path, env={"KEYLOADER_KEYS_DIR": "keys", "KEYLOADER_VAULT_TOKEN_FILE": "t"})
    assert settings.keys_dir == Path("keys")
    assert settings.provider_options("vault", VAULT_SCHEMA)["token_file"] == Path("t")


def test_absolute_and_home_keys_dir_in_config(tmp_path: Path) -> None:
    target = tmp_path / "abs"
    assert load(tmp_path, toml=f'keys_dir = "{target}"\n').keys_dir == target
    home_dir = load(tmp_path, toml='keys_dir = "~/keys"\n').keys_dir
    assert home_dir == Path.home() / "keys"


def test_relative_config_path_is_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.toml").write_text('keys_dir = "k"\n')
    settings = load(tmp_path, cli=Layer(config_file="sub/c.toml"))
    assert settings.config_file == tmp_path / "sub" / "c.toml"
    assert settings.keys_dir == tmp_path / "sub" / "k"


# -- provider options ------------------------------------------------------------------


def test_provider_option_precedence_every_combination(tmp_path: Path) -> None:
    """api > cli > KEYLOADER_<P>_<X> > native name > [providers.P] > default, for all subsets."""
    for present in itertools.product((True, False), repeat=5):
        api, cli, own, native, in_file = present
        env = {}
        if own:
            env["KEYLOADER_VAULT_TIMEOUT"] = "3"
        if native:
            env["VAULT_CLIENT_TIMEOUT"] = "4"
        settings = load(
            tmp_path,
            api=Layer(provider_options={"timeout": 1}) if api else None,
            cli=Layer(provider_options={"timeout": "2"}) if cli else None,
            env=env,
            toml="[providers.vault]\ntimeout = 5\n" if in_file else "",
        )
        expected = next(
            (v for v, p in zip((1.0, 2.0, 3.0, 4.0, 5.0), present, strict=True) if p), 10.0
        )
        assert settings.provider_options("vault", VAULT_SCHEMA)["timeout"] == expected, present
        given = settings.given_provider_options("vault", VAULT_SCHEMA)
        assert given == ({"timeout"} if any(present) else set())


def test_native_env_names_in_order(tmp_path: Path) -> None:
    env = {"VAULT_NAMESPACE": "first", "BAO_NAMESPACE": "second", "VAULT_ADDR": "https://v"}
    options = load(tmp_path, env=env).provider_options("vault", VAULT_SCHEMA)
    assert options["namespace"] == "first"
    assert options["address"] == "https://v"
    env.pop("VAULT_NAMESPACE")
    assert load(tmp_path, env=env).provider_options("vault", VAULT_SCHEMA)["namespace"] == "second"
    env["KEYLOADER_VAULT_NAMESPACE"] = "own"
    assert load(tmp_path, env=env).provider_options("vault", VAULT_SCHEMA)["namespace"] == "own"


def test_env_name_of_a_dashed_provider(tmp_path: Path) -> None:
    schema = (Option("key_id", "KMS key."), Option("region", "Region.", env=("AWS_REGION",)))
    env = {"KEYLOADER_AWS_KMS_KEY_ID": "k1", "AWS_REGION": "eu-west-1"}
    assert load(tmp_path, env=env).provider_options("aws-kms", schema) == {
        "key_id": "k1",
        "region": "eu-west-1",
    }


def test_every_option_gets_a_value(tmp_path: Path) -> None:
    options = load(tmp_path, env={"VAULT_ADDR": "https://v"}).provider_options(
        "vault", VAULT_SCHEMA
    )
    assert set(options) == {o.name for o in VAULT_SCHEMA}
    assert options["retries"] == 3
    assert options["token"] is None
    assert options["tls_skip_verify"] is False


def test_required_is_not_enforced_here(tmp_path: Path) -> None:
    assert load(tmp_path).provider_options("vault", VAULT_SCHEMA)["address"] is None


def test_api_options_are_python_values(tmp_path: Path) -> None:
    api = Layer(
        provider_options={
            "tls_skip_verify": True,
            "retries": 0,
            "token_file": tmp_path / "t",
            "namespace": None,  # None: not given
        }
    )
    settings = load(tmp_path, api=api, env={"VAULT_NAMESPACE": "ns"})
    options = settings.provider_options("vault", VAULT_SCHEMA)
    assert options["tls_skip_verify"] is True
    assert options["retries"] == 0
    assert options["token_file"] == tmp_path / "t"
    assert options["namespace"] == "ns"


@pytest.mark.parametrize(
    ("api", "cli", "env", "toml", "needle"),
    [
        (None, None, {"KEYLOADER_VAULT_RETRIES": "x"}, "", "(from KEYLOADER_VAULT_RETRIES)"),
        (None, None, {"VAULT_CLIENT_TIMEOUT": "x"}, "", "(from VAULT_CLIENT_TIMEOUT)"),
        (None, Layer(provider_options={"retries": "x"}), {}, "", "(from --option)"),
        (
            Layer(provider_options={"retries": "x"}),
            None,
            {},
            "",
            "(from keyword argument provider_options)",
        ),
        (None, None, {}, '[providers.vault]\nretries = "x"\n', "keyloader.toml [providers.vault])"),
        (None, None, {}, "[providers.vault]\ntls_skip_verify = 3\n", "[providers.vault])"),
    ],
)
def test_option_conversion_errors_name_the_source(
    tmp_path: Path,
    api: Layer | None,
    cli: Layer | None,
    env: dict[str, str],
    toml: str,
    needle: str,
) -> None:
    settings = load(tmp_path, api=api, cli=cli, env=env, toml=toml)
    with pytest.raises(ConfigError) as caught:
        settings.provider_options("vault", VAULT_SCHEMA)
    message = str(caught.value)
    assert "of provider 'vault'" in message
    assert needle in message
    if "keyloader.toml" in needle:
        assert str(tmp_path / "keyloader.toml") in message


def test_conversion_error_of_a_secret_does_not_echo_it(tmp_path: Path) -> None:
    schema = (Option("pin", "A PIN.", type="int", secret=True),)
    settings = load(tmp_path, env={"KEYLOADER_HSM_PIN": SECRET_VALUE})
    with pytest.raises(ConfigError, match="KEYLOADER_HSM_PIN") as caught:
        settings.provider_options("hsm", schema)
    assert SECRET_VALUE not in str(caught.value)


@pytest.mark.parametrize(
    ("api", "cli", "toml", "where"),
    [
        (Layer(provider_options={"colour": 1}), None, "", "keyword argument provider_options"),
        (None, Layer(provider_options={"colour": "1"}), "", "--option"),
        (None, None, "[providers.env]\ncolour = 1\n", "keyloader.toml [providers.env]"),
    ],
)
def test_unknown_option_names_list_the_known_ones(
    tmp_path: Path, api: Layer | None, cli: Layer | None, toml: str, where: str
) -> None:
    settings = load(tmp_path, api=api, cli=cli, toml=toml)
    for method in (settings.provider_options, settings.given_provider_options):
        with pytest.raises(ConfigError) as caught:
            method("env", ENV_SCHEMA)
        message = str(caught.value)
        assert "unknown option 'colour' for provider 'env'" in message
        assert where in message
        assert "known options: keystore_version, variable" in message


def test_other_providers_tables_are_not_checked_against_this_schema(tmp_path: Path) -> None:
    settings = load(tmp_path, toml='[providers.vault]\naddress = "https://v"\n')
    assert settings.provider_options("env", ENV_SCHEMA)["variable"] == "ACRA_MASTER_KEY"


# -- aliases -------------------------------------------------------------------------------


def test_alias_table_configures_the_canonical_provider(tmp_path: Path) -> None:
    settings = load(tmp_path, toml='[providers.env_master_key]\nvariable = "MY_KEY"\n')
    assert settings.provider_options("env", ENV_SCHEMA)["variable"] == "MY_KEY"
    assert settings.provider_options("env_master_key", ENV_SCHEMA)["variable"] == "MY_KEY"
    assert settings.given_provider_options("env", ENV_SCHEMA) == {"variable"}


def test_alias_vault_table_and_canonical_env_names(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        env={"KEYLOADER_VAULT_RETRIES": "7"},
        toml='[providers.vault_master_key]\naddress = "https://v"\n',
    )
    options = settings.provider_options("vault_master_key", VAULT_SCHEMA)
    assert (options["address"], options["retries"]) == ("https://v", 7)


def test_alias_and_canonical_tables_together_are_refused(tmp_path: Path) -> None:
    toml = '[providers.env]\nvariable = "A"\n[providers.env_master_key]\nvariable = "B"\n'
    settings = load(tmp_path, toml=toml)
    with pytest.raises(ConfigError, match=r"\[providers.env\] and \[providers.env_master_key\]"):
        settings.provider_options("env", ENV_SCHEMA)


def test_alias_errors_name_the_alias_table(tmp_path: Path) -> None:
    settings = load(tmp_path, toml='[providers.env_master_key]\nkeystore_version = "v9"\n')
    with pytest.raises(ConfigError, match=r"\[providers.env_master_key\]\)"):
        settings.provider_options("env", ENV_SCHEMA)


# -- secrets on the command line ---------------------------------------------------------


def test_secret_provider_option_refused_on_the_command_line(tmp_path: Path) -> None:
    settings = load(tmp_path, cli=Layer(provider_options={"token": SECRET_VALUE}))
    for method in (settings.provider_options, settings.given_provider_options):
        with pytest.raises(ConfigError) as caught:
            method("vault", VAULT_SCHEMA)
        assert str(caught.value) == (
            "option 'token' is secret and is refused on the command line, where it leaks "
            "through `ps` and shell history; use `token_file` or the environment variable "
            "VAULT_TOKEN/KEYLOADER_VAULT_TOKEN"
        )


def test_secret_refused_even_when_a_more_specific_layer_gives_it(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        api=Layer(provider_options={"token": "from-api"}),
        cli=Layer(provider_options={"token": SECRET_VALUE}),
    )
    with pytest.raises(ConfigError, match="refused on the command line"):
        settings.provider_options("vault", VAULT_SCHEMA)


def test_secret_store_option_refused_without_a_file_option(tmp_path: Path) -> None:
    settings = load(tmp_path, cli=Layer(store_options={"password": SECRET_VALUE}))
    with pytest.raises(ConfigError) as caught:
        settings.store_options("redis", REDIS_SCHEMA)
    message = str(caught.value)
    assert "option 'password' is secret and is refused on the command line" in message
    assert message.endswith(
        "use the environment variable REDIS_PASSWORD/KEYLOADER_STORE_REDIS_PASSWORD"
    )
    assert SECRET_VALUE not in message


def test_secret_previous_and_target_options_refused_on_the_command_line(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        cli=Layer(previous_options={"token": SECRET_VALUE}, rewrap_to_options={"token": "t"}),
    )
    with pytest.raises(ConfigError) as caught:
        settings.previous_provider_options("vault", VAULT_SCHEMA)
    assert str(caught.value).endswith("use `token_file` or the [previous] table of the config file")
    with pytest.raises(ConfigError) as caught:
        settings.rewrap_target_options("vault", VAULT_SCHEMA)
    assert str(caught.value).endswith(
        "use `token_file` or the [rewrap.to] table of the config file"
    )


@pytest.mark.parametrize(
    ("api", "env", "toml"),
    [
        (Layer(provider_options={"token": SECRET_VALUE}), {}, ""),
        (None, {"KEYLOADER_VAULT_TOKEN": SECRET_VALUE}, ""),
        (None, {"VAULT_TOKEN": SECRET_VALUE}, ""),
        (None, {}, f'[providers.vault]\ntoken = "{SECRET_VALUE}"\n'),
    ],
)
def test_secret_accepted_from_api_env_and_file(
    tmp_path: Path, api: Layer | None, env: dict[str, str], toml: str
) -> None:
    settings = load(tmp_path, api=api, env=env, toml=toml)
    assert settings.provider_options("vault", VAULT_SCHEMA)["token"] == SECRET_VALUE
    assert "token" in settings.given_provider_options("vault", VAULT_SCHEMA)


def test_reprs_show_no_option_values_and_no_environment(tmp_path: Path) -> None:
    api = Layer(provider="vault", provider_options={"token": SECRET_VALUE})
    settings = load(tmp_path, api=api, env={"VAULT_TOKEN": SECRET_VALUE})
    assert SECRET_VALUE not in repr(api)
    assert "token" in repr(api)
    assert "'vault'" in repr(api)
    assert SECRET_VALUE not in repr(settings)
    assert "provider='vault'" in repr(settings)


# -- store options and keys_dir ----------------------------------------------------------------


def test_store_option_precedence_every_combination(tmp_path: Path) -> None:
    for present in itertools.product((True, False), repeat=4):
        api, cli, env, in_file = present
        settings = load(
            tmp_path,
            api=Layer(store_options={"lock_timeout": 1}) if api else None,
            cli=Layer(store_options={"lock_timeout": "2"}) if cli else None,
            env={"KEYLOADER_STORE_FILESYSTEM_LOCK_TIMEOUT": "3"} if env else {},
            toml="[stores.filesystem]\nlock_timeout = 4\n" if in_file else "",
        )
        expected = next((v for v, p in zip((1.0, 2.0, 3.0, 4.0), present, strict=True) if p), 30.0)
        assert settings.store_options("filesystem", FS_SCHEMA)["lock_timeout"] == expected


def test_store_option_errors_name_store_and_source(tmp_path: Path) -> None:
    settings = load(tmp_path, env={"KEYLOADER_STORE_FILESYSTEM_LOCK_TIMEOUT": "later"})
    with pytest.raises(ConfigError) as caught:
        settings.store_options("filesystem", FS_SCHEMA)
    message = str(caught.value)
    assert "option 'lock_timeout' of key store 'filesystem'" in message
    assert "(from KEYLOADER_STORE_FILESYSTEM_LOCK_TIMEOUT)" in message
    settings = load(tmp_path, cli=Layer(store_options={"depth": "1"}))
    with pytest.raises(ConfigError, match=r"unknown option 'depth' for key store 'filesystem'"):
        settings.store_options("filesystem", FS_SCHEMA)


# Sources of keys_dir, most specific first. In each layer the store's own option comes
# before the general setting.
KEYS_DIR_SOURCES = [
    "api store_options",
    "api keys_dir",
    "cli -s",
    "cli --keys-dir",
    "KEYLOADER_STORE_FILESYSTEM_KEYS_DIR",
    "KEYLOADER_KEYS_DIR",
    "[stores.filesystem]",
    "file keys_dir",
]


def _keys_dir_settings(tmp_path: Path, sources: list[str]) -> Settings:
    def pick(name: str, value: object) -> object | None:
        return value if name in sources else None

    store_api = pick("api store_options", "a1")
    store_cli = pick("cli -s", "c1")
    api = Layer(keys_dir=pick("api keys_dir", "a2"), store_options={"keys_dir": store_api})  # type: ignore[arg-type]
    cli = Layer(keys_dir=pick("cli --keys-dir", Path("c2")), store_options={"keys_dir": store_cli})  # type: ignore[arg-type]
    env = {
        name: value
        for name, value in (
            ("KEYLOADER_STORE_FILESYSTEM_KEYS_DIR", "e1"),
            ("KEYLOADER_KEYS_DIR", "e2"),
        )
        if name in sources
    }
    toml = ""
    if "file keys_dir" in sources:
        toml += 'keys_dir = "f2"\n'
    if "[stores.filesystem]" in sources:
        toml += '[stores.filesystem]\nkeys_dir = "f1"\n'
    return load(tmp_path, api=api, cli=cli, env=env, toml=toml)


@pytest.mark.parametrize("first", range(len(KEYS_DIR_SOURCES)))
def test_keys_dir_rule(tmp_path: Path, first: int) -> None:
    """The most specific source wins; within a layer the store's own option wins."""
    expected = [
        Path("a1"),
        Path("a2"),
        Path("c1"),
        Path("c2"),
        Path("e1"),
        Path("e2"),
        tmp_path / "f1",
        tmp_path / "f2",
    ][first]
    settings = _keys_dir_settings(tmp_path, KEYS_DIR_SOURCES[first:])
    assert settings.store_options("filesystem", FS_SCHEMA)["keys_dir"] == expected
    assert settings.keys_dir == expected


def test_keys_dir_of_a_string_typed_store_option(tmp_path: Path) -> None:
    """The Redis key prefix takes --keys-dir as text and defaults to .acrakeys."""
    assert load(tmp_path).store_options("redis", REDIS_SCHEMA)["keys_dir"] == ".acrakeys"
    settings = load(tmp_path, cli=Layer(keys_dir=Path("app/keys")))
    assert settings.store_options("redis", REDIS_SCHEMA)["keys_dir"] == "app/keys"
    settings = load(tmp_path, toml='keys_dir = "prefix"\n')
    assert settings.store_options("redis", REDIS_SCHEMA)["keys_dir"] == "prefix"


def test_keys_dir_is_store_specific_in_env_and_file(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        env={"KEYLOADER_STORE_REDIS_KEYS_DIR": "redis-prefix"},
        toml='[stores.filesystem]\nkeys_dir = "fs"\n',
    )
    assert settings.store_options("redis", REDIS_SCHEMA)["keys_dir"] == "redis-prefix"
    assert settings.store_options("filesystem", FS_SCHEMA)["keys_dir"] == tmp_path / "fs"
    assert settings.keys_dir == tmp_path / "fs"  # the selected store is filesystem


def test_store_without_keys_dir_ignores_the_setting_but_refuses_the_option(tmp_path: Path) -> None:
    settings = load(tmp_path, cli=Layer(keys_dir=Path("k")), env={"KEYLOADER_KEYS_DIR": "e"})
    assert settings.store_options("memory", MEMORY_SCHEMA) == {}
    settings = load(tmp_path, cli=Layer(store_options={"keys_dir": "k"}))
    with pytest.raises(ConfigError, match="known options: none"):
        settings.store_options("memory", MEMORY_SCHEMA)


def test_bad_keys_dir_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"keys_dir \(from keyword argument keys_dir\)"):
        load(tmp_path, api=Layer(keys_dir=""))
    with pytest.raises(ConfigError, match=r"keys_dir must be a non-empty string"):
        load(tmp_path, toml='keys_dir = ""\n')
    with pytest.raises(ConfigError, match=r"keys_dir \(from .*\[stores.filesystem\]\)"):
        load(tmp_path, toml="[stores.filesystem]\nkeys_dir = 5\n")


# -- previous master key and rewrap target --------------------------------------------------


def test_previous_options_precedence_and_no_environment(tmp_path: Path) -> None:
    toml = '[previous]\nprovider = "env"\nvariable = "FILE_OLD"\n'
    env = {"KEYLOADER_ENV_VARIABLE": "CURRENT", "KEYLOADER_ENV_KEYSTORE_VERSION": "v1"}
    settings = load(
        tmp_path,
        api=Layer(previous_options={"variable": "API_OLD"}),
        cli=Layer(previous_options={"variable": "CLI_OLD"}),
        env=env,
        toml=toml,
    )
    assert settings.previous_provider == "env"
    assert settings.previous_provider_options("env", ENV_SCHEMA) == {
        "variable": "API_OLD",
        "keystore_version": "auto",  # not KEYLOADER_ENV_KEYSTORE_VERSION: that is the current's
    }
    settings = load(tmp_path, cli=Layer(previous_options={"variable": "CLI_OLD"}), env=env)
    assert settings.previous_provider_options("env", ENV_SCHEMA)["variable"] == "CLI_OLD"
    settings = load(tmp_path, env=env)
    assert settings.previous_provider_options("env", ENV_SCHEMA)["variable"] == "FILE_OLD"
    assert settings.provider_options("env", ENV_SCHEMA)["variable"] == "CURRENT"


def test_previous_table_applies_only_to_the_provider_it_names(tmp_path: Path) -> None:
    toml = '[previous]\nprovider = "vault_master_key"\naddress = "https://old"\n'
    settings = load(tmp_path, cli=Layer(previous_provider="env"), toml=toml)
    assert settings.previous_provider == "env"
    assert settings.previous_provider_options("env", ENV_SCHEMA)["variable"] == "ACRA_MASTER_KEY"
    # the alias in the table names the canonical provider
    assert settings.previous_provider_options("vault", VAULT_SCHEMA)["address"] == "https://old"


def test_previous_table_without_provider_applies_to_any(tmp_path: Path) -> None:
    settings = load(
        tmp_path, api=Layer(previous_provider="env"), toml='[previous]\nvariable = "O"\n'
    )
    assert settings.previous_provider_options("env", ENV_SCHEMA)["variable"] == "O"


def test_previous_option_errors_name_the_previous_provider(tmp_path: Path) -> None:
    settings = load(tmp_path, toml='[previous]\nprovider = "env"\nkeystore_version = "v7"\n')
    with pytest.raises(ConfigError) as caught:
        settings.previous_provider_options("env", ENV_SCHEMA)
    message = str(caught.value)
    assert "option 'keystore_version' of previous provider 'env'" in message
    assert "keyloader.toml [previous])" in message
    settings = load(tmp_path, cli=Layer(previous_options={"colour": "x"}), toml="")
    with pytest.raises(ConfigError, match=r"unknown option 'colour'.*--previous-option"):
        settings.previous_provider_options("env", ENV_SCHEMA)


def test_rewrap_target_options(tmp_path: Path) -> None:
    toml = '[rewrap.to]\nvariable = "FILE_NEW"\nkeystore_version = "v1"\n'
    env = {"KEYLOADER_ENV_VARIABLE": "CURRENT"}
    settings = load(
        tmp_path, cli=Layer(rewrap_to_options={"variable": "CLI_NEW"}), env=env, toml=toml
    )
    assert settings.rewrap_target_options("env", ENV_SCHEMA) == {
        "variable": "CLI_NEW",
        "keystore_version": "v1",
    }
    api = Layer(rewrap_to_options={"variable": "API_NEW"})
    settings = load(
        tmp_path, api=api, cli=Layer(rewrap_to_options={"variable": "CLI_NEW"}), env=env
    )
    assert settings.rewrap_target_options("env", ENV_SCHEMA)["variable"] == "API_NEW"
    settings = load(tmp_path, env=env, toml="")
    # no default invented here, and never the environment
    assert settings.rewrap_target_options("env", ENV_SCHEMA)["variable"] == "ACRA_MASTER_KEY"


def test_rewrap_target_errors_name_the_table(tmp_path: Path) -> None:
    settings = load(tmp_path, toml='[rewrap.to]\nretries = "many"\n')
    with pytest.raises(ConfigError) as caught:
        settings.rewrap_target_options("vault", VAULT_SCHEMA)
    assert "of rewrap target provider 'vault' (from " in str(caught.value)
    assert "keyloader.toml [rewrap.to])" in str(caught.value)


# -- cheapness ----------------------------------------------------------------------------------


def test_loading_settings_imports_no_plugin_machinery(tmp_path: Path) -> None:
    (tmp_path / "keyloader.toml").write_text('provider = "vault"\n[providers.vault]\nx = 1\n')
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from keyloader.config import load_settings
        before = set(sys.modules)
        settings = load_settings(env={"KEYLOADER_KEYS_DIR": "k"}, cwd=Path(sys.argv[1]))
        assert settings.provider == "vault"
        new = sorted(set(sys.modules) - before)
        print(" ".join(new))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    )
    imported = done.stdout.split()
    assert not [m for m in imported if m.startswith(("keyloader", "importlib.metadata"))], imported
