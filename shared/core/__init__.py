"""Pure logic: no SDK, no network, no clock, no environment. Time and configuration come in as arguments."""
