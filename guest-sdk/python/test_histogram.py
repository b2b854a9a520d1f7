"""The histogram helpers over the table every SDK shares (run: python3 -m unittest discover -s
guest-sdk/python -p 'test_*.py')."""

import json
import os
import unittest

from telemetry_histogram import (
    decode_histogram,
    histogram_from_json,
    histogram_percentile,
    histogram_to_json,
    merge_histograms,
)

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "histogram-cases.tsv")


class HistogramCases(unittest.TestCase):
    def test_the_shared_table_of_histogram_cases(self):
        checked = 0
        with open(TABLE, encoding="utf-8") as table:
            for line in table.read().splitlines():
                if not line or line.startswith("#"):
                    continue
                cols = line.split("\t")

                def decode(c, b):
                    return decode_histogram(c, json.loads(b))

                if cols[0] == "decode":
                    try:
                        got = histogram_to_json(decode(cols[1], cols[2]))
                    except ValueError:
                        got = "error"
                elif cols[0] == "merge":
                    a, b = decode(cols[1], cols[2]), decode(cols[3], cols[4])
                    merged = merge_histograms(a, b)
                    self.assertEqual(merge_histograms(b, a), merged, line)
                    self.assertEqual(histogram_from_json(histogram_to_json(merged)), merged, line)
                    got = histogram_to_json(merged)
                elif cols[0] == "percentile":
                    p = histogram_percentile(decode(cols[1], cols[2]), float(cols[3]))
                    got = "none" if p is None else str(p)
                else:
                    self.fail(f"unknown operation {cols[0]}")
                self.assertEqual(got, cols[-1], line)
                checked += 1
        self.assertGreaterEqual(checked, 15)


if __name__ == "__main__":
    unittest.main()
