"""A callback instead of waiting (virtual hold, issue 13 part 3)."""
