import importlib
import re
import unittest
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "accounts.md"


class AccountsDocTest(unittest.TestCase):
    def test_every_module_the_doc_names_exists(self) -> None:
        names = re.findall(r"^- `(app\.\w+)`", DOC.read_text(), re.MULTILINE)
        self.assertEqual(len(names), 8)
        for name in names:
            importlib.import_module(name)
