"""The analytics store: what the engines did, in ClickHouse (embedded chDB or a server), for history queries."""
