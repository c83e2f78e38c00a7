"""Local stand-ins and runners for everything the bridge talks to (never deployed)."""
