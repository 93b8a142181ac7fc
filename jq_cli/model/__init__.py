"""The pure model of jq, with no I/O: states, job specs, schedules, durations, retry, cron."""
