"""The demo merges with an adapter driven by its CLI's fake (tests/fakes/): aider.

``tests/demo/test_demo_real_clis.py`` runs the whole sprint with the real, pinned claude, codex,
gemini, opencode and copilot against scripted model servers. Aider has no tools (it edits by
parsing the reply text), so that sprint's playbook cannot drive it: its demo runs here, through
its fake, while its real binary is covered by ``tests/conformance/test_aider.py``.

For each adapter listed, a 3-issue chain of the demo sprint runs end to end
with ``STONEFORGE_DEFAULT_AGENT=<cli>`` and ``STONEFORGE_<CLI>_BIN`` pointing at a small
launcher written by this test. The fakes write files only through the steps of a scenario
(``write_file`` / aider's ``edit``), and none of them reads a ``stoneforge-script`` block, so the
launcher translates: it reads the prompt the adapter handed over (stdin, or aider's
``--message-file``), works out the final content of each file the issue's script edits, and
runs the fake (unchanged argv, same stdin) with ``FAKE_<CLI>_SCENARIO`` set to that fake's own
success scenario in which the file-writing steps are replaced by these writes. So the fake
validates the adapter's flags, writes the files itself and produces the stream the adapter
parses; the runner commits and pushes, the bot opens the pull requests and the steward merges
them once fakehub's CI is green.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demo.run import run_demo
from demo.sample import SPRINT
from runner.agents.script_agent import parse_script

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"
CHAIN = ("ratelimit", "throttle", "logging")  # closed under "blocked by": a 3-task chain
SUCCESS = {
    "codex": FAKES / "scenarios" / "codex" / "success.json",  # the launcher's own test below
    "aider": FAKES / "scenarios" / "aider" / "success.json",
}
# What each fake needs from the environment besides its binary (the adapters pass these on).
AGENT_ENV: dict[str, dict[str, str]] = {}

LAUNCHER = '''\
#!{python}
"""Run {fake} with a scenario that writes what the prompt's stoneforge-script edits."""
import json, os, sys, tempfile, uuid
sys.path.insert(0, {root!r})
from runner.agents.script_agent import ScriptError, parse_script, resolve

CLI, FAKE, BASE, ARGV_DIR = {cli!r}, {fake!r}, {base!r}, {argv_dir!r}
args = sys.argv[1:]
if "--version" in args:
    os.execv(sys.executable, [sys.executable, FAKE, *args])
stdin = b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
prompt = stdin.decode("utf-8", "replace")
if "--message-file" in args:
    with open(args[args.index("--message-file") + 1]) as fh:
        prompt += fh.read()
steps = json.load(open(BASE))
steps = steps["steps"] if isinstance(steps, dict) else steps
writes = []
try:
    script = parse_script(prompt)
except ScriptError:
    script = {{"edits": []}}
root = os.path.realpath(os.getcwd())
files = {{}}
for edit in script.get("edits", []):
    target = resolve(__import__("pathlib").Path(root), edit["path"])
    rel = os.path.relpath(target, root)
    if rel not in files:
        files[rel] = open(target).read() if os.path.isfile(target) else ""
    if "write" in edit:
        files[rel] = edit["write"]
    elif "append" in edit:
        files[rel] += edit["append"]
    else:
        old, new = edit["replace"]
        if old not in files[rel]:
            sys.exit(f"replace anchor not found in {{rel}}: {{old!r}}")
        files[rel] = files[rel].replace(old, new, 1)
for rel, content in files.items():
    if CLI == "aider":
        writes.append({{"emit": "edit", "path": rel, "content": content}})
    else:
        writes.append({{"write_file": {{"path": rel, "content": content}}}})
is_write = lambda s: "write_file" in s or s.get("emit") == "edit"
at = next((i for i, s in enumerate(steps) if is_write(s)), max(len(steps) - 1, 0))
steps = [s for s in steps[:at] if not is_write(s)] + writes + [
    s for s in steps[at:] if not is_write(s)]
tmp = tempfile.mkdtemp()
scenario = os.path.join(tmp, "scenario.json")
json.dump({{"steps": steps}}, open(scenario, "w"))
os.environ["FAKE_" + CLI.upper() + "_SCENARIO"] = scenario
os.environ["FAKE_" + CLI.upper() + "_ARGV_LOG"] = os.path.join(ARGV_DIR, uuid.uuid4().hex)
with open(os.path.join(tmp, "stdin"), "wb") as fh:
    fh.write(stdin)
