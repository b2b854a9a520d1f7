// node --test guest-sdk/js/decimal.test.mjs: formatDecimal over the table every SDK shares.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { formatDecimal } from "./decimal.js";

test("the shared table of tricky values", () => {
  const table = readFileSync(new URL("../decimal-cases.tsv", import.meta.url), "utf8");
  let checked = 0;
  for (const line of table.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const [value, places, expected] = line.split("\t");
    assert.equal(formatDecimal(Number(value), Number(places)), expected, line);
    checked++;
  }
  assert.ok(checked >= 20, `only ${checked} cases`);
  assert.equal(formatDecimal(NaN, 2), "NaN");
  assert.equal(formatDecimal(-Infinity, 2), "-inf");
  assert.notEqual((2982.8125).toFixed(3), formatDecimal(2982.8125, 3)); // why this exists
  assert.throws(() => formatDecimal(1, -1), RangeError);
});
