"""Robust text handling inside the model contract: canonicalisation (`canonical`), de-obfuscation views (`views`)
and overlapping windows for long inputs (`windows`)."""
