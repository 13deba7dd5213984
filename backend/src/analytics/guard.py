"""What the embedded store's HTTP face will run: one read statement, checked by ClickHouse's own parser.

chDB runs in the analytics process with that process's rights: a query that reaches it unchecked can read
any file the process can (``file()``), fetch URLs (``url()``), reach other databases (``remote()``,
``mysql()``), write files (``INTO OUTFILE``, which chDB honours even under ``readonly=1``) or lift
``readonly`` again (``SETTINGS readonly=1, readonly=0``). A deny-list over the text would be one
spelling away from a hole (comments, backquotes, case); this guard asks chDB to parse the statement
(``EXPLAIN AST``: parsed, never run) and reads the tree, so it sees exactly what would be executed:

* one statement (no ``;``) of a read kind: ``SELECT``/``WITH`` (``SelectWithUnionQuery``), ``SHOW``,
  ``DESCRIBE``, ``EXISTS``;
* no ``SETTINGS`` anywhere (the server sets them), no ``FORMAT`` but a trailing one, which the server
  takes as the output format, and not the word ``OUTFILE`` anywhere, even in a literal: ``EXPLAIN``
  itself would write its output to the file named after ``INTO OUTFILE``, so that word is refused before
  the statement is parsed;
* no table function but a few that read nothing outside (``numbers``, ``zeros``, ``values``...).

What passes runs with ``readonly=1`` and bounds on time and memory, appended by the server: a second
line of defence, not the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Table functions that read nothing but their arguments.
SAFE_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series",
                                  "generateSeries", "primes", "format", "null"})
READ_KINDS = frozenset({"SelectWithUnionQuery", "ShowTables", "DescribeQuery", "ExistsTableQuery"})
# How many direct children each read kind has when the statement carries no INTO OUTFILE, SETTINGS or FORMAT.
PLAIN_CHILDREN = {"SelectWithUnionQuery": 1, "ShowTables": 0, "DescribeQuery": 1, "ExistsTableQuery": 1}
TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+([A-Za-z][A-Za-z0-9]*)\s*;?\s*\Z", re.IGNORECASE)
MAX_QUERY_BYTES = 256 * 1024


class Refused(Exception):
    """The statement is not one the HTTP face runs (the message says why, in one line)."""


@dataclass(frozen=True)
class Checked:
    sql: str  # the statement without its trailing FORMAT clause
    fmt: str | None  # that format (None: the caller's default)


@dataclass(frozen=True)
class Node:
    depth: int
    kind: str
    name: str


def parse_tree(dump: str) -> list[Node]:
    """``EXPLAIN AST``'s text: one node per line, indented by one space per level."""
    nodes = []
    for line in dump.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        words = line.strip().split(" (children")[0].split(None, 1)
        nodes.append(Node(depth, words[0], words[1] if len(words) > 1 else ""))
    return nodes


def split_format(sql: str) -> Checked:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    m = TRAILING_FORMAT.search(text)
    if m is None:
        return Checked(text, None)
    return Checked(text[: m.start()], m.group(1))


class ReadGuard:
    """``explain(sql) -> EXPLAIN AST text`` (raises on a syntax error); ``table_functions``: every table
    function the engine knows (``system.table_functions``), so a name is recognised wherever it stands."""

    def __init__(self, explain: Callable[[str], str], table_functions: frozenset[str]) -> None:
        self.explain = explain
        self.unsafe = frozenset(f.lower() for f in table_functions) - {f.lower() for f in SAFE_TABLE_FUNCTIONS}

    def check(self, sql: str) -> Checked:
        if len(sql.encode()) > MAX_QUERY_BYTES:
            raise Refused(f"query: longer than {MAX_QUERY_BYTES} bytes")
        checked = split_format(sql)
        if not checked.sql:
            raise Refused("query: empty")
        if ";" in checked.sql:
            raise Refused("query: one statement only (no ';')")
        if "outfile" in checked.sql.casefold():  # before EXPLAIN, which would honour it itself
            raise Refused("query: INTO OUTFILE is not allowed")
        tree = parse_tree(self.explain(checked.sql))
        if not tree or tree[0].kind not in READ_KINDS:
            kind = tree[0].kind if tree else "-"
            raise Refused(f"query: only a read (SELECT, WITH, SHOW, DESCRIBE, EXISTS), not {kind}")
        top = [n for n in tree if n.depth == 1]
        if len(top) != PLAIN_CHILDREN[tree[0].kind]:
            raise Refused("query: INTO OUTFILE, SETTINGS and FORMAT (but a last FORMAT) are not allowed")
        for node in tree:
            if node.kind == "Set":
                raise Refused("query: SETTINGS are not allowed (the server sets them)")
            if node.kind == "Function" and node.name.lower() in self.unsafe:
                raise Refused(f"query: table function {node.name}() is not allowed (it reaches outside the store)")
        return checked
