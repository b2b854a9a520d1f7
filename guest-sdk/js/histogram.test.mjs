// The histogram helpers over the table every SDK shares (run: node guest-sdk/js/histogram.test.mjs).
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { decodeHistogram, mergeHistograms, histogramPercentile, histogramToJson, histogramFromJson } from "./histogram.js";

const table = readFileSync(new URL("../histogram-cases.tsv", import.meta.url), "utf8");
let checked = 0;
for (const line of table.split("\n")) {
  if (!line || line.startsWith("#")) continue;
  const cols = line.split("\t");
  const decode = (c, b) => decodeHistogram(c, JSON.parse(b));
  let got;
  switch (cols[0]) {
    case "decode":
      try {
        got = histogramToJson(decode(cols[1], cols[2]));
      } catch {
        got = "error";
      }
      break;
    case "merge": {
      const a = decode(cols[1], cols[2]);
      const b = decode(cols[3], cols[4]);
      const merged = mergeHistograms(a, b);
      assert.deepEqual(mergeHistograms(b, a), merged, line);
      assert.deepEqual(histogramFromJson(histogramToJson(merged)), merged, line);
      got = histogramToJson(merged);
      break;
    }
    case "percentile":
      got = String(histogramPercentile(decode(cols[1], cols[2]), Number(cols[3])) ?? "none");
      break;
    default:
      throw new Error(`unknown operation ${cols[0]}`);
  }
  assert.equal(got, cols[cols.length - 1], line);
  checked++;
}
assert.ok(checked >= 15, `only ${checked} cases`);
console.log(`histogram.test.mjs: ${checked} cases passed`);
