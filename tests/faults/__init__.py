"""Attack tests for the numbered faults of issue 8, through the public API only."""