fd = os.open(os.path.join(tmp, "stdin"), os.O_RDONLY)
os.dup2(fd, 0)
os.execv(sys.executable, [sys.executable, FAKE, *args])
'''


def write_launcher(cli: str, where: Path) -> tuple[Path, Path]:
    """The launcher for ``cli`` and the directory where the fake logs each run's argv."""
    argv_dir = where / f"{cli}-argv"
    argv_dir.mkdir(parents=True)
    path = where / f"{cli}-launcher"
    path.write_text(
        LAUNCHER.format(
            python=sys.executable,
            root=str(ROOT),
            cli=cli,
            fake=str(FAKES / f"fake_{cli}.py"),
            base=str(SUCCESS[cli]),
            argv_dir=str(argv_dir),
        )
    )
    path.chmod(0o755)
    return path, argv_dir


@pytest.mark.parametrize("cli", ["aider"])
def test_demo_chain_merges_with_each_agent_fake(cli: str, tmp_path: Path) -> None:
    launcher, argv_dir = write_launcher(cli, tmp_path)
    sprint = tuple(item for item in SPRINT if item.key in CHAIN)
    report = tmp_path / "report.json"
    work = tmp_path / "demo"
    code = run_demo(
        workers=2,
        report=report,
        timeout=110,
        agent=cli,
        work_dir=work,
        sprint=sprint,
        runner_env={f"STONEFORGE_{cli.upper()}_BIN": str(launcher), **AGENT_ENV.get(cli, {})},
    )
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(work.glob("*.log")))
    assert code == 0, logs

    # The fake itself ran once per task, plus once more for each task the maintainer's review
    # sent back (the demo requests changes on one pull request) and for each whose first push
    # failed CI (the steward sends the failure back: the logging task), with the adapter's argv.
    runs = [json.loads(p.read_text()) for p in argv_dir.iterdir()]
    reviewed = [item for item in sprint if item.review]
    fixed = [item for item in sprint if "fix" in item.script]
    assert len(runs) == len(CHAIN) + len(reviewed) + len(fixed), runs
    revisions = [run for run in runs if "## Review feedback to address" in run["prompt"]]
    assert len(revisions) == len(reviewed)
    fixes = [run for run in runs if "## Failing checks to fix" in run["prompt"]]
    assert len(fixes) == len(fixed)
    assert all("stoneforge-script" in run["prompt"] for run in runs)

    events = json.loads((work / "fakehub-events.json").read_text())
    tasks = {t["issue"]: t for t in json.loads(report.read_text())["tasks"]}
    merges = {e["pr"]: e for e in events if e["type"] == "merge"}
    assert sorted(merges) == sorted(t["pr"] for t in tasks.values())
    assert all(m["checks"].get("ci") == "success" for m in merges.values()), merges
    for task in tasks.values():  # a chain: each merged after the one it waits for
        for blocker in task["blocked_by"]:
            assert merges[task["pr"]]["at"] > merges[tasks[blocker]["pr"]]["at"]

    # main holds what the issues' scripts asked for: the fake wrote the files, not a stand-in.
    final: dict[str, str] = {}
    for item in sprint:
        for edit in item.script["edits"]:
            final[edit["path"]] = edit.get("write", "")  # "": changed in place, not written
        for edit in item.script.get("fix", {}).get("edits", []):  # then fixed, CI was red
            final[edit["path"]] = edit.get("write", "")
        if item.review:  # then changed again, as the review asked
            for edit in parse_script(item.review)["edits"]:
                final[edit["path"]] = edit.get("write", "")
    for path, content in final.items():
        on_main = main_file(work, path)
        assert on_main is not None, path
        if content:  # written whole by the last task that touched it
            assert on_main == content, path
    if any(item.key == "ratelimit" for item in sprint):
        assert "def retry_after(" in (main_file(work, "app/ratelimit.py") or "")


def main_file(work: Path, path: str) -> str | None:
    git_dir = next((work / "fakehub").rglob("demo.git"))
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"main:{path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout if out.returncode == 0 else None


def test_launcher_turns_a_script_into_the_fakes_own_write_steps(tmp_path: Path) -> None:
    """Without the pipeline: the codex fake, run through the launcher, writes the edits."""
    launcher, argv_dir = write_launcher("codex", tmp_path / "bin")
    work = tmp_path / "wt"
    (work / "app").mkdir(parents=True)
    (work / "app" / "api.py").write_text("A = 1\nB = 2\n")
    script = {
        "edits": [
            {"path": "app/api.py", "replace": ["B = 2", "B = 3"]},
            {"path": "app/api.py", "append": "C = 4\n"},
            {"path": "docs/new.md", "write": "hello\n"},
        ]
    }
    prompt = "Do it.\n\n```stoneforge-script\n" + json.dumps(script) + "\n```\n"
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    out = subprocess.run(
        [str(launcher), "exec", "--json", "-C", str(work), "-"],
        input=prompt.encode(),
        cwd=work,
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert (work / "app" / "api.py").read_text() == "A = 1\nB = 3\nC = 4\n"
    assert (work / "docs" / "new.md").read_text() == "hello\n"
    assert not (work / "app" / "users.py").exists(), "the scenario's own write was replaced"
    assert b"turn.completed" in out.stdout
    assert len(list(argv_dir.iterdir())) == 1
