//! Histograms in jobs: decode the stored compact form with the layout the host gives
//! (`Record::histogram_layout`), merge histograms of different layouts by bucket bounds, and
//! read percentiles. The same functions exist in the JavaScript, Python and C SDKs, all tested
//! against `guest-sdk/histogram-cases.tsv`. Dependency-free (its JSON is numbers in arrays).
//!
//! A [`Histogram`] is `bounds` (bucket lower bounds, strictly ascending) with one count each and
//! the `sum` of the samples. Merging takes the union of the bounds: each count stays at its own
//! lower bound, so totals and sums add up exactly whatever the two layouts were.

/// Statistics after the buckets of a stored compact histogram (`sum, log_sum, log_sum_squares,
/// sum_squares_lo, sum_squares_hi`).
pub const STATS: usize = 5;

/// A histogram with its bucket lower bounds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Histogram {
    /// Bucket lower bounds, strictly ascending.
    pub bounds: Vec<i64>,
    /// Count of each bucket.
    pub counts: Vec<u64>,
    /// Sum of the samples (0 when the stored histogram had none).
    pub sum: i64,
}

impl Histogram {
    /// Decodes a stored compact array (JSON text `[b_0, …, b_n-1, sum, …4 more statistics]`) laid
    /// out by `bounds` (from the host). Buckets with equal lower bounds are added together. A
    /// missing sum (`-1`) reads as 0; a fractional one is rounded toward zero.
    pub fn decode(compact: &str, bounds: &[i64]) -> Result<Histogram, String> {
        let items = parse_array(compact)?;
        if items.len() != bounds.len() + STATS {
            return Err(format!(
                "compact histogram has {} entries, its layout {} buckets + {STATS} statistics",
                items.len(),
                bounds.len()
            ));
        }
        if bounds.windows(2).any(|w| w[0] > w[1]) {
            return Err("bucket bounds are not ascending".into());
        }
        let mut h = Histogram::default();
        for (item, &bound) in items.iter().zip(bounds) {
            let count = item
                .parse::<u64>()
                .map_err(|_| format!("bucket count {item:?} is not a non-negative integer"))?;
            h.add(bound, count);
        }
        let sum = &items[bounds.len()];
        h.sum = match sum.parse::<i64>() {
            Ok(-1) => 0,
            Ok(n) => n,
            Err(_) => sum
                .parse::<f64>()
                .map_err(|_| format!("sum {sum:?} is not a number"))?
                .trunc() as i64,
        };
        Ok(h)
    }

    /// Adds `count` at lower bound `bound` (a new bucket if the bound is new).
    fn add(&mut self, bound: i64, count: u64) {
        match self.bounds.binary_search(&bound) {
            Ok(i) => self.counts[i] += count,
            Err(i) => {
                self.bounds.insert(i, bound);
                self.counts.insert(i, count);
            }
        }
    }

    /// Both histograms in one: the union of their bounds, counts added at equal bounds.
    pub fn merge(&self, other: &Histogram) -> Histogram {
        let (mut i, mut j) = (0, 0);
        let mut out = Histogram {
            sum: self.sum + other.sum,
            ..Histogram::default()
        };
        while i < self.bounds.len() || j < other.bounds.len() {
            let a = self.bounds.get(i).copied().unwrap_or(i64::MAX);
            let b = other.bounds.get(j).copied().unwrap_or(i64::MAX);
            let bound = a.min(b);
            let mut count = 0;
            if a == bound && i < self.bounds.len() {
                count += self.counts[i];
                i += 1;
            }
            if b == bound && j < other.bounds.len() {
                count += other.counts[j];
                j += 1;
            }
            out.bounds.push(bound);
            out.counts.push(count);
        }
        out
    }

