"""Daemon logging: one line per event on stderr, journald-friendly, or JSON for log shippers."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

from jq_cli.redaction import RedactingFilter

# syslog priorities as journald reads them from a "<N>" line prefix.
_SYSLOG = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
# Our messages are `event=name key=value ...`; the JSON format lifts those pairs into fields.
_PAIR = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)")
LOG_FORMATS = ("text", "json")


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_SYSLOG.get(record.levelno, 6)}>{super().format(record)}"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        for key, value in _PAIR.findall(message):
            if value[:1] in "'\"" and value[-1:] == value[:1]:
                value = value[1:-1]
            line.setdefault(key, value)
        line["msg"] = message
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # set, and cleared of passwords, by RedactingFilter
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        # journald stamps each line itself; a priority prefix lets it filter by level.
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # no password of a service URL in any line
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs every failed connection attempt with a traceback; jq logs the outage once itself.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
