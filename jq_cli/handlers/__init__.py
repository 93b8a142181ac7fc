"""Job types: the built-ins and the registry for users' own handlers."""

from jq_cli.handlers.registry import (
    Cancelled,
    Handler,
    InvalidPayload,
    JobContext,
    PermanentError,
    Retry,
    Snooze,
    import_modules,
    job,
    load_builtins,
    registry,
)

__all__ = [
    "Cancelled",
    "Handler",
    "InvalidPayload",
    "JobContext",
    "PermanentError",
    "Retry",
    "Snooze",
    "import_modules",
    "job",
    "load_builtins",
    "registry",
]
