"""format_decimal over the table every SDK shares (run: python3 -m unittest discover -s
guest-sdk/python -p 'test_*.py')."""

import os
import unittest

from telemetry_decimal import format_decimal

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "decimal-cases.tsv")


class FormatDecimal(unittest.TestCase):
    def test_the_shared_table_of_tricky_values(self):
        checked = 0
        with open(TABLE, encoding="utf-8") as table:
            for line in table.read().splitlines():
                if not line or line.startswith("#"):
                    continue
                value, places, expected = line.split("\t")
                self.assertEqual(format_decimal(float(value), int(places)), expected, line)
                checked += 1
        self.assertGreaterEqual(checked, 20)
        self.assertEqual(format_decimal(float("nan"), 2), "NaN")
        self.assertEqual(format_decimal(float("-inf"), 2), "-inf")
        with self.assertRaises(ValueError):
            format_decimal(1.0, -1)


if __name__ == "__main__":
    unittest.main()