    /// Number of samples (the sum of the counts).
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The lower bound of the bucket holding the `p`-th percentile (0 ≤ p ≤ 100): the first
    /// bucket where the running count reaches `max(1, ceil(total × p / 100))`. `None` for an
    /// empty histogram or a `p` out of range.
    pub fn percentile(&self, p: f64) -> Option<i64> {
        let total = self.total();
        if total == 0 || !(0.0..=100.0).contains(&p) {
            return None;
        }
        let rank = ((total as f64 * p / 100.0).ceil() as u64).max(1);
        let mut running = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            running += count;
            if running >= rank {
                return Some(*bound);
            }
        }
        self.bounds.last().copied()
    }

    /// `{"bounds":[…],"counts":[…],"sum":N}`, the same text in every SDK.
    pub fn to_json(&self) -> String {
        let list = |v: &mut String, items: &mut dyn Iterator<Item = String>| {
            v.push('[');
            v.push_str(&items.collect::<Vec<_>>().join(","));
            v.push(']');
        };
        let mut out = String::from("{\"bounds\":");
        list(&mut out, &mut self.bounds.iter().map(i64::to_string));
        out.push_str(",\"counts\":");
        list(&mut out, &mut self.counts.iter().map(u64::to_string));
        out.push_str(&format!(",\"sum\":{}}}", self.sum));
        out
    }

    /// Reads what [`Histogram::to_json`] wrote (members in any order, whitespace allowed).
    pub fn from_json(text: &str) -> Result<Histogram, String> {
        let member = |name: &str| -> Result<&str, String> {
            let key = format!("\"{name}\"");
            let at = text
                .find(&key)
                .ok_or_else(|| format!("histogram JSON has no {key}"))?;
            let rest = text[at + key.len()..].trim_start();
            rest.strip_prefix(':')
                .map(str::trim_start)
                .ok_or_else(|| format!("histogram JSON: no ':' after {key}"))
        };
        let array = |name: &str| -> Result<Vec<String>, String> {
            let rest = member(name)?;
            let end = rest
                .find(']')
                .ok_or_else(|| format!("histogram JSON: {name} is not an array"))?;
            parse_array(&rest[..=end])
        };
        let bounds = array("bounds")?
            .iter()
            .map(|b| {
                b.parse::<i64>()
                    .map_err(|_| format!("bound {b:?} is not an integer"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let counts = array("counts")?
            .iter()
            .map(|c| {
                c.parse::<u64>()
                    .map_err(|_| format!("count {c:?} is not a non-negative integer"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sum_text = member("sum")?;
        let end = sum_text
            .find(|c: char| c != '-' && !c.is_ascii_digit())
            .unwrap_or(sum_text.len());
        let sum = sum_text[..end]
            .parse::<i64>()
            .map_err(|_| "histogram JSON: sum is not an integer".to_string())?;
        if bounds.len() != counts.len() || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err("histogram JSON: bounds must be strictly ascending, one count each".into());
        }
        Ok(Histogram {
            bounds,
            counts,
            sum,
        })
    }
}

/// The items of a flat JSON array of numbers, as written.
fn parse_array(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("not a JSON array: {:.40}", text))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            let number = !item.is_empty()
                && item
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                && item.parse::<f64>().is_ok();
            if number {
                Ok(item.to_string())
            } else {
                Err(format!("not a number in a histogram array: {item:?}"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    fn ints(text: &str) -> Vec<i64> {
        let t = text.trim().trim_start_matches('[').trim_end_matches(']');
        t.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap())
            .collect()
    }

    #[test]
    fn the_shared_table_of_histogram_cases() {
        let table = include_str!("../../histogram-cases.tsv");
        let mut checked = 0;
        for line in table
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let cols: Vec<&str> = line.split('\t').collect();
            let decode = |c: &str, b: &str| Histogram::decode(c, &ints(b));
            let got = match cols[0] {
                "decode" => decode(cols[1], cols[2])
                    .map(|h| h.to_json())
                    .unwrap_or_else(|_| "error".into()),
                "merge" => {
                    let a = decode(cols[1], cols[2]).unwrap();
                    let b = decode(cols[3], cols[4]).unwrap();
                    let merged = a.merge(&b);
                    assert_eq!(merged, b.merge(&a), "{line}");
                    assert_eq!(Histogram::from_json(&merged.to_json()).unwrap(), merged);
                    merged.to_json()
                }
                "percentile" => {
                    let h = decode(cols[1], cols[2]).unwrap();
                    h.percentile(cols[3].parse().unwrap())
                        .map_or("none".into(), |b| b.to_string())
                }
                other => panic!("unknown operation {other}"),
            };
            assert_eq!(got, *cols.last().unwrap(), "{line}");
            checked += 1;
        }
        assert!(checked >= 15, "{checked}");
    }
}
