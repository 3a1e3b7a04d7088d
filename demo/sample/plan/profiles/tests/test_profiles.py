import unittest

from app.profiles import BIO_MAX, ProfileStore


class ProfilesTest(unittest.TestCase):
    def test_set_cleans_the_name_and_replaces(self) -> None:
        store = ProfileStore()
        store.set(2, "  Grace   Hopper ", "Compilers.")
        store.set(1, "Ada")
        self.assertEqual(store.get(2).display_name, "Grace Hopper")
        store.set(2, "Grace")
        self.assertEqual([p.display_name for p in store.all()], ["Ada", "Grace"])
        self.assertIsNone(store.get(3))

    def test_bad_profiles_are_refused(self) -> None:
        with self.assertRaises(ValueError):
            ProfileStore().set(1, " ")
        with self.assertRaises(ValueError):
            ProfileStore().set(1, "Ada", "x" * (BIO_MAX + 1))
