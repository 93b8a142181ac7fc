"""`jq top`: the Textual dashboard. Only `jq top` imports this package's Textual parts (app.py,
widgets/, screens/); source.py and plain.py work without Textual, for `jq top --once`."""
