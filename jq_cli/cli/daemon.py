"""Entry points of the daemons: settings, logging and handler modules, then the loop."""
from __future__ import annotations

from jq_cli.config import load_settings
from jq_cli.logs import setup_logging


def run_worker(*, queues: str | None, concurrency: int | None, prefetch: int | None, imports: list[str],
               name: str | None) -> int:
    from jq_cli.handlers import import_modules, load_builtins
    from jq_cli.jobspec import check_name
    from jq_cli.worker import Worker

    settings = load_settings()
    setup_logging(settings.log_level)
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else settings.queue_names
    for queue in queue_list:
        check_name(queue, "queue")
    registry = load_builtins()
    import_modules([*settings.import_modules, *imports])
    worker = Worker(settings, registry, queues=queue_list, concurrency=concurrency, prefetch=prefetch, name=name)
    worker.install_signal_handlers()
    return worker.run()


def run_scheduler() -> int:
    from jq_cli.scheduler import Scheduler

    settings = load_settings()
    setup_logging(settings.log_level)
    scheduler = Scheduler(settings)
    scheduler.install_signal_handlers()
    return scheduler.run()
