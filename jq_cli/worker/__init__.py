"""The `jq worker` daemon: the Worker (daemon) holds its intake, dispatcher, pools and executor."""
