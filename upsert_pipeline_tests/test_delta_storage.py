"""Object-store settings and locations, without a store: the options resolved from the standard
environment, the pyarrow filesystem built from them, the allow-list of what both delta-rs and
pyarrow open, and what the conditional-PUT probe does without reaching a store."""

import dagster as dg
import pyarrow.fs as pafs
import pytest
from obstore.store import S3Store, from_url

from upsert_pipeline.delta import DisallowedUriError, UriPolicy
from upsert_pipeline.delta.storage import arrow_filesystem, storage_options_for
from upsert_pipeline.delta.stores import (
    SINGLE_WRITER_ENV,
    SINGLE_WRITER_OPTION,
    _obstore_settings,
    ensure_safe_commits,
    open_store,
    single_writer,
)
from upsert_pipeline.delta.uris import DEFAULT_SCHEMES
from upsert_pipeline.resources import DeltaMergeResource, LandingResource

ENV = {
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_REGION": "eu-west-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "AWS_ALLOW_HTTP": "true",
    "AWS_PROFILE": "not-resolved",
    "GOOGLE_SERVICE_ACCOUNT": "/etc/sa.json",
    "HOME": "/root",
}
# One location per allowed scheme, in a form both delta-rs and pyarrow open.
OPENABLE = {
    "file": "/tmp/lake/orders",
    "s3": "s3://lake/orders",
    "gs": "gs://lake/orders",
    "abfs": "abfs://lake@account.dfs.core.windows.net/orders",
    "abfss": "abfss://lake@account.dfs.core.windows.net/orders",
}


def test_s3_options_come_from_the_standard_variables_and_config_wins():
    options = storage_options_for("s3://lake/orders", environ=ENV)
    assert options == {
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ALLOW_HTTP": "true",
    }
    overridden = storage_options_for(
        "s3://lake/orders", environ=ENV, overrides={"AWS_REGION": "us-east-1"}
    )
    assert overridden["AWS_REGION"] == "us-east-1"
    assert storage_options_for("gs://lake/orders", environ=ENV) == {
        "GOOGLE_SERVICE_ACCOUNT": "/etc/sa.json"
    }
    assert storage_options_for("/tmp/lake", environ=ENV) == {}


def test_the_landing_reader_gets_the_same_endpoint_credentials_and_region():
    options = storage_options_for("s3://landing/feeds", environ=ENV)
    filesystem, path = arrow_filesystem("s3://landing/feeds/orders/2026-11-02.parquet", options)
    assert isinstance(filesystem, pafs.S3FileSystem)
    assert path == "landing/feeds/orders/2026-11-02.parquet"
    settings = filesystem.__reduce__()[1][0]
    assert (settings["scheme"], settings["endpoint_override"]) == ("http", "127.0.0.1:9000")
    assert (settings["access_key"], settings["secret_key"]) == ("key", "secret")
    assert settings["region"] == "eu-west-1"


def test_both_resources_resolve_one_mapping_from_the_environment_and_their_config(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = {"AWS_REGION": "us-east-1"}
    lake = DeltaMergeResource(lake_uri="s3://lake", storage_options=config)
    landing = LandingResource(uri="s3://landing", storage_options=config)
    assert lake.delta_storage_options() == landing.resolved_storage_options(landing.uri)
    assert lake.delta_storage_options()["AWS_REGION"] == "us-east-1"
    assert DeltaMergeResource(lake_uri="/tmp/lake").delta_storage_options() is None
    opted_out = DeltaMergeResource(lake_uri="s3://lake", single_writer=True)
    assert opted_out.delta_storage_options()[SINGLE_WRITER_OPTION] == "true"


def test_secrets_in_resource_config_come_from_env_vars_at_run_time(monkeypatch):
    lake = DeltaMergeResource(
        lake_uri="s3://lake",
        storage_options={"AWS_SECRET_ACCESS_KEY": dg.EnvVar("LAKE_SECRET")},
    )
    monkeypatch.setenv("LAKE_SECRET", "from-the-environment")
    with dg.build_resources({"lake": lake}) as resources:
        options = resources.lake.delta_storage_options()
    assert options["AWS_SECRET_ACCESS_KEY"] == "from-the-environment"


@pytest.mark.parametrize("scheme", sorted(DEFAULT_SCHEMES))
def test_every_allowed_scheme_opens_in_the_landing_reader_and_the_probe(scheme):
    uri = OPENABLE[scheme]
    assert UriPolicy().check(uri, what="table") == uri
    filesystem, _ = arrow_filesystem(uri, {})
    assert isinstance(filesystem, pafs.FileSystem)
    if scheme != "file":
        assert from_url(uri) is not None  # obstore (object_store, as delta-rs) opens it too


@pytest.mark.parametrize(
    "uri",
    ["s3a://lake/orders", "az://lake/orders", "adl://lake/orders", "azure://lake/orders"],
)
def test_aliases_the_landing_reader_cannot_open_are_refused(uri):
    with pytest.raises(DisallowedUriError, match="uses scheme"):
        UriPolicy().check(uri, what="landing")


def test_canonical_adls_locations_are_allowed_and_keys_in_them_are_not():
    canonical = "abfss://container@account.dfs.core.windows.net/lake"
    assert UriPolicy().check(canonical, what="table") == canonical
    assert UriPolicy(roots=(canonical,)).check(f"{canonical}/orders", what="table")
    with pytest.raises(DisallowedUriError, match="credentials"):
        UriPolicy().check("abfss://container:key@account.dfs.core.windows.net/x", what="table")
    with pytest.raises(DisallowedUriError, match="<container>@<account>"):
        UriPolicy().check("abfss://container/lake", what="table")
    with pytest.raises(DisallowedUriError, match="credentials"):
        UriPolicy().check("s3://key:secret@bucket/lake", what="table")


def test_the_probe_gets_delta_rs_options_split_as_obstore_takes_them():
    config, client = _obstore_settings(
        {
            **ENV,
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
            "timeout": "30s",
            SINGLE_WRITER_OPTION: "true",
        }
    )
    assert client == {"allow_http": True, "timeout": "30s"}
    assert SINGLE_WRITER_OPTION not in config
    assert config["aws_endpoint_url"] == "http://127.0.0.1:9000"
    # Keys only delta-rs knows (its own unsafe-rename switch) do not stop the probe's client.
    store = open_store("s3://lake/orders", {**ENV, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"})
    assert isinstance(store, S3Store)


def test_local_tables_and_the_opt_out_are_not_probed(monkeypatch, tmp_path):
    # Nothing listens on port 9: a probe would fail; these return without one.
    ensure_safe_commits(str(tmp_path / "orders"), {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    unreachable = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true"}
    ensure_safe_commits("s3://lake/orders", {**unreachable, SINGLE_WRITER_OPTION: "true"})
    monkeypatch.setenv(SINGLE_WRITER_ENV, "true")
    assert single_writer(None)
    ensure_safe_commits("s3://lake/orders", unreachable)
    assert not single_writer({SINGLE_WRITER_OPTION: "false"})  # the option wins over the env
