"""Getting events in: importers now; the Segment-compatible collector builds on the same records."""
