"""``gar audit``: replay the decisions topic, re-derive, check dual chains, summarise."""
