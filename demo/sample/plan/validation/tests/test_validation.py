import unittest

from app.validation import NAME_MAX, clean_name, normalize_email, valid_email


class ValidationTest(unittest.TestCase):
    def test_emails_are_normalized_and_checked(self) -> None:
        self.assertEqual(normalize_email("  Ada@Example.COM "), "ada@example.com")
        self.assertTrue(valid_email("ada@example.com"))
        self.assertFalse(valid_email("ada@example"))
        self.assertFalse(valid_email("not an email"))

    def test_names_are_cleaned(self) -> None:
        self.assertEqual(clean_name("  Ada   Lovelace "), "Ada Lovelace")
        with self.assertRaises(ValueError):
            clean_name("   ")
        with self.assertRaises(ValueError):
            clean_name("x" * (NAME_MAX + 1))
