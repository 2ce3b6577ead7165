"""Against the real Auriko API: skipped unless AURIKO_API_KEY is set (never in CI)."""

from __future__ import annotations

import os

import pytest

import auriko_obs

from .conftest import calls

pytestmark = pytest.mark.skipif(not os.environ.get("AURIKO_API_KEY"), reason="needs AURIKO_API_KEY")


def test_real_auriko_call_is_recorded_with_routing_metadata(db_path):
    import openai

    auriko_obs.instrument(db=db_path)
    try:
        client = openai.OpenAI(
            base_url=os.environ.get("AURIKO_BASE_URL", "https://api.auriko.ai/v1"), api_key=os.environ["AURIKO_API_KEY"]
        )
        response = client.chat.completions.create(
            model="gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": "Say hi."}]
        )
        stream = client.chat.completions.create(
            model="gpt-4o-mini", max_tokens=16, stream=True, messages=[{"role": "user", "content": "Say hi."}]
        )
        list(stream)
        frame = calls(db_path)
    finally:
        auriko_obs.uninstrument()
    assert len(frame) == 2
    routing = response.model_extra.get("routing_metadata") or {}
    assert frame.iloc[0]["provider"] == routing.get("provider")
    assert frame.iloc[0]["cost_source"] == "auriko"
    assert frame.iloc[1]["input_tokens"] > 0 and frame.iloc[1]["request_id"]
