"""``LEVIBOT_NOTIFY_WEBHOOKS``: where notifications go (``supervisor/notify.py`` sends them)."""

from __future__ import annotations

from urllib.parse import urlsplit

KINDS = ("json", "discord")


def parse_webhooks(text: str) -> list[tuple[str, str]]:
    """``kind:url,...`` → [(kind, url)] (ValueError naming the entry, never echoing a URL: it holds a token)."""
    out = []
    for i, item in enumerate(filter(None, (p.strip() for p in text.split(","))), start=1):
        kind, _, url = item.partition(":")
        if kind not in KINDS:
            raise ValueError(f"entry {i}: kind {kind!r}: json or discord (kind:url)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"entry {i} ({kind}): not an http(s) URL")
        out.append((kind, url))
    return out
