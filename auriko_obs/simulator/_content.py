"""Prompts in, answers out: token counts, tool-call decisions, structured output and deterministic prose."""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from typing import Any

from ._call import Answer, Call
from ._errors import SimError
from ._schema_samples import sample

TOKENS_PER_MESSAGE = 4
IMAGE_TOKENS = 85
_VOLATILE_KEYS = ("stream", "stream_options")  # do not change what the model says
_EFFORT_SCALE = {
    "none": 0.0,
    "off": 0.0,
    "minimal": 0.25,
    "low": 0.5,
    "medium": 1.0,
    "high": 2.0,
    "xhigh": 3.0,
    "max": 4.0,
}
# Filler prose for generated answers; its words are drawn at random.
_FILLER_PROSE = (
    "the router sent this request to the provider with the best score and the answer came back quickly "
    "cached prompt tokens cost less than fresh ones so long system prompts pay off when they repeat every "
    "call carries its cost latency and provider in the routing metadata for later analysis"
)
_WORDS = _FILLER_PROSE.split()


def tokens_of(text: str) -> int:
    """Returns the simulated token count of a text: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def content_seed(call: Call) -> int:
    """Returns the seed for everything this request's answer contains (same request + seed → same answer)."""
    stable = {k: v for k, v in call.body.items() if k not in _VOLATILE_KEYS}
    text = json.dumps(stable, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{call.config.seed}|{call.endpoint}|{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


# ---------------------------------------------------------------- prompts


def _part_text(part: Any) -> tuple[str, int]:
    """Returns (text, extra tokens) of one content part; images count a flat IMAGE_TOKENS."""
    if not isinstance(part, dict):
        return str(part), 0
    kind = part.get("type", "text")
    if kind in ("image_url", "input_image", "image"):
        source = json.dumps(part.get("image_url") or part.get("file_id") or "", sort_keys=True)
        return f"[image {hashlib.sha1(source.encode()).hexdigest()[:12]}]", IMAGE_TOKENS
    return str(part.get("text") or part.get("refusal") or ""), 0


def _message_text(message: dict) -> tuple[str, int]:
    """Returns (text, extra tokens) of a chat message or Responses input item, tool calls included."""
    content, extra, pieces = message.get("content"), 0, []
    if isinstance(content, str):
        pieces.append(content)
    elif isinstance(content, list):
        for part in content:
            text, tokens = _part_text(part)
            pieces.append(text)
            extra += tokens
    for tool_call in message.get("tool_calls") or []:
        function = (tool_call.get("function") or {}) if isinstance(tool_call, dict) else {}
        pieces.append(f"{function.get('name', '')}{function.get('arguments', '')}")
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        pieces.append(f"{legacy.get('name', '')}{legacy.get('arguments', '')}")
    if message.get("type") == "function_call":
        pieces.append(f"{message.get('name', '')}{message.get('arguments', '')}")
    if message.get("type") == "function_call_output":
        output = message.get("output")
        pieces.append(output if isinstance(output, str) else json.dumps(output))
    return "".join(pieces), extra


def _role_of(item: dict) -> str:
    kinds = {"function_call": "assistant", "function_call_output": "tool"}
    return str(item.get("role") or kinds.get(str(item.get("type")), "user"))


def _chat_messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if messages is None:
        raise SimError("missing_required_parameter", "messages is required.", param="messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise SimError(
            "invalid_parameter_value", "messages must be a non-empty list of message objects.", param="messages"
        )
    return messages


def _responses_items(body: dict) -> list[dict]:
    items = body.get("input")
    if items is None or items == "" or items == []:
        raise SimError("missing_required_parameter", "input is required.", param="input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise SimError("invalid_parameter_value", "input must be a string or a list of input items.", param="input")
    instructions = body.get("instructions")
    system = [{"role": "system", "content": instructions}] if isinstance(instructions, str) and instructions else []
    return system + [i for i in items if i.get("type") != "reasoning"]


def read_prompt(call: Call) -> None:
    """Sets the prompt text and input token count of a chat or Responses request (400 when malformed)."""
    if call.endpoint == "embeddings":
        return _read_embedding_inputs(call)
    items = _chat_messages(call.body) if call.endpoint == "chat.completions" else _responses_items(call.body)
    tagged, tokens = [], 0
    for item in items:
        text, extra = _message_text(item)
        tagged.append(f"<{_role_of(item)}>{text}")
        tokens += tokens_of(text) + extra + TOKENS_PER_MESSAGE
    call.prompt_text = "\n".join(tagged)
    call.input_tokens = tokens


def _read_embedding_inputs(call: Call) -> None:
    items = call.body.get("input")
    if isinstance(items, str) or (isinstance(items, list) and items and all(isinstance(i, int) for i in items)):
        items = [items]
    if not isinstance(items, list) or not items or any(i in ("", []) for i in items):
        raise SimError(
            "missing_required_parameter" if not items else "invalid_parameter_value",
            "input must be a non-empty string, a list of strings or token arrays.",
            param="input",
        )
    call.embedding_inputs = items
    call.input_tokens = sum(len(i) if isinstance(i, list) else max(1, tokens_of(str(i))) for i in items)


# ---------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tool:
    name: str
    parameters: dict


def requested_tools(call: Call) -> tuple[list[Tool], str]:
    """Returns the function tools offered and the tool choice ("none" | "auto" | "required" | a tool name).

    Legacy ``functions`` / ``function_call`` become tools only when ``tools`` is absent (modern wins).
    """
    body = call.body
    raw_tools, choice = body.get("tools"), body.get("tool_choice")
    if not raw_tools and body.get("functions") and call.endpoint == "chat.completions":
        raw_tools = [{"type": "function", "function": f} for f in body["functions"] if isinstance(f, dict)]
        choice = body.get("function_call")
    tools = []
    for tool in raw_tools or []:
        if isinstance(tool, dict) and tool.get("type", "function") == "function":
            function = tool.get("function")
            spec = function if isinstance(function, dict) else tool
            if spec.get("name"):
                tools.append(Tool(str(spec["name"]), spec.get("parameters") or {"type": "object", "properties": {}}))
    return tools, _choice_name(choice)


def hosted_tools(call: Call) -> list[str]:
    """Returns the types of provider-hosted tools requested (web_search …), which the simulator ignores."""
    return [
        str(t.get("type"))
        for t in call.body.get("tools") or []
        if isinstance(t, dict) and t.get("type") not in (None, "function")
    ]


def _choice_name(choice: Any) -> str:
    if choice in (None, "auto"):
        return "auto"
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict):  # {"type":"function","function":{"name"}} | {"type":"function","name"} | {"name"}
        function = choice.get("function")
        spec = function if isinstance(function, dict) else choice
        if spec.get("name"):
            return str(spec["name"])
        if choice.get("type") in ("none", "auto", "required"):
            return choice["type"]
    return "auto"


def _last_turn(call: Call) -> tuple[str, bool]:
    """Returns (the last user text, whether the conversation ends with a tool result)."""
    body = call.body
    items = body.get("messages") if call.endpoint == "chat.completions" else body.get("input")
    if isinstance(items, str):
        return items, False
    items = [i for i in items or [] if isinstance(i, dict)]
    if not items:
        return "", False
    last = items[-1]
    after_tool = last.get("role") in ("tool", "function") or last.get("type") == "function_call_output"
    user_text = next(
        (
            _message_text(i)[0]
            for i in reversed(items)
            if i.get("role", "user") == "user" and i.get("type", "message") == "message"
        ),
        "",
    )
    return user_text, after_tool


def chosen_tools(call: Call) -> list[Tool]:
    """Returns the tools the simulated model calls, by this rule:

    none when ``tool_choice`` is "none"; the named tool for a named choice; otherwise, unless the conversation
    ends with a tool result (and the choice is not "required"), every tool whose name the last user message
    mentions, else the first tool when the choice is "required" or that message contains the word "tool".
    ``parallel_tool_calls: false`` keeps only the first.
    """
    tools, choice = requested_tools(call)
    if not tools or choice == "none":
        return []
    if choice not in ("auto", "required"):
        named = [t for t in tools if t.name == choice]
        if not named:
            raise SimError(
                "invalid_parameter_value", f"tool_choice names {choice!r}, which is not in tools.", param="tool_choice"
            )
        return named
    user_text, after_tool = _last_turn(call)
    if after_tool and choice != "required":
        return []
    lowered = user_text.lower()
    picked = [t for t in tools if t.name.lower() in lowered]
    if not picked and (choice == "required" or "tool" in lowered):
        picked = tools[:1]
    return picked[:1] if call.body.get("parallel_tool_calls") is False else picked


# ---------------------------------------------------------------- answers


def response_format(call: Call) -> tuple[str, dict]:
    """Returns (format type, JSON schema) from ``response_format`` (chat) or ``text.format`` (Responses)."""
    if call.endpoint == "responses":
        text = call.body.get("text")
        spec = text.get("format") if isinstance(text, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        return str(spec.get("type") or "text"), spec.get("schema") or {}
    spec = call.body.get("response_format")
    spec = spec if isinstance(spec, dict) else {}
    schema = (spec.get("json_schema") or {}).get("schema") if isinstance(spec.get("json_schema"), dict) else None
    return str(spec.get("type") or "text"), schema or {}


def output_cap(call: Call) -> int | None:
    """Returns the caller's output-token cap (max_tokens, max_completion_tokens or max_output_tokens)."""
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = call.body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise SimError("invalid_parameter_value", f"{key} must be at least 1.", param=key)
            return value
    return None


def reasoning_effort(call: Call) -> str | None:
    """Returns the requested reasoning effort (chat ``reasoning_effort`` or Responses ``reasoning.effort``)."""
    reasoning = call.body.get("reasoning")
    effort = call.body.get("reasoning_effort") or (reasoning.get("effort") if isinstance(reasoning, dict) else None)
    return str(effort) if effort else None


def _prose(rng: random.Random, target_tokens: int) -> str:
    """Returns a sentence of about ``target_tokens`` tokens (never more) drawn from a small vocabulary."""
    text = " ".join(rng.choices(_WORDS, k=target_tokens))
    limit = target_tokens * 4 - 1  # room for the full stop
    if len(text) > limit:
        text = text[: text.rfind(" ", 0, limit + 1)] if " " in text[: limit + 1] else text[:limit]
    return text[:1].upper() + text[1:] + "."


def _reasoning_tokens(call: Call, rng: random.Random) -> int:
    if call.model is None or not call.routed_model.reasoning:
        return 0
    scale = _EFFORT_SCALE.get(reasoning_effort(call) or "medium", 1.0)
    return int((64 + rng.randrange(192)) * scale)


def _tool_call_id(call: Call, index: int) -> str:
    return "call_" + hashlib.sha256(f"{call.content_seed}:{index}".encode()).hexdigest()[:24]


def compose_answer(call: Call) -> Answer:
    """Returns the simulated model's answer: tool calls, a JSON document or prose, capped by the token limit."""
    rng = random.Random(call.content_seed)
    reasoning = _reasoning_tokens(call, rng)
    tools = chosen_tools(call)
    if tools:
        calls = [
            {"id": _tool_call_id(call, i), "name": t.name, "arguments": json.dumps(sample(t.parameters))}
            for i, t in enumerate(tools)
        ]
        return _capped_tool_calls(call, calls, reasoning)
    kind, schema = response_format(call)
    if kind == "json_schema":
        text = json.dumps(sample(schema))
    elif kind == "json_object":
        text = json.dumps({"answer": _prose(rng, 8 + rng.randrange(16))})
    else:
        text = _prose(rng, 12 + rng.randrange(60))
    return _capped_text(call, text, reasoning)


def _capped_text(call: Call, text: str, reasoning: int) -> Answer:
    cap, finish = output_cap(call), "stop"
    if cap is not None and reasoning + tokens_of(text) > cap:
        reasoning = min(reasoning, cap)
        text, finish = text[: (cap - reasoning) * 4], "length"
    return Answer(text, [], finish, reasoning + tokens_of(text), reasoning)


def _capped_tool_calls(call: Call, calls: list[dict], reasoning: int) -> Answer:
    cap, finish = output_cap(call), "tool_calls"
    visible = sum(tokens_of(c["name"] + c["arguments"]) for c in calls)
    if cap is not None and reasoning + visible > cap:  # truncated mid-arguments, as real models are
        reasoning = min(reasoning, cap)
        first = calls[0]
        room = max(0, (cap - reasoning) * 4 - len(first["name"]))
        calls, finish = [{**first, "arguments": first["arguments"][:room]}], "length"
        visible = tokens_of(first["name"] + calls[0]["arguments"])
    return Answer(None, calls, finish, reasoning + visible, reasoning)
