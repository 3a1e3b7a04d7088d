"""The README documents every route the service serves."""

import unittest
from pathlib import Path

from app.api import create_app

README = Path(__file__).resolve().parent.parent / "README.md"


class ReadmeTest(unittest.TestCase):
    def test_every_route_is_documented(self) -> None:
        readme = README.read_text(encoding="utf-8")
        for method, path in create_app().routes():
            with self.subTest(route=f"{method} {path}"):
                self.assertIn(f"`{method} {path}", readme)
