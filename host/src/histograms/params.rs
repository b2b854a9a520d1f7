//! Numeric histogram parameters as Histograms.json spelled them: JSON integers, numeric strings
//! (`"10000"`) and small integer expressions (`"32 * 1024"`, `"80 + 1"`).
//!
//! histogram_tools coerced such strings with Python `eval`; this is the safe subset it needed:
//! integer literals, `+ - * /` (integer division), unary minus and parentheses. Anything else
//! (for instance the C++ constant `"JS::gcreason::NUM_TELEMETRY_REASONS"`) is "not a number",
//! exactly as it was for histogram_tools — the revision cache patches those constants first.

use serde_json::Value;

/// Evaluates one parameter. `None` when it is not a finite integer (or an expression of them).
pub fn eval_param(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => eval_expr(s),
        _ => None,
    }
}

/// Evaluates an integer expression such as `"16 * 1024 * 1024"`. `None` on any syntax error,
/// overflow or division by zero.
pub fn eval_expr(text: &str) -> Option<i64> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = parser.sum()?;
    parser.skip_spaces();
    (parser.pos == parser.bytes.len()).then_some(value)
}

/// Nesting limit for parentheses (a hostile file cannot overflow the stack).
const MAX_DEPTH: u32 = 32;

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: u32,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.bytes.get(self.pos).copied()
    }

    /// sum := product (('+' | '-') product)*
    fn sum(&mut self) -> Option<i64> {
        let mut acc = self.product()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let rhs = self.product()?;
            acc = if op == b'+' {
                acc.checked_add(rhs)?
            } else {
                acc.checked_sub(rhs)?
            };
        }
        Some(acc)
    }

    /// product := unary (('*' | '/') unary)*
    fn product(&mut self) -> Option<i64> {
        let mut acc = self.unary()?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.pos += 1;
            let rhs = self.unary()?;
            // Python 2 integer division floors.
            acc = if op == b'*' {
                acc.checked_mul(rhs)?
            } else {
                acc.checked_div_euclid(rhs)?
            };
        }
        Some(acc)
    }

    /// unary := '-' unary | '(' sum ')' | integer
    fn unary(&mut self) -> Option<i64> {
        match self.peek()? {
            b'-' => {
                self.pos += 1;
                self.unary()?.checked_neg()
            }
            b'(' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                let value = self.sum()?;
                (self.peek()? == b')').then_some(())?;
                self.pos += 1;
                self.depth -= 1;
                Some(value)
            }
            b'0'..=b'9' => {
                let start = self.pos;
                while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                std::str::from_utf8(&self.bytes[start..self.pos])
                    .ok()?
                    .parse()
                    .ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_the_expressions_of_2013_files() {
        assert_eq!(eval_expr("32 * 1024"), Some(32768));
        assert_eq!(eval_expr("16 * 1024 * 1024"), Some(16 << 20));
        assert_eq!(eval_expr("80 + 1"), Some(81));
        assert_eq!(eval_expr("10000"), Some(10000));
        assert_eq!(eval_expr(" (2 + 3) * -4 "), Some(-20));
        assert_eq!(eval_expr("7 / 2"), Some(3));
    }

    #[test]
    fn rejects_what_python_eval_could_not_turn_into_a_number() {
        assert_eq!(eval_expr("JS::gcreason::NUM_TELEMETRY_REASONS"), None);
        assert_eq!(eval_expr("1 / 0"), None);
        assert_eq!(eval_expr("9223372036854775807 * 2"), None);
        assert_eq!(eval_expr("(((1)"), None);
        assert_eq!(eval_expr(&"(".repeat(10_000)), None);
        assert_eq!(eval_expr(""), None);
        assert_eq!(eval_param(&json!(5000.0)), Some(5000));
        assert_eq!(eval_param(&json!(2.5)), None);
        assert_eq!(eval_param(&json!(true)), None);
    }
}
