import re
import unittest
from pathlib import Path

import app

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"


class ReleaseTest(unittest.TestCase):
    def test_newest_changelog_entry_is_the_package_version(self) -> None:
        text = CHANGELOG.read_text(encoding="utf-8")
        released = re.findall(r"^## (\d+\.\d+\.\d+)", text, flags=re.MULTILINE)
        self.assertEqual(released[0], app.__version__)
