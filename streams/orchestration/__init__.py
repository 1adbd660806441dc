"""Runs of the whole system: ``gar demo`` and ``gar eval --live`` start workers, tools and
publishers on the local broker and drive them with a trace. Above the app, the tools and eval."""
