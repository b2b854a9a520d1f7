/* telemetry_decimal_format: a number as exact decimal text with a fixed number of places, rounded
 * half to even on the number's exact binary value: the same bytes as the Rust, JavaScript and
 * Python SDKs' `format_decimal` / `formatDecimal` (all four are tested against
 * guest-sdk/decimal-cases.tsv). printf's "%.*f" is not that everywhere: it depends on the libc.
 * Header-only, C99, no allocation, libc only (memcpy, snprintf).
 *
 *   char text[64];
 *   telemetry_decimal_format(2982.8125, 3, text, sizeof text);   // "2982.812"
 */
#ifndef TELEMETRY_DECIMAL_H
#define TELEMETRY_DECIMAL_H

#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A natural number in base 10^9, least significant limb first (a double's exact value times
 * 10^1074 has under 800 digits). */
typedef struct {
  uint32_t limb[128];
  size_t n;
} telemetry_decimal_big_;

static inline void telemetry_decimal_mul_(telemetry_decimal_big_ *b, uint32_t m) {
  uint64_t carry = 0;
  for (size_t i = 0; i < b->n; i++) {
    uint64_t v = (uint64_t)b->limb[i] * m + carry;
    b->limb[i] = (uint32_t)(v % 1000000000u);
    carry = v / 1000000000u;
  }
  for (; carry; carry /= 1000000000u) b->limb[b->n++] = (uint32_t)(carry % 1000000000u);
}

/* `x` with exactly `places` digits after the point, from its exact value rounded half to even:
 * 2982.8125 with 3 places is "2982.812", 0.125 with 2 is "0.12", never an exponent (1e21 with 2
 * places is "1000000000000000000000.00"). A result that rounds to zero has no sign (-0.001 ->
 * "0.00"). Not-a-number is "NaN", infinities "inf", "-inf". Writes into buf like snprintf:
 * returns the length the text needs, writes at most cap bytes including the NUL. */
static inline size_t telemetry_decimal_format(double x, size_t places, char *buf, size_t cap) {
  size_t len = 0;
#define TELEMETRY_DECIMAL_PUT_(c) do { if (len + 1 < cap) buf[len] = (c); len++; } while (0)
  const char *special = x != x ? "NaN" : x > DBL_MAX ? "inf" : x < -DBL_MAX ? "-inf" : NULL;
  for (; special && *special; special++) TELEMETRY_DECIMAL_PUT_(*special);
  if (x == x && x <= DBL_MAX && x >= -DBL_MAX) {
    /* The exact value of the double: mantissa * 2^exponent. */
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint64_t mantissa = bits & ((UINT64_C(1) << 52) - 1);
    int biased = (int)(bits >> 52) & 0x7ff, exponent = -1074;
    if (biased) {
      mantissa |= UINT64_C(1) << 52;
      exponent = biased - 1075;
    }
    /* digits = mantissa * 2^exponent * 10^point, an integer. */
    telemetry_decimal_big_ b = {{(uint32_t)(mantissa % 1000000000u), (uint32_t)(mantissa / 1000000000u % 1000000000u),
                                 (uint32_t)(mantissa / UINT64_C(1000000000000000000))}, 3};
    for (int e = exponent; e > 0; e -= 29) telemetry_decimal_mul_(&b, UINT32_C(1) << (e < 29 ? e : 29));
    for (int e = -exponent; e > 0; e -= 13) {
      uint32_t five = 1;
      for (int i = 0; i < (e < 13 ? e : 13); i++) five *= 5;
      telemetry_decimal_mul_(&b, five);
    }
    size_t point = exponent < 0 ? (size_t)-exponent : 0;
    while (b.n > 1 && !b.limb[b.n - 1]) b.n--;
    char text[2 + sizeof b.limb / sizeof b.limb[0] * 9], *d = text + 1; /* room for a carry in front */
    size_t nd = (size_t)snprintf(d, 10, "%u", (unsigned)b.limb[b.n - 1]);
    for (size_t i = b.n - 1; i-- > 0;) nd += (size_t)snprintf(d + nd, 10, "%09u", (unsigned)b.limb[i]);
    if (point > places) { /* drop digits, rounding half to even */
      size_t drop = point - places;
#define TELEMETRY_DECIMAL_DIGIT_(j) ((j) < nd ? d[nd - 1 - (j)] - '0' : 0) /* j-th from the right */
      int first = TELEMETRY_DECIMAL_DIGIT_(drop - 1), rest = 0, odd = TELEMETRY_DECIMAL_DIGIT_(drop) & 1;
      for (size_t j = 0; j + 1 < drop && j < nd; j++) rest |= d[nd - 1 - j] != '0';
#undef TELEMETRY_DECIMAL_DIGIT_
      nd = nd > drop ? nd - drop : 0;
      if (nd == 0) d[nd++] = '0';
      if (first > 5 || (first == 5 && (rest || odd))) {
        size_t i = nd;
        while (i > 0 && d[i - 1] == '9') d[--i] = '0';
        if (i > 0) d[i - 1]++;
        else *--d = '1', nd++;
      }
      point = places;
    }
    int nonzero = 0;
    for (size_t i = 0; i < nd; i++) nonzero |= d[i] != '0';
    if (x < 0 && nonzero) TELEMETRY_DECIMAL_PUT_('-');
    if (nd > point) for (size_t i = 0; i < nd - point; i++) TELEMETRY_DECIMAL_PUT_(d[i]);
    else TELEMETRY_DECIMAL_PUT_('0');
    if (places) TELEMETRY_DECIMAL_PUT_('.');
    for (size_t k = 0; k < point; k++) TELEMETRY_DECIMAL_PUT_(nd + k >= point ? d[nd + k - point] : '0');
    for (size_t k = point; k < places; k++) TELEMETRY_DECIMAL_PUT_('0');
  }
#undef TELEMETRY_DECIMAL_PUT_
  if (cap) buf[len < cap ? len : cap - 1] = 0;
  return len;
}

#endif
