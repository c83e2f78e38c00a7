"""The platform every feature runs on: the consumer path and HTTP helpers (runtime),
settings, auth, retries and circuit breakers, logs, metrics, observability, and the ports more
than one feature needs."""
