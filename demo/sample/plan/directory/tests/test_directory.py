import unittest

from app.directory import Directory
from app.profiles import ProfileStore


class DirectoryTest(unittest.TestCase):
    def setUp(self) -> None:
        store = ProfileStore()
        for user_id, name in enumerate(["Ada", "Grace", "Alan", "Barbara"], start=1):
            store.set(user_id, name)
        self.directory = Directory(store)

    def test_pages(self) -> None:
        page = self.directory.page(2, per_page=3)
        self.assertEqual([p.display_name for p in page.items], ["Barbara"])
        self.assertEqual(page.pages, 2)

    def test_search_ignores_case(self) -> None:
        self.assertEqual([p.user_id for p in self.directory.search("A")], [1, 2, 3, 4])
        self.assertEqual([p.user_id for p in self.directory.search("al")], [3])
