"""Local stand-ins for Google AI Studio ``generateContent``, an OpenAI-compatible
``/v1/chat/completions`` server and the Dune API, on loopback.

They speak the real wire formats and can be told to misbehave: ``plan`` holds the next
behaviours (``ok``, ``429``, ``500``, ``503``, ``slow``, ``malformed``, ``prose``,
``fenced``, ``partial``, ``out_of_range``, ``no_schema``, ``sleep:<s>``); an empty plan means ``ok``.
The "model" scores each item by keywords, so a remote score is told apart from the lexicon's.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ITEM = re.compile(r"^(\d+)\. (.*)$", re.MULTILINE)
BULL = ("approval", "approve", "surge", "rally", "inflow", "adopt", "record high")
BEAR = ("hack", "ban", "sue", "crash", "liquidat", "outflow", "exploit")


def model_score(text: str) -> float:
    t = text.lower()
    return 0.9 if any(w in t for w in BULL) else -0.9 if any(w in t for w in BEAR) else 0.1


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plan: deque[str] = deque()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                outer.handle(self, "POST")

            def do_GET(self) -> None:  # noqa: N802
                outer.handle(self, "GET")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self.lock:
            mode = self.plan.popleft() if self.plan else "ok"
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"_raw": raw.decode(errors="replace")}
            self.requests.append({"method": method, "path": h.path, "body": body, "mode": mode,
                                  "headers": dict(h.headers), "at": time.time()})
        if mode.startswith("sleep:"):
            time.sleep(float(mode.split(":", 1)[1]))
            mode = "ok"
        if mode == "slow":
            time.sleep(5)
        if mode == "500":
            return self.reply(h, 500, b'{"error": {"code": 500, "message": "Internal error"}}')
        if mode == "503":
            return self.reply(h, 503, b"<html>Service Unavailable</html>")
        if mode == "malformed":
            return self.reply(h, 200, b'{"candidates": [{"content": ')
        code, payload, headers = self.route(h, method, body, mode)
        self.reply(h, code, json.dumps(payload).encode(), headers)

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out first

    def route(self, h: BaseHTTPRequestHandler, method: str, body: dict[str, Any],
              mode: str) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def calls(self, path_part: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if path_part in r["path"]]


def answer_text(prompt: str, mode: str) -> str:
    items = [(int(i), t) for i, t in ITEM.findall(prompt)]
    if mode == "partial":
        items = items[:-1]
    scores = [{"i": i, "score": 3.0 if mode == "out_of_range" else model_score(t)} for i, t in items]
    text = json.dumps({"scores": scores})
    if mode == "fenced":
        return f"Sure! Here are the scores:\n```json\n{text}\n```"
    if mode == "prose":
        return "I think the news is mostly positive for the market."
    return text


class LLMServer(FakeServer):
    """Gemini ``POST /v1beta/models/{model}:generateContent`` and OpenAI ``POST /v1/chat/completions``."""

    api_key = "test-key"

    def route(self, h: BaseHTTPRequestHandler, method: str, body: dict[str, Any],
              mode: str) -> tuple[int, Any, dict[str, str]]:
        if h.path.endswith(":generateContent"):
            return self.gemini(h, body, mode)
        if h.path.endswith("/chat/completions"):
            return self.openai(h, body, mode)
        return 404, {"error": {"code": 404, "message": "not found"}}, {}

    def gemini(self, h: BaseHTTPRequestHandler, body: dict[str, Any], mode: str) -> tuple[int, Any, dict[str, str]]:
        if h.headers.get("x-goog-api-key") != self.api_key:
            return 400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}, {}
        if "systemInstruction" in body or "responseMimeType" in body.get("generationConfig", {}):
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                   "message": "Developer instruction / JSON mode is not enabled for models/gemma"}}, {}
        if mode == "429":
            return 429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota exceeded",
                                   "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                                "retryDelay": "1s"}]}}, {}
        prompt = body["contents"][0]["parts"][0]["text"]
        return 200, {"candidates": [{"content": {"role": "model", "parts": [{"text": answer_text(prompt, mode)}]},
                                     "finishReason": "STOP", "index": 0}],
                     "usageMetadata": {"promptTokenCount": len(prompt) // 4},
                     "modelVersion": h.path.split("/models/")[1].split(":")[0]}, {}

    def openai(self, h: BaseHTTPRequestHandler, body: dict[str, Any], mode: str) -> tuple[int, Any, dict[str, str]]:
        if mode == "429":
            return 429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, {"Retry-After": "1"}
        if mode == "no_schema" and "response_format" in body:
            return 400, {"error": {"message": "response_format json_schema is not supported", "type": "invalid"}}, {}
        prompt = body["messages"][-1]["content"]
        return 200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": answer_text(prompt, mode)}}]}, {}


class DuneServer(FakeServer):
    """``POST /api/v1/query/{id}/execute``, ``POST /api/v1/sql/execute``,
    ``GET /api/v1/execution/{id}/status`` and ``.../results``."""

    api_key = "dune-key"

    def __init__(self, rows: list[dict[str, Any]] | None = None, pending_polls: int = 1) -> None:
        self.rows = rows if rows is not None else [{
            "active_addresses_24h": 912345, "exchange_inflow_usd": 1.25e9,
            "exchange_outflow_usd": 1.40e9, "whale_transactions_count": 37}]
        self.pending_polls = pending_polls
        self.executions: dict[str, int] = {}
        self.ids = itertools.count(1)
        super().__init__()

    def route(self, h: BaseHTTPRequestHandler, method: str, body: dict[str, Any],
              mode: str) -> tuple[int, Any, dict[str, str]]:
        if h.headers.get("X-Dune-Api-Key") != self.api_key:
            return 401, {"error": "invalid API Key"}, {}
        if mode == "429":
            return 429, {"error": "Too many requests"}, {"Retry-After": "1"}
        path = h.path.split("?")[0]
        if method == "POST" and (path.endswith("/execute")):
            eid = f"01HKZ{next(self.ids):021d}"
            self.executions[eid] = 0
            return 200, {"execution_id": eid, "state": "QUERY_STATE_PENDING"}, {}
        m = re.match(r"^/api/v1/execution/([^/]+)/(status|results)$", path)
        if method != "GET" or not m or m.group(1) not in self.executions:
            return 404, {"error": "not found"}, {}
        eid, what = m.groups()
        if mode == "fail":
            return 200, {"execution_id": eid, "state": "QUERY_STATE_FAILED", "is_execution_finished": True,
                         "error": {"type": "FAILED_TYPE_EXECUTION_FAILED", "message": "line 1: syntax error"}}, {}
        self.executions[eid] += what == "status"
        done = self.executions[eid] > self.pending_polls
        state = "QUERY_STATE_COMPLETED" if done else "QUERY_STATE_EXECUTING"
        out: dict[str, Any] = {"execution_id": eid, "query_id": 0, "state": state, "is_execution_finished": done}
        if what == "results" and done:
            out["result"] = {"rows": self.rows, "metadata": {"column_names": list(self.rows[0]) if self.rows else [],
                                                             "row_count": len(self.rows)}}
        return 200, out, {}


class NansenServer(FakeServer):
    """``POST /api/v1/tgm/flow-intelligence`` (Nansen API v1): the documented request and response shapes,
    401 without the key, 422 for an unknown chain, 429 with ``retry-after`` and rate-limit headers."""

    api_key = "nansen-key"
    chains = ("ethereum", "solana", "base", "arbitrum", "bnb", "polygon")

    def __init__(self) -> None:
        self.flows: dict[str, dict[str, float]] = {}  # token address -> segment net flows; unknown: empty data
        super().__init__()

    def route(self, h: BaseHTTPRequestHandler, method: str, body: dict[str, Any],
              mode: str) -> tuple[int, Any, dict[str, str]]:
        if method != "POST" or h.path.split("?")[0] != "/api/v1/tgm/flow-intelligence":
            return 404, {"detail": "Not Found"}, {}
        if h.headers.get("apiKey") != self.api_key:
            return 401, {"detail": "Invalid API key"}, {}
        if mode == "429":
            return 429, {"detail": "Rate limit exceeded"}, {"retry-after": "2", "x-ratelimit-remaining-second": "0"}
        if body.get("chain") not in self.chains or not body.get("token_address"):
            return 422, {"detail": [{"loc": ["body", "chain"], "msg": "Input should be a supported chain",
                                     "type": "enum"}]}, {}
        if mode == "wrong_shape":
            return 200, {"data": [{"smart_trader_net_flow_usd": "n/a"}]}, {}
        flows = self.flows.get(str(body["token_address"]).lower())
        if flows is None:
            return 200, {"data": [], "pagination": {"page": 1, "per_page": 10, "is_last_page": True}}, {}
        row = {f"{seg}_{kind}": 0.0 for seg in ("public_figure", "top_pnl", "whale", "smart_trader", "exchange",
                                                 "fresh_wallets") for kind in ("net_flow_usd", "avg_flow_usd")}
        row.update({f"{seg}_wallet_count": 3 for seg in ("public_figure", "top_pnl", "whale", "smart_trader",
                                                          "exchange", "fresh_wallets")})
        row.update(flows)
        return 200, {"data": [row]}, {"x-ratelimit-remaining-second": "19"}
