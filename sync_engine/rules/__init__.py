"""Pure rules: plain functions over domain values, no I/O."""
