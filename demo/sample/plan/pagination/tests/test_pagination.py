import unittest

from app.pagination import paginate


class PaginationTest(unittest.TestCase):
    def test_pages_split_the_items(self) -> None:
        first = paginate(list(range(25)), page=1, per_page=10)
        self.assertEqual(first.items, list(range(10)))
        self.assertEqual((first.total, first.pages), (25, 3))
        self.assertEqual(paginate(list(range(25)), page=3, per_page=10).items, list(range(20, 25)))
        self.assertEqual(paginate([], page=1).pages, 1)

    def test_bad_pages_are_refused(self) -> None:
        with self.assertRaises(ValueError):
            paginate([1], page=0)
        with self.assertRaises(ValueError):
            paginate([1], per_page=0)
