"""News sentiment in [-1, +1] judged by likely market impact.

``GemmaSentiment().analyze("Bitcoin ETF approval expected soon!")`` -> a positive score.
This session ships the offline ``lexicon`` backend (VADER from the ``vaderSentiment``
package, which bundles its lexicon, plus LeviBot's crypto overlay); the remote LLM backends
plug in behind the same ``analyze`` / ``analyze_batch`` interface.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Literal

from backend.ml.features.crypto_lexicon import WORDS, phrase_valence

URL = re.compile(r"https?://\S+|www\.\S+")
MENTION = re.compile(r"(?<!\w)@\w+")
CASHTAG = re.compile(r"(?<!\w)\$([A-Za-z]{2,10})\b")
TAG = re.compile(r"<[^>]+>")
SPACE = re.compile(r"\s+")
PHRASE_WEIGHT = 0.25  # one phrase rule moves the score like a strong single word does


def preprocess(text: str) -> str:
    """Strip HTML, URLs and @mentions, turn $BTC into BTC, collapse whitespace (emoji kept: VADER reads them)."""
    text = html.unescape(TAG.sub(" ", text))
    text = URL.sub(" ", text)
    text = MENTION.sub(" ", text)
    text = CASHTAG.sub(lambda m: m.group(1).upper(), text)
    return SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class Score:
    score: float  # -1 .. +1
    source: str  # which backend produced it


class LexiconBackend:
    name = "lexicon"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # noqa: PLC0415

        self.vader = SentimentIntensityAnalyzer()
        self.vader.lexicon.update(WORDS)

    def score(self, text: str) -> float:
        clean = preprocess(text)
        if not clean:
            return 0.0
        compound = float(self.vader.polarity_scores(clean)["compound"])
        boosted = math.atanh(max(-0.999, min(0.999, compound))) + PHRASE_WEIGHT * phrase_valence(clean) * 2
        return max(-1.0, min(1.0, math.tanh(boosted)))


class GemmaSentiment:
    """Facade over the sentiment backends (only ``lexicon`` in this build)."""

    def __init__(self, backend: Literal["lexicon"] = "lexicon") -> None:
        self.backend = LexiconBackend()

    def analyze(self, text: str) -> float:
        return self.backend.score(text)

    def analyze_batch(self, texts: list[str]) -> list[float]:
        return [self.backend.score(t) for t in texts]

    def analyze_scored(self, text: str) -> Score:
        return Score(self.analyze(text), self.backend.name)
