"""The router worker: the Faust app wired from its parts (route pipeline and commit chain,
crash recovery, side-input handlers, views, dedupe, producers, monitoring)."""
