"""The screens of `jq top`: the dashboard, a job's detail, help and confirmation."""
