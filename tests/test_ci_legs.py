"""CI's second leg (openai 2.x with the auriko SDK) may skip a test module only if it never calls the SDK."""

import re
from pathlib import Path

from .conftest import SDK_INDEPENDENT_MODULES

# What a test that calls through the SDK uses: the openai package, an instrumented store, or the
# simulator's clients (the fixtures of conftest.py).
_CALLS_THE_SDK = re.compile(
    r"import openai|\bopenai\.[A-Za-z]|\bOpenAI\(|auriko_obs\.instrument\(|"
    r"\b(client|async_client|instrumented|sim)\b"
)


def test_modules_left_out_of_the_sdk_leg_make_no_sdk_calls():
    folder = Path(__file__).parent
    offenders = {name for name in SDK_INDEPENDENT_MODULES if _CALLS_THE_SDK.search((folder / name).read_text())}
    assert offenders == set()


def test_the_check_sees_a_module_that_uses_the_simulators_client():
    assert _CALLS_THE_SDK.search((Path(__file__).parent / "test_store.py").read_text())
