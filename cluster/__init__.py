"""`make cluster`: jq on several hosts (network namespaces), a RabbitMQ cluster and a PostgreSQL
primary with a synchronous standby; the scaling figure and the loss of any one part."""
