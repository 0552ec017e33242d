"""Generated or vendored code, kept apart from hand-written modules (excluded from line caps and linters)."""
