"""The third-party cassettes carry their origin and licence, and no credential."""

import re
from pathlib import Path

import yaml

CASSETTES = Path(__file__).parent / "cassettes"
KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|ak_[A-Za-z0-9_]{8,}|sess-[A-Za-z0-9]{8,})")


def test_cassettes_hold_no_api_key_and_only_the_placeholder_authorization():
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        assert not KEY_LIKE.search(text), path.name
        for interaction in yaml.safe_load(text)["interactions"]:
            headers = {k.lower(): v for k, v in interaction["request"]["headers"].items()}
            assert headers.get("authorization") == ["Bearer test_openai_api_key"], path.name
            assert "api-key" not in headers and "openai-organization" not in headers


def test_the_origin_and_the_apache_licence_are_kept_beside_the_cassettes():
    readme = (CASSETTES / "README.md").read_text()
    assert "opentelemetry-python-contrib" in readme and re.search(r"\b[0-9a-f]{40}\b", readme)
    assert "Apache License" in (CASSETTES / "LICENSE").read_text()
