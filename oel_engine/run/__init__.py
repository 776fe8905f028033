"""Everything that knows a run folder: its store, stage state, experience index, listing, live status."""
