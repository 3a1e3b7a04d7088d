"""Masking secrets in text that leaves the machine: log lines, agent transcripts.

Pure: ``redact(text, secrets=())`` returns ``text`` with every secret-shaped substring
masked: GitHub tokens (``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``, ``github_pat_``, ``v1.``),
JWT-like ``eyJ…`` strings, PEM blocks, credentials in URLs and ``Authorization`` values,
provider API keys (``sk-ant-…``, ``sk-…``, ``AIza…``, ``AKIA…``, ``xox?-…``, ``glpat-…``),
values assigned to upper-case secret-named variables (``ANTHROPIC_API_KEY=…``), and every
exact string in ``secrets`` (a job's token, the runner's token).

A pattern starts at a word boundary or right after a JSON escape (``\\n``, ``\\t``, ``\\r``), so
a key inside an escaped JSON string (a transcript line) is found as well as one in plain text.
Masking never crosses a double quote, so a masked JSON line stays valid JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 8  # shorter "secrets" are not masked: they would mangle ordinary text

# Where a token may start: not inside a word, or just after an escape such as "\n".
_START = r"(?:(?<![A-Za-z0-9_])|(?<=\\[nrt]))"

PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM blocks, also a truncated one that never reaches its END line. Neither form crosses a
    # double quote (base64 has none), so masking a JSON line keeps it valid JSON.
    (
        re.compile(r'-----BEGIN [A-Z0-9 ]+-----(?:[^"]*?-----END [A-Z0-9 ]+-----|[^"]*)'),
        "[REDACTED PEM]",
    ),
    (re.compile(_START + r"(gh[pousr]_)[A-Za-z0-9]{16,}"), rf"\1{REDACTED}"),
    (re.compile(_START + r"(github_pat_)[A-Za-z0-9_]{16,}"), rf"\1{REDACTED}"),
    (re.compile(_START + r"(v1\.)[0-9a-fA-F]{20,}"), rf"\1{REDACTED}"),
    (
        re.compile(_START + r"(eyJ)[A-Za-z0-9_\-]{10,}(?:\.[A-Za-z0-9_\-=]*){0,2}"),
        rf"\1{REDACTED}",
    ),
    # Anthropic (sk-ant-…) and OpenAI (sk-…, sk-proj-…) API keys.
    (re.compile(_START + r"(sk-(?:ant-)?)[A-Za-z0-9_\-]{16,}"), rf"\1{REDACTED}"),
    (re.compile(_START + r"(AIza)[0-9A-Za-z_\-]{30,}"), rf"\1{REDACTED}"),  # Google
    (re.compile(_START + r"((?:AKIA|ASIA))[0-9A-Z]{16}(?![A-Za-z0-9])"), rf"\1{REDACTED}"),
    (re.compile(_START + r"(xox[abposr]-)[A-Za-z0-9\-]{10,}"), rf"\1{REDACTED}"),  # Slack
    (re.compile(_START + r"(glpat-)[A-Za-z0-9_\-]{20,}"), rf"\1{REDACTED}"),  # GitLab
    # user:password@ in URLs (git remotes with x-access-token:…).
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{REDACTED}@"),
    (
        re.compile(
            r"(?i)\b(authorization[\\\"']*\s*[:=]\s*[\\\"']*(?:bearer|token|basic)\s+)"
            r"[^\s\"',}\\]+"
        ),
        rf"\1{REDACTED}",
    ),
    # SOME_API_KEY=value, "SOME_TOKEN": "value" (also JSON-escaped); upper-case names only,
    # so "input_tokens" and "MAX_TOKENS=4096" are left alone.
    (
        re.compile(
            r"(?<![A-Za-z0-9_])([A-Z][A-Z0-9_]*(?:API_KEY|TOKEN|SECRET|PASSWORD|PASSWD|ACCESS_KEY)"
            r"(?:\\?[\"'])?\s*[=:]\s*(?:\\?[\"'])?)[^\s\"'\\,}]{8,}"
        ),
        rf"\1{REDACTED}",
    ),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret-shaped substring, and each of ``secrets``, masked."""
    exact = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
    for secret in exact:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text
