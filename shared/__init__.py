"""ERPNext Bridge: the code every function shares (core logic, ports, adapters, runtime)."""
