"""Remote LLM sentiment backends: Google AI Studio (Gemma) and OpenAI-compatible servers.

Both judge a batch of texts in one request and answer a JSON array of scores. What comes
back is parsed defensively: code fences, prose around the JSON, out-of-range numbers and
missing items never crash; a missing item is ``None`` and the caller decides (retry it,
or fall back to the lexicon). Errors are split by what the caller should do:
``RetryLater`` (429: wait the time the server named), ``RemoteUnavailable`` (5xx, timeout,
garbage: back off, then fall back), ``RemoteRejected`` (4xx: our request or key is wrong;
retrying will not help).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import httpx

from backend.src.core.retry import retry_after_s as retry_after

INSTRUCTIONS = (
    "You rate crypto news by its likely impact on crypto prices over the next hours, not by its tone.\n"
    "Score each item from -1.0 (very bearish: hacks, bans, lawsuits, liquidations, outflows, crashes) "
    "through 0.0 (no market impact) to +1.0 (very bullish: approvals, adoption, inflows, rallies, upgrades).\n"
    'Answer with JSON only, no prose and no code fences: {"scores": [{"i": 0, "score": 0.4}, ...]} '
    "with exactly one entry per item, i being the item's number."
)
FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)
PAIR = re.compile(r'"(?:i|index|id)"\s*:\s*(\d+)\s*,\s*"score"\s*:\s*(-?\d+(?:\.\d+)?)')
SCHEMA = {
    "type": "object",
    "properties": {"scores": {"type": "array", "items": {
        "type": "object",
        "properties": {"i": {"type": "integer"}, "score": {"type": "number", "minimum": -1, "maximum": 1}},
        "required": ["i", "score"], "additionalProperties": False}}},
    "required": ["scores"], "additionalProperties": False,
}


class RemoteError(Exception):
    pass


class RetryLater(RemoteError):
    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class RemoteUnavailable(RemoteError):
    """5xx, timeout, connection refused or a body we cannot read: back off, then fall back."""


class RemoteRejected(RemoteError):
    """4xx other than 429: bad key, unknown model, refused prompt. Retrying will not help."""


def user_prompt(texts: list[str]) -> str:
    items = "\n".join(f"{i}. {t}" for i, t in enumerate(texts))
    return f"Items ({len(texts)}):\n{items}"


def clamp(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(x):
        return None
    return max(-1.0, min(1.0, x))


def _load_json(text: str) -> Any:
    text = FENCE.sub("", text.strip()).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for open_c, close_c in (("{", "}"), ("[", "]")):
        start, end = text.find(open_c), text.rfind(close_c)
        if 0 <= start < end:
            try:
                return json.loads(text[start:end + 1])
            except json.JSONDecodeError:
                continue
    return None


def parse_scores(text: str, n: int) -> list[float | None]:
    """Scores for items 0..n-1 from whatever the model wrote; ``None`` where it gave none."""
    out: list[float | None] = [None] * n
    data = _load_json(text)
    if isinstance(data, dict):
        data = next((data[k] for k in ("scores", "results", "items") if isinstance(data.get(k), list)), None)
    if isinstance(data, list):
        for pos, entry in enumerate(data):
            if isinstance(entry, dict):
                idx, value = entry.get("i", entry.get("index", entry.get("id", pos))), entry.get("score")
            else:
                idx, value = pos, entry
            if isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < n and out[idx] is None:
                out[idx] = clamp(value)
        return out
    for m in PAIR.finditer(text):  # not JSON at all: salvage "i": k, "score": x pairs
        idx = int(m.group(1))
        if idx < n and out[idx] is None:
            out[idx] = clamp(m.group(2))
    return out


def retry_after_s(resp: httpx.Response, default: float = 5.0) -> float:
    """Retry-After (seconds or an HTTP date); else Google's RetryInfo ``retryDelay: "12s"`` in the body."""
    header = retry_after(resp.headers.get("Retry-After"))
    if header is not None:
        return header
    try:
        for d in resp.json().get("error", {}).get("details", []):
            delay = str(d.get("retryDelay", ""))
            if delay.endswith("s"):
                return max(0.0, float(delay[:-1]))
    except (ValueError, AttributeError, TypeError):
        pass
    return default


