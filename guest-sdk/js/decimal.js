// formatDecimal: a number as exact decimal text with a fixed number of places, rounded half to
// even on the number's exact binary value: the same bytes as the Rust, Python and C SDKs'
// `format_decimal` (all four are tested against guest-sdk/decimal-cases.tsv). `toFixed` is not
// that: it rounds ties away from zero (2982.8125.toFixed(3) is "2982.813") and switches to an
// exponent from 1e21. Plain JavaScript (BigInt), no imports, so node can test it.

/**
 * `x` with exactly `places` digits after the point, from its exact value rounded half to even:
 * `formatDecimal(2982.8125, 3)` is "2982.812", `formatDecimal(0.125, 2)` is "0.12", never an
 * exponent. A result that rounds to zero has no sign. NaN is "NaN", infinities "inf", "-inf".
 */
export function formatDecimal(x, places) {
  if (!Number.isInteger(places) || places < 0) throw new RangeError(`formatDecimal: places must be a whole number >= 0, got ${places}`);
  x = Number(x);
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  // The exact value of the double: mantissa * 2^exponent.
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exponent = -1074;
  if (biased !== 0) {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  // scaled = value * 10^places = num / den, rounded half to even.
  let num = mantissa * 10n ** BigInt(places);
  let den = 1n;
  if (exponent >= 0) num <<= BigInt(exponent);
  else den <<= BigInt(-exponent);
  let q = num / den;
  const twice = 2n * (num % den);
  if (twice > den || (twice === den && (q & 1n) === 1n)) q += 1n;
  let digits = q.toString();
  if (places > 0) {
    digits = digits.padStart(places + 1, "0");
    digits = `${digits.slice(0, -places)}.${digits.slice(-places)}`;
  }
  return x < 0 && q !== 0n ? `-${digits}` : digits;
}
