"""The HTTP shim's pieces that need no service: API keys from settings, and the CLI importing the
HTTP stack only for `jq serve`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from jq_cli.config import load_settings
from jq_cli.errors import InvalidInput
from jq_cli.http.keys import ApiKeys


def test_keys_come_from_the_environment_and_a_keys_file(tmp_path, monkeypatch):
    monkeypatch.delenv("JQ_API_KEY", raising=False)
    monkeypatch.delenv("JQ_API_KEYS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    assert not ApiKeys.from_settings(load_settings())
    keys_file = tmp_path / "keys"
    keys_file.write_text("# operators\nalpha-key\n\n  beta-key  \n")
    monkeypatch.setenv("JQ_API_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("JQ_API_KEY", "gamma-key")
    keys = ApiKeys.from_settings(load_settings())
    assert len(keys) == 3 and keys.accepts(b"beta-key") and not keys.accepts(b"# operators")
    assert "alpha" not in repr(keys) and "gamma" not in repr(keys)
    keys_file.write_text("# nothing here\n")
    with pytest.raises(InvalidInput, match="holds no key"):
        ApiKeys.from_settings(load_settings())


def test_jq_help_does_not_import_the_http_stack():
    code = (
        "import sys; sys.argv = ['jq', '--help']\nfrom jq_cli.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint('fastapi' in sys.modules, 'uvicorn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip().splitlines()[-1] == "False False"
    assert "serve" in out.stdout


def test_serve_without_the_extra_names_it_and_exits_2():
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.argv = ['jq', 'serve']\n"
        "from jq_cli.cli.main import main\nmain()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "jq: error: jq serve needs the http extra: pip install 'jq-cli[http]'"
    ]
