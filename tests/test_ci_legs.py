"""CI's second leg (openai 2.x with the auriko SDK) reruns every module that makes an SDK-specific kind of call."""

import re
from pathlib import Path

from .conftest import SDK_DATA_ONLY_MODULES, SDK_LEG_MODULES

# The kinds of call whose path differs between the SDKs: streams, raw responses, the Responses API,
# embeddings, async clients, the SDK's own errors or transport, and the auriko SDK.
_SDK_SPECIFIC = re.compile(
    r"stream=True|with_raw_response|\.responses\.|embeddings\.create|AsyncOpenAI|async_client|"
    r"\bimport openai\b|\bopenai\.[A-Z]|\bhttpx|\bimport auriko\b|\bfrom auriko\b"
)
TESTS = Path(__file__).parent


def _modules() -> dict[str, str]:
    return {path.name: path.read_text() for path in TESTS.rglob("test_*.py")}


def test_every_module_with_an_sdk_specific_call_runs_in_the_sdk_leg_or_says_why_not():
    specific = {name for name, text in _modules().items() if _SDK_SPECIFIC.search(text)}
    assert specific - SDK_LEG_MODULES - set(SDK_DATA_ONLY_MODULES) == set()


def test_the_lists_name_modules_that_exist_and_no_module_twice():
    names = list(_modules())
    assert len(names) == len(set(names))  # the leg selects by file name
    assert (SDK_LEG_MODULES | set(SDK_DATA_ONLY_MODULES)) - set(names) == set()
    assert SDK_LEG_MODULES & set(SDK_DATA_ONLY_MODULES) == set()


def test_the_check_sees_a_streamed_call_and_an_sdk_error():
    assert _SDK_SPECIFIC.search('client.chat.completions.create(model="m", messages=[], stream=True)')
    assert _SDK_SPECIFIC.search("with pytest.raises(openai.RateLimitError):")
    assert not _SDK_SPECIFIC.search('client.chat.completions.create(model="m", messages=[])')
