"""The stream-processing control plane: Faust app, agents, tables, dispatch, dedupe, topics."""
