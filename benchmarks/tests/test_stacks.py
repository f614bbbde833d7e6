

def test_variant_specs_and_builder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest as _pytest

    from wsgistack_bench.adapter import parse_variant_spec

    assert parse_variant_spec("json:server.log_format=json,ops.port=9109") == (
        "json", {"server.log_format": "json", "ops.port": "9109"}, ())
    for bad in ("json", "json:", "json:server.log_format"):
        with _pytest.raises(ValueError):
            parse_variant_spec(bad)
