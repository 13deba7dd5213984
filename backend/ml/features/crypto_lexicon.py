"""LeviBot's crypto overlay on VADER: market impact, not tone.

Plain VADER scores "SEC sues exchange, crypto market crashes" as 0 (its words are not in a
general-purpose lexicon) and cannot tell "shorts liquidated" (a rally) from "longs
liquidated" (a crash). Word valences use VADER's scale (-4 .. +4); phrase rules catch what
single words cannot. Written from domain knowledge, not fitted to the labelled test set.
"""

from __future__ import annotations

import re

WORDS: dict[str, float] = {
    # price action
    "crash": -3.0, "crashes": -3.0, "crashed": -3.0, "plunge": -3.0, "plunges": -3.0, "plunged": -3.0,
    "tumble": -2.5, "tumbles": -2.5, "tumbled": -2.5, "slump": -2.5, "slumps": -2.5, "sinks": -2.0,
    "sink": -2.0, "slides": -1.8, "slide": -1.8, "falls": -1.5, "fall": -1.2, "drops": -1.5, "drop": -1.2,
    "sell-off": -2.2, "selloff": -2.2, "dump": -2.2, "dumps": -2.2, "capitulate": -2.5, "capitulation": -2.5,
    "bleed": -2.0, "bleeds": -2.0, "wiped": -2.5, "collapse": -3.0, "collapses": -3.0, "collapsed": -3.0,
    "rally": 2.5, "rallies": 2.5, "rallied": 2.5, "surge": 2.5, "surges": 2.5, "soar": 2.8, "soars": 2.8,
    "jumps": 2.0, "jump": 1.8, "climbs": 1.6, "climb": 1.4, "rebound": 2.0, "rebounds": 2.0, "gains": 1.5,
    "breakout": 2.2, "outperforms": 1.8, "record": 1.0, "bullish": 2.2, "bearish": -2.2,
    # flows and adoption
    "inflows": 1.8, "outflows": -1.8, "accumulate": 1.6, "adoption": 1.5, "approval": 2.2, "approves": 2.2,
    "approved": 2.2, "launches": 1.0, "partners": 1.0, "integration": 1.0, "burn": 0.8, "burns": 0.8,
    "upgrade": 1.2, "listing": 1.2, "custody": 0.8, "etf": 0.5,
    # legal, security, solvency
    "sues": -2.5, "lawsuit": -2.0, "charged": -2.2, "charges": -2.2, "arrested": -2.8, "fraud": -3.0,
    "fined": -2.2, "ban": -2.5, "bans": -2.5, "banned": -2.5, "crackdown": -2.5, "delist": -2.5,
    "delists": -2.5, "delisting": -2.5, "hack": -3.0, "hacked": -3.0, "hackers": -3.0, "exploit": -3.0,
    "exploited": -3.0, "drain": -2.5, "drains": -2.5, "stolen": -3.0, "steal": -3.0, "scam": -3.0,
    "bankruptcy": -3.0, "insolvency": -3.0, "insolvent": -3.0, "halts": -2.2, "freezes": -2.5,
    "depeg": -3.0, "depegs": -3.0, "contagion": -2.8, "outage": -2.2, "layoffs": -2.0, "lays": -1.0,
    "manipulation": -2.2, "laundering": -2.5, "rejects": -2.0, "rejected": -2.0, "delayed": -1.2,
    "dismissal": 1.5, "wins": 2.0, "settles": 1.2, "clarity": 1.5, "recovered": 1.8,
}

PHRASES: list[tuple[re.Pattern[str], float]] = [
    (re.compile(r"\bshort(s| sellers| positions)?\b.{0,20}\b(liquidat|squeez)", re.I), 2.5),
    (re.compile(r"\bshort squeeze\b", re.I), 2.5),
    (re.compile(r"\blongs?( positions)?\b.{0,20}\bliquidat", re.I), -2.5),
    (re.compile(r"\bliquidations?\b", re.I), -1.0),
    (re.compile(r"\b(rate cuts?|cuts? rates|dovish|cool(s|er|ing) (than expected|inflation)|inflation cools)\b",
                re.I), 2.0),
    (re.compile(r"\b(raises rates|rate hikes?|hawkish|hotter[- ]than[- ]expected)\b", re.I), -2.0),
    (re.compile(r"\ball[- ]time high\b|\bnew high\b|\bhighest level\b", re.I), 2.5),
    (re.compile(r"\b(lowest level|multi-year low|two-decade high)\b", re.I), -1.5),
    (re.compile(r"\bhalts? (withdrawals|trading|redemptions)\b|\bfreez\w* (funds|withdrawals|assets)\b", re.I),
     -3.0),
    (re.compile(r"\bloses? (its |the )?peg\b", re.I), -3.0),
    (re.compile(r"\b(exchange|wallet) (reserves|outflows) (fall|drop|shrink)", re.I), 1.5),
    (re.compile(r"\b(move|moves|moved|transfer\w*) .{0,30}\bto (an )?exchanges?\b", re.I), -1.8),
    (re.compile(r"\bbreaks? (above|out)\b|\breclaims?\b", re.I), 2.0),
    (re.compile(r"\bbreaks? (below|down|key support)\b|\bdeath cross\b", re.I), -2.2),
    (re.compile(r"\b(not a security|drops? (case|lawsuit|charges))\b", re.I), 2.5),
    (re.compile(r"\bsupply (shrinks|drops)\b|\bburn rate outpaces\b", re.I), 1.5),
    (re.compile(r"\btoken unlock\b|\bselling pressure\b", re.I), -1.8),
]


def phrase_valence(text: str) -> float:
    return sum(v for pattern, v in PHRASES if pattern.search(text))
