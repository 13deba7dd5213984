"""Venues: where a trader's orders are carried out (paper matching, or an exchange through ccxt)."""
