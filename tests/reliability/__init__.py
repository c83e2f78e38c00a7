"""Reliability suites too long for `make test`: `make reliability` runs them."""
