"""Tests of the devstack stand-ins."""
