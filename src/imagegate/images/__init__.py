"""Image domain logic: sizes, token accounting, encoding and decoding. Pure; no HTTP, no I/O."""