class RemoteBackend:
    name = "remote"

    def __init__(self, http: httpx.Client, timeout_s: float) -> None:
        self.http = http
        self.timeout_s = timeout_s

    def post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        try:
            resp = self.http.post(url, json=body, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException as exc:
            raise RemoteUnavailable(f"{self.name}: timed out after {self.timeout_s:.0f}s") from exc
        except httpx.TransportError as exc:
            raise RemoteUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 429:
            raise RetryLater(f"{self.name}: 429 rate limited", retry_after_s(resp))
        if resp.status_code >= 500:
            raise RemoteUnavailable(f"{self.name}: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise RemoteRejected(f"{self.name}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError as exc:
            raise RemoteUnavailable(f"{self.name}: response body is not JSON") from exc

    def complete(self, texts: list[str]) -> str:
        raise NotImplementedError

    def score_batch(self, texts: list[str]) -> list[float | None]:
        return parse_scores(self.complete(texts), len(texts))


class GemmaBackend(RemoteBackend):
    """``POST /v1beta/models/{model}:generateContent``. Gemma takes neither a system
    instruction nor JSON mode there, so the instructions travel in the user turn."""

    name = "gemma"

    def __init__(self, http: httpx.Client, base_url: str, model: str, api_key: str, timeout_s: float) -> None:
        super().__init__(http, timeout_s)
        self.url = f"{base_url.rstrip('/')}/v1beta/models/{model}:generateContent"
        self.api_key = api_key

    def complete(self, texts: list[str]) -> str:
        body = {"contents": [{"role": "user", "parts": [{"text": INSTRUCTIONS + "\n\n" + user_prompt(texts)}]}],
                "generationConfig": {"temperature": 0.0, "maxOutputTokens": 32 * len(texts) + 64}}
        data = self.post(self.url, body, {"x-goog-api-key": self.api_key})
        try:
            candidate = data["candidates"][0]
            return "".join(p.get("text", "") for p in candidate["content"]["parts"])
        except (KeyError, IndexError, TypeError) as exc:
            reason = data.get("promptFeedback", {}).get("blockReason") if isinstance(data, dict) else None
            if reason:
                raise RemoteRejected(f"gemma: prompt blocked ({reason})") from exc
            raise RemoteUnavailable("gemma: response has no candidates[0].content.parts") from exc


class OpenAIBackend(RemoteBackend):
    """``POST {base}/chat/completions`` on vLLM, Ollama, llama.cpp server, ... A JSON-schema
    response format is asked for; a server that refuses it (400) is asked again without."""

    name = "openai"

    def __init__(self, http: httpx.Client, base_url: str, model: str, api_key: str | None, timeout_s: float) -> None:
        super().__init__(http, timeout_s)
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.json_schema = True

    def complete(self, texts: list[str]) -> str:
        body: dict[str, Any] = {
            "model": self.model, "temperature": 0.0, "max_tokens": 32 * len(texts) + 64,
            "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": user_prompt(texts)}],
        }
        if self.json_schema:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "sentiment_scores", "strict": True, "schema": SCHEMA}}
        try:
            data = self.post(self.url, body, self.headers)
        except RemoteRejected as exc:
            if not (self.json_schema and "response_format" in str(exc)):
                raise
            self.json_schema = False  # this server has no structured output; prompt-only JSON from now on
            return self.complete(texts)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise RemoteUnavailable("openai: response has no choices[0].message.content") from exc
        if not isinstance(content, str):
            raise RemoteUnavailable("openai: message content is not text")
        return content
