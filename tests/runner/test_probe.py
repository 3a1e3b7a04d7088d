"""Version probing: real `--version` runs of the fakes and of small stand-in executables."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runner.agents.aider import AiderAdapter
from runner.agents.codex import CodexAdapter
from runner.agents.command import CommandAdapter
from runner.agents.gemini import GeminiAdapter
from runner.agents.opencode import OpenCodeAdapter
from runner.agents.probe import ProbeError, check_version, parse_version, probe_version

FAKES = Path(__file__).resolve().parents[1] / "fakes"


@pytest.fixture(autouse=True)
def _python_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")


def executable(tmp_path: Path, body: str, name: str = "cli") -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("codex-cli 0.171.0", "0.171.0"),
        ("1.18.33\n", "1.18.33"),
        ("aider 0.86.2", "0.86.2"),
        ("2.1.332 (Claude Code)", "2.1.332"),
        ("no digits here", None),
    ],
)
def test_parse_version(text: str, version: str | None) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize(
    ("version", "spec", "problem"),
    [
        ("0.171.0", ">=0.171,<1", None),
        ("0.172", ">=0.171,<1", None),
        ("0.90.0", ">=0.171,<1", "older than"),
        ("1.0.0", ">=0.171,<1", "newer than"),
        ("2.1.300", ">=2.1.300,<2.2", None),
        ("2.2.0", ">=2.1.300,<2.2", "newer than"),
        ("9.9", "*", None),
        ("1.2.3", "==1.2.3", None),
        ("1.2.4", "==1.2.3", "outside"),
    ],
)
def test_check_version(version: str, spec: str, problem: str | None) -> None:
    assert check_version(version, spec) == problem


def test_check_version_rejects_bad_spec() -> None:
    with pytest.raises(ValueError, match="bad version clause"):
        check_version("1.0", "~1.0")


@pytest.mark.parametrize(
    ("adapter_cls", "cli", "version"),
    [
        (CodexAdapter, "codex", "0.171.0"),
        (OpenCodeAdapter, "opencode", "1.18.33"),
        (GeminiAdapter, "gemini", "0.61.0"),
        (AiderAdapter, "aider", "0.86.2"),
    ],
)
def test_probe_fake_reports_supported_version(
    adapter_cls: type[CodexAdapter], cli: str, version: str
) -> None:
    adapter = adapter_cls(binary=str(FAKES / f"fake_{cli}.py"))
    assert adapter.probe().version == version
    assert adapter.probe(str(FAKES / f"fake_{cli}.py")).version == version


@pytest.mark.parametrize(
    ("adapter_cls", "message"),
    [
        (CodexAdapter, "codex not found on PATH (set STONEFORGE_CODEX_BIN)"),
        (OpenCodeAdapter, "opencode not found on PATH (set STONEFORGE_OPENCODE_BIN)"),
        (GeminiAdapter, "gemini not found on PATH (set STONEFORGE_GEMINI_BIN)"),
        (AiderAdapter, "aider not found on PATH (set STONEFORGE_AIDER_BIN)"),
    ],
)
def test_probe_missing_binary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, adapter_cls: type[CodexAdapter], message: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: nothing on PATH
    monkeypatch.delenv(message.split("set ")[1].rstrip(")"), raising=False)
    with pytest.raises(ProbeError) as info:
        adapter_cls(binary=None).probe()
    assert str(info.value) == message


def test_probe_old_version(tmp_path: Path) -> None:
    old = executable(tmp_path, "print('codex-cli 0.90.0')")
    with pytest.raises(ProbeError) as info:
        CodexAdapter(binary=old).probe()
    assert str(info.value) == "codex 0.90.0 is older than the supported >=0.171,<1"


def test_probe_too_new_version(tmp_path: Path) -> None:
    new = executable(tmp_path, "print('1.0.0')")
    with pytest.raises(ProbeError, match="gemini 1.0.0 is newer than the supported >=0.61,<1"):
        GeminiAdapter(binary=new).probe()


def test_probe_failing_version_command(tmp_path: Path) -> None:
    broken = executable(tmp_path, "import sys\nprint('Error: node is too old', file=sys.stderr)\n"
                        "sys.exit(1)")  # fmt: skip
    with pytest.raises(ProbeError, match="opencode --version failed .*node is too old"):
        OpenCodeAdapter(binary=broken).probe()


def test_probe_times_out(tmp_path: Path) -> None:
    slow = executable(tmp_path, "import time\ntime.sleep(30)")
    with pytest.raises(ProbeError, match="did not answer within 0.3 s"):
        probe_version("aider", slow, env_var="X", supported="*", timeout_s=0.3)


def test_command_probe_checks_the_executable(tmp_path: Path) -> None:
    assert CommandAdapter([sys.executable, "-m", "x"]).probe().version is None
    with pytest.raises(ProbeError, match="not found on PATH"):
        CommandAdapter(str(tmp_path / "missing-agent")).probe()
