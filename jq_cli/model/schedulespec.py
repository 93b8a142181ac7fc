"""What a schedule may look like: the one validation for `jq schedule add|edit|apply`, the Python
API and the HTTP shim, and the parsing of schedule files (TOML or YAML). Nothing here writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jq_cli.errors import InvalidInput
from jq_cli.model import cron
from jq_cli.model.jobspec import MAX_RETRIES, check_name, parse_priority
from jq_cli.userfiles import load_user_yaml, read_user_text

FIELDS = (
    "name",
    "job_type",
    "cron",
    "timezone",
    "payload",
    "priority",
    "max_retries",
    "queue",
    "misfire",
    "enabled",
)
EDITABLE = FIELDS[1:]


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated schedule. `priority` by name; `max_retries` None means JQ_DEFAULT_MAX_RETRIES."""

    name: str
    job_type: str
    cron: str
    timezone: str = "UTC"
    payload: dict[str, Any] | None = None
    priority: str = "medium"
    max_retries: int | None = None
    queue: str = "default"
    misfire: str = "once"
    enabled: bool = True

    @classmethod
    def parse(cls, data: dict[str, Any], where: str = "") -> ScheduleSpec:
        """Validate every field; raises InvalidInput naming the first bad one (prefixed by `where`)."""
        prefix = f"{where}: " if where else ""
        try:
            return cls._parse(data)
        except InvalidInput as exc:
            raise InvalidInput(prefix + exc.message) from None

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> ScheduleSpec:
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise InvalidInput(
                f"unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})"
            )
        for required in ("name", "job_type", "cron"):
            if data.get(required) is None:
                raise InvalidInput(f"{required} is required")
        name = check_name(data["name"], "schedule name")
        job_type = check_name(data["job_type"], "job type")
        expr = cron.check_cron(data["cron"])
        zone = _given(data, "timezone", "UTC")
        cron.parse_zone(zone)
        payload = data.get("payload")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise InvalidInput(f"payload must be a JSON object, got {type(payload).__name__}")
        priority = parse_priority(_given(data, "priority", "medium")).value
        retries = data.get("max_retries")
        if retries is not None and (
            isinstance(retries, bool)
            or not isinstance(retries, int)
            or not 0 <= retries <= MAX_RETRIES
        ):
            raise InvalidInput(
                f"max_retries must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}"
            )
        queue = check_name(_given(data, "queue", "default"), "queue")
        misfire = cron.check_misfire(_given(data, "misfire", "once"))
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidInput(f"enabled must be true or false, got {enabled!r}")
        return cls(name, job_type, expr, zone, payload, priority, retries, queue, misfire, enabled)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_schedule_file(path: str | Path) -> list[dict[str, Any]]:
    """The schedule tables of a TOML (`[[schedules]]`) or YAML (`schedules:` list) file, by its
    extension. `type` is accepted for job_type. Raises InvalidInput naming the file and the problem."""
    path = Path(path)
    text = read_user_text(path, "schedule file")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"schedule file {path} is not valid TOML: {exc}") from None
        except RecursionError:  # tomllib recurses once a level of nested arrays or tables
            raise InvalidInput(f"schedule file {path} is nested too deep") from None
    elif suffix in (".yaml", ".yml"):
        doc = load_user_yaml(text, f"schedule file {path}")
    else:
        raise InvalidInput(f"schedule file {path}: the name must end in .toml, .yaml or .yml")
    if doc is None:
        doc = {}
    if not isinstance(doc, dict) or set(doc) - {"schedules"}:
        raise InvalidInput(f"schedule file {path}: the top level must hold only a `schedules` list")
    entries = doc.get("schedules", [])
    if not isinstance(entries, list):
        raise InvalidInput(f"schedule file {path}: `schedules` must be a list")
    specs = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise InvalidInput(f"schedule file {path}: schedule {number} must be a table of fields")
        entry = dict(entry)
        if "type" in entry:
            if "job_type" in entry:
                raise InvalidInput(
                    f"schedule file {path}: schedule {number} gives both type and job_type"
                )
            entry["job_type"] = entry.pop("type")
        specs.append(entry)
    return specs


def _given(data: dict[str, Any], key: str, default: str) -> Any:
    """data[key], or `default` where it is missing or null (as YAML writes an empty value)."""
    value = data.get(key)
    return default if value is None else value
