"""What many tests share: settable clocks, in-memory fakes of the ports, loopback receivers of
webhooks, and Frappe's webhook bodies and signatures."""
