"""Entry points of the daemons: settings, logging, metrics and handler modules, then the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from jq_cli.config import Settings, load_settings, read_config_file, split_names
from jq_cli.errors import InvalidInput
from jq_cli.observe.logs import LOG_FORMATS, setup_logging

if TYPE_CHECKING:
    from jq_cli.observe.metrics import DaemonMetrics


def settings_loader(config: str | None) -> Callable[[], Settings]:
    """Settings from the environment, with an env-format file on top when given (`--config`, or
    the JQ_CONFIG that `jq --config FILE` sets): the file SIGHUP re-reads, since a running
    process's environment cannot change. Values in the file win over the environment: it is the
    more specific of the two. Raises InvalidInput for a file that is not there."""
    if config is not None:
        read_config_file(config)  # a missing file fails now, not at the first reload
    return lambda: load_settings(config_file=config)


def find_modules(modules: list[str]) -> list[str]:
    """Make the handler modules importable as Celery and RQ do: the current directory is searched
    first (a console script's sys.path holds only its own folder). `myjobs.py` means `myjobs`.
    Raises InvalidInput naming the search path for a module that is not on it."""
    import importlib.util
    import os
    import sys

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    names = []
    for module in modules:
        name = module[:-3].replace(os.sep, ".") if module.endswith(".py") else module
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False  # a parent package that is missing: the same answer
        if not found:
            where = ", ".join(p or "." for p in sys.path if not p.endswith(".zip"))
            raise InvalidInput(
                f"cannot import handler module {module!r}: not found in the search path "
                f"({where}); run from the folder that holds it or set PYTHONPATH"
            )
        names.append(name)
    return names


def _start(
    role: str, config: str | None, log_format: str, metrics_port: int | None
) -> tuple[Callable[[], Settings], Settings, DaemonMetrics | None]:
    if log_format not in LOG_FORMATS:
        raise InvalidInput(
            f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}"
        )
    loader = settings_loader(config)
    settings = loader()
    setup_logging(settings.log_level, log_format)
    metrics = None
    if metrics_port is not None:
        from jq_cli.observe.metrics import DaemonMetrics

        metrics = DaemonMetrics(role)
        try:
            metrics.serve(metrics_port)
        except OSError as exc:
            raise InvalidInput(f"--metrics-port {metrics_port}: {exc.strerror}") from None
    return loader, settings, metrics


def run_worker(
    *,
    queues: str | None,
    concurrency: int | None,
    prefetch: int | None,
    imports: list[str],
    name: str | None,
    config: str | None = None,
    log_format: str = "text",
    metrics_port: int | None = None,
    pool: str = "thread",
) -> int:
    from jq_cli.handlers import import_modules, load_builtins
    from jq_cli.model.jobspec import check_name
    from jq_cli.worker.daemon import Worker

    loader, settings, metrics = _start("worker", config, log_format, metrics_port)
    queue_list = split_names(queues) if queues else settings.queue_names
    for queue in queue_list:
        check_name(queue, "queue")
    registry = load_builtins()
    import_modules(find_modules([*settings.import_modules, *imports]))
    worker = Worker(
        settings,
        registry,
        queues=queue_list,
        concurrency=concurrency,
        prefetch=prefetch,
        name=name,
        metrics=metrics,
        reload_settings=loader,
        pool=pool,
    )
    worker.install_signal_handlers()
    return worker.run()


def run_scheduler(
    *, config: str | None = None, log_format: str = "text", metrics_port: int | None = None
) -> int:
    from jq_cli.scheduler.daemon import Scheduler

    loader, settings, metrics = _start("scheduler", config, log_format, metrics_port)
    scheduler = Scheduler(settings, reload_settings=loader)
    if metrics is not None:
        scheduler.metrics = metrics
    scheduler.install_signal_handlers()
    return scheduler.run()
