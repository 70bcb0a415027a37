"""An independent, naive reading of PROTOCOL.md used as a differential-test oracle."""
