"""What the service tells its operators: JSON logs with emails masked (`logs`), Prometheus metrics
(`metrics`), OpenTelemetry traces (`tracing`), and the background roles' /metrics and liveness server
(`ops_server`)."""
