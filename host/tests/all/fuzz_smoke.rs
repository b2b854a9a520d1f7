//! Fuzz smoke: the three cargo-fuzz targets (`fuzz/fuzz_targets/`) run inside `cargo test`, on
//! the same entry functions ([`telemetry_server::fuzzing`]), deterministically: seeded from the
//! real inputs in the shared data (raw logs, Histograms.json files, pings) and the regression
//! inputs in `host/tests/fuzz_regressions/<target>/`, each mutated by a seeded generator (bit
//! flips, byte inserts and deletes, truncations, splices of two inputs, interesting values,
//! raw-log length-field tampering, gzip bombs, numeric and kind swaps in JSON), 5,000 cases per
//! target (`FUZZ_SMOKE_CASES=50000` for a longer local run). Beyond "no panic" it checks what matters:
//! - raw logs: every byte is accounted for and no more records come out than the bytes allow
//!   (checked inside the entry function), and in logs of real records with one record
//!   corrupted, every other record comes out intact and in order;
//! - converter: every input converts or is rejected with a [`BadRecordKind`], and the
//!   conversion pipeline counts exactly those outcomes (records read = written + rejected);
//! - histograms: every text parses or fails with a typed error, the real files parse, and parsed
//!   definitions survive a round trip through the bucket-spec document.
//!
//! A failing case is written to `target/fuzz-smoke-failures/` (named in the failure message):
//! copy it into `host/tests/fuzz_regressions/<target>/` once fixed.

use crate::common;

use crate::rawlog_support::{as_read, encode_all};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use telemetry_server::convert::{BadRecordKind, Converter, Pipeline};
use telemetry_server::fuzzing::{self, HistogramsOutcome};
use telemetry_server::rawlog::{
    record, Limits, RawRecord, Version, MAX_DATA_BYTES, MAX_PATH_BYTES,
};
use telemetry_server::storage::{DataDir, WriterOptions};

/// Mutated cases per target (plus every seed unmutated); `FUZZ_SMOKE_CASES` runs more locally.
fn cases_per_target() -> usize {
    std::env::var("FUZZ_SMOKE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000)
}

/// A deterministic generator (xorshift64*): the same cases on every run and machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Values that sit on boundaries of length fields and counters.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    0x1E,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    u64::MAX,
];

/// Bytes with a meaning to one of the parsers (separator, gzip magic, JSON and line syntax).
const SPECIAL: &[u8] = b"\x1e\x1f\x8b\n\t\"{}[]:,0-\\\x00\xff";

/// One generic mutation of `input` (`other` is the second input of a splice); returns its name.
fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) -> &'static str {
    let len = data.len();
    match rng.below(8) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                if len > 0 {
                    let i = rng.below(len);
                    data[i] ^= 1 << rng.below(8);
                }
            }
            "bit flips"
        }
        1 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(32);
            let bytes = rng.bytes(n);
            data.splice(at..at, bytes);
            "insert"
        }
        2 => {
            let at = rng.below(len);
            let n = (1 + rng.below(64)).min(len - at.min(len));
            data.drain(at..at + n);
            "delete"
        }
        3 => {
            data.truncate(rng.below(len + 1));
            "truncate"
        }
        4 => {
            let (a, b) = (rng.below(len + 1), rng.below(other.len() + 1));
            data.truncate(a);
            data.extend_from_slice(&other[b..]);
            "splice"
        }
        5 => {
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            if len >= width {
                let at = rng.below(len - width + 1);
                let value = rng.pick(&INTERESTING).to_le_bytes();
                data[at..at + width].copy_from_slice(&value[..width]);
            }
            "interesting value"
        }
        6 => {
            let (from, n) = (rng.below(len + 1), 1 + rng.below(256));
            let chunk = data[from..(from + n).min(len)].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
            "duplicate range"
        }
        _ => {
            for _ in 0..1 + rng.below(4) {
                if len > 0 {
                    let i = rng.below(len);
                    data[i] = *rng.pick(SPECIAL);
                }
            }
            "special bytes"
        }
    }
}

/// 1 to 3 stacked generic mutations.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> (Vec<u8>, Vec<&'static str>) {
    let mut data = input.to_vec();
    let steps = (0..1 + rng.below(3))
        .map(|_| mutate_once(rng, &mut data, other))
        .collect();
    (data, steps)
}

/// Runs one case, catching a panic so every failing case of a run is reported (and saved).
struct Cases {
    target: &'static str,
    failures: Vec<String>,
    run: usize,
}

impl Cases {
    fn new(target: &'static str) -> Cases {
        Cases {
            target,
            failures: Vec::new(),
            run: 0,
        }
    }

    fn run<T>(&mut self, label: &str, input: &[u8], case: impl FnOnce() -> T) -> Option<T> {
        self.run += 1;
        match catch_unwind(AssertUnwindSafe(case)) {
            Ok(out) => Some(out),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let dir = common::repo_root().join("target/fuzz-smoke-failures");
                std::fs::create_dir_all(&dir).unwrap();
                let file = dir.join(format!("{}-{}.bin", self.target, self.failures.len()));
                std::fs::write(&file, input).unwrap();
                self.failures.push(format!(
                    "{label}: {message} (input saved to {})",
                    file.display()
                ));
                None
            }
        }
    }

    fn finish(self) -> usize {
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} cases failed:\n{}",
            self.target,
            self.failures.len(),
            self.run,
            self.failures
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        self.run
    }
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The committed regression inputs of one target (`host/tests/fuzz_regressions/<target>/`).
fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = common::repo_root()
        .join("host/tests/fuzz_regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), read(&p))).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// The real pings small enough to convert thousands of times in a debug build, by file name.
fn small_pings() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(common::data("pings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "tsv"))
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                read(&p),
            )
        })
        .filter(|(_, bytes)| bytes.len() <= 100_000)
        .collect();
    out.sort();
    assert!(
        out.len() >= 6,
        "expected the shared pings, found {}",
        out.len()
    );
    out
}

/// A document id and URL path for a ping file (the path shape of the seed's URLs).
fn path_for(i: usize) -> String {
    format!(
        "{i:08x}-e90d-e26b-31a6-8fbba68d1403/saved-session/Firefox/40.0a2/aurora/20150522004047"
    )
}

/// The one record of the real v2 raw log in the shared data.
fn real_v2_record() -> RawRecord {
    let log = read(common::data(
        "pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished",
    ));
    let read = fuzzing::read_log(&log, Some(Version::V2), Limits::default());
    assert_eq!((read.records.len(), read.errors.len()), (1, 0));
    read.records.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// rawlog_reader

/// Real records for synthesized logs: the real v2 record, and every small ping as a gzip body
/// and (for the smallest) a plain one.
fn real_records() -> Vec<RawRecord> {
    let mut out = vec![real_v2_record()];
    for (i, (_, bytes)) in small_pings().iter().enumerate() {
        let body = if i % 3 == 0 && bytes.len() < 8_000 {
            bytes.clone()
        } else {
            gzip(bytes)
        };
        out.push(RawRecord {
            timestamp_ms: 1_432_830_425_610 + i as u64 * 977,
            ip: format!("10.0.{i}.7"),
            path: path_for(i),
            body,
        });
    }
    out
}

/// Seeds of the raw-log target: the real logs, and small logs of real records in every layout
/// with bodies under the fuzz limits (so mutations reach the good-record paths too).
fn rawlog_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        read(common::data(
            "pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished",
        )),
        read(common::data("seed/worker-test-data/telemetry1.log")),
        read(common::data("seed/test/unicode.v1.packed")),
    ];
    let small: Vec<RawRecord> = real_records()
        .into_iter()
        .map(|mut r| {
            r.body.truncate(fuzzing::FUZZ_LIMITS.max_data_bytes - 100);
            r
        })
        .collect();
    let bomb = RawRecord {
        body: gzip(&vec![b'{'; 4 << 20]),
        ..small[0].clone()
    };
    for version in [Version::V0, Version::V1, Version::V2] {
        for window in small.chunks(3) {
            seeds.push(encode_all(version, window).0);
        }
        seeds.push(encode_all(version, &[small[1].clone(), bomb.clone(), small[2].clone()]).0);
    }
    seeds.extend(
        regressions("rawlog_reader")
            .into_iter()
            .map(|(_, bytes)| bytes),
    );
    seeds
}

/// Sets one length field of the record header at `at` (the layout's offsets) to `value`.
fn tamper_length(version: Version, log: &mut [u8], at: usize, field: usize, value: u64) {
    let (offset, width) = match (version, field % 3) {
        (Version::V0, 0) => (0, 4),
        (Version::V0, _) => (4, 4),
        (Version::V1, 0) => (1, 2),
        (Version::V1, _) => (3, 4),
        (Version::V2, 0) => (1, 1),
        (Version::V2, 1) => (2, 2),
        (Version::V2, _) => (4, 4),
    };
    log[at + offset..at + offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

#[test]
fn rawlog_reader_accounts_for_every_byte_of_mutated_logs() {
    let seeds = rawlog_seeds();
    let mut rng = Rng::new(1);
    let mut cases = Cases::new("rawlog_reader");
    let mut records = 0;
    for (i, seed) in seeds.iter().enumerate() {
        let reads = cases.run(&format!("seed {i}"), seed, || fuzzing::rawlog_reader(seed));
        records += reads.map_or(0, |r| r.iter().map(|r| r.records.len()).sum::<usize>());
    }
    for case in 0..cases_per_target() {
        let (a, b) = (rng.pick(&seeds), rng.pick(&seeds));
        let (mut input, mut steps) = mutate(&mut rng, a, b);
        // Header tampering: a length field of the record at a separator (or at byte 0) set to
        // a boundary value or a random one.
        if rng.below(3) == 0 && input.len() >= 16 {
            let starts: Vec<usize> = (0..input.len() - 16)
                .filter(|&i| input[i] == record::SEPARATOR)
                .collect();
            let at = if starts.is_empty() {
                0
            } else {
                *rng.pick(&starts)
            };
            let value = if rng.below(2) == 0 {
                *rng.pick(&INTERESTING)
            } else {
                rng.next() % 300_000
            };
            let version = *rng.pick(&Version::ALL);
            tamper_length(version, &mut input, at, rng.below(3), value);
            steps.push("length field");
        }
        let label = format!("case {case} ({})", steps.join(" + "));
        let reads = cases.run(&label, &input, || fuzzing::rawlog_reader(&input));
        records += reads.map_or(0, |r| r.iter().map(|r| r.records.len()).sum::<usize>());
    }
    let run = cases.finish();
    assert!(
        run > cases_per_target() && records > cases_per_target(),
        "{run} cases yielded only {records} good records"
    );
}

/// One corruption confined to one record of a log, and the records it must leave intact.
enum Damage {
    /// Bits flipped anywhere in the record except its length fields.
    Flip,
    /// The record's tail is cut off (the next record follows at once).
    Truncate,
    /// Bytes deleted from inside the record.
    Delete,
    /// A length field set to a value that does not make the record end exactly at a later
    /// record boundary (such a record is indistinguishable from a real one and swallows the
    /// records it spans; documented in `rawlog::record`).
    Length,
    /// Garbage without a separator byte inserted after the record: no record is damaged.
    Garbage,
}

#[test]
fn rawlog_reader_resyncs_and_yields_every_intact_record_after_a_corrupted_one() {
    let records = real_records();
    let mut rng = Rng::new(2);
    let mut cases = Cases::new("rawlog_resync");
    let limits = Limits::default();
    for case in 0..cases_per_target() * 3 / 10 {
        let version = *rng.pick(&Version::ALL);
        let n = 2 + rng.below(4);
        let chosen: Vec<RawRecord> = (0..n).map(|_| rng.pick(&records).clone()).collect();
        let (mut log, starts) = encode_all(version, &chosen);
        let k = rng.below(n);
        let (start, end) = (starts[k], starts.get(k + 1).copied().unwrap_or(log.len()));
        let damage = match rng.below(5) {
            0 => Damage::Flip,
            1 => Damage::Truncate,
            2 => Damage::Delete,
            3 => Damage::Length,
            _ => Damage::Garbage,
        };
        let name = match damage {
            Damage::Flip => {
                // Separator, timestamp, ip, path or body; not the length fields.
                let lengths = match version {
                    Version::V0 => 0..8,
                    Version::V1 => 1..7,
                    Version::V2 => 1..8,
                };
                for _ in 0..1 + rng.below(6) {
                    let i = start + rng.below(end - start);
                    if !lengths.contains(&(i - start)) {
                        log[i] ^= 1 << rng.below(8);
                    }
                }
                "flip"
            }
            Damage::Truncate => {
                let keep = rng.below(end - start);
                log.drain(start + keep..end);
                "truncate"
            }
            Damage::Delete => {
                let at = start + rng.below(end - start);
                let len = (1 + rng.below(64)).min(end - at);
                log.drain(at..at + len);
                "delete"
            }
            Damage::Length => {
                let field = rng.below(3);
                let boundaries: Vec<usize> =
                    starts[k + 1..].iter().copied().chain([log.len()]).collect();
                loop {
                    let mut trial = log.clone();
                    let value = if rng.below(2) == 0 {
                        *rng.pick(&INTERESTING)
                    } else {
                        rng.next() % 300_000
                    };
                    tamper_length(version, &mut trial, start, field, value);
                    let claimed = claimed_end(version, &trial, start);
                    if claimed != end && boundaries[1..].iter().all(|&b| claimed != b) {
                        log = trial;
                        break;
                    }
                }
                "length"
            }
            Damage::Garbage => {
                let n = 1 + rng.below(300);
                let garbage: Vec<u8> = rng
                    .bytes(n)
                    .into_iter()
                    .map(|b| if b == record::SEPARATOR { b'x' } else { b })
                    .collect();
                log.splice(end..end, garbage);
                "garbage"
            }
        };
        let intact: Vec<RawRecord> = chosen
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k || matches!(damage, Damage::Garbage))
            .map(|(_, r)| as_read(version, r))
            .collect();
        let label =
            format!("case {case}: {version} log of {n} records, record {k} damaged by {name}");
        cases.run(&label, &log, || {
            let read = fuzzing::read_log(&log, Some(version), limits);
            // The intact records, in order, are a subsequence of the good records; at most
            // one more good record (the damaged one, read with a wrong body) comes out.
            let mut want = intact.iter().peekable();
            for got in &read.records {
                if want.peek() == Some(&got) {
                    want.next();
                }
            }
            let missing: Vec<&str> = want.map(|r| r.path.as_str()).collect();
            assert!(
                missing.is_empty(),
                "intact records lost: {missing:?} (errors: {:?})",
                read.errors
            );
            assert!(
                read.records.len() <= intact.len() + 1,
                "{} good records from {} intact ones",
                read.records.len(),
                intact.len()
            );
            if matches!(damage, Damage::Garbage) {
                assert_eq!(
                    read.records.len(),
                    n,
                    "garbage between records damages none"
                );
                // v0 has no separator: garbage where a header is due reads as one damaged header.
                let max_errors = if version == Version::V0 { 1 } else { 0 };
                assert!(read.errors.len() <= max_errors, "{:?}", read.errors);
                assert!(read.skipped_bytes > 0, "the garbage is counted as skipped");
            }
        });
    }
    cases.finish();
}

/// Where the record at `start` ends according to its (possibly tampered) header.
fn claimed_end(version: Version, log: &[u8], start: usize) -> usize {
    let h = &log[start..];
    let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap()) as usize;
    let fields = match version {
        Version::V0 => u32_at(0) + u32_at(4),
        Version::V1 => u16_at(1) + u32_at(3),
        Version::V2 => h[1] as usize + u16_at(2) + u32_at(4),
    };
    start + version.header_len() + fields
}

// ---------------------------------------------------------------------------------------------
// converter

/// Seeds of the converter target: `id<TAB>json` lines (the real `.tsv` files, and the small
/// pings with an id), raw-record forms (`path\nbody`, plain and gzip, and the real v2 record),
/// gzip bombs, and the regression inputs.
fn converter_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (i, (name, bytes)) in small_pings().iter().enumerate() {
        if name.ends_with(".tsv") {
            seeds.push(bytes.strip_suffix(b"\n").unwrap_or(bytes).to_vec());
            continue;
        }
        let mut line = format!("{i:08x}-0000-4000-8000-000000000000\t").into_bytes();
        line.extend(bytes);
        seeds.push(line);
        let mut raw = format!("{}\n", path_for(i)).into_bytes();
        raw.extend(if i % 2 == 0 {
            gzip(bytes)
        } else {
            bytes.clone()
        });
        seeds.push(raw);
    }
    let real = real_v2_record();
    let mut raw = format!("{}\n", real.path).into_bytes();
    raw.extend(&real.body);
    seeds.push(raw);
    let payload = read(common::data(
        "seed/worker-test-data/telemetry1.record0.payload.json",
    ));
    let mut line = b"17caa68c-25f5-450a-9cce-7d31318846d8\t".to_vec();
    line.extend(&payload);
    seeds.push(line);
    seeds.extend(gzip_bombs().into_iter().map(|(_, bytes)| bytes));
    seeds.extend(regressions("converter").into_iter().map(|(_, bytes)| bytes));
    seeds
}

/// Raw-record inputs whose gzip bodies inflate past the converter's 1 MiB limit.
fn gzip_bombs() -> Vec<(&'static str, Vec<u8>)> {
    let path = format!("{}\n", path_for(0)).into_bytes();
    let zeros = gzip(&vec![0u8; 8 << 20]);
    let json = gzip(
        format!(
            "{{\"ver\":1,\"info\":{{\"x\":\"{}\"}}}}",
            "a".repeat(2 << 20)
        )
        .as_bytes(),
    );
    let mut members = Vec::new();
    for _ in 0..40 {
        members.extend(gzip(&vec![b' '; 64 << 10]));
    }
    [
        ("8 MiB of zeros", zeros),
        ("2 MiB JSON string", json),
        ("40 gzip members", members),
    ]
    .into_iter()
    .map(|(name, body)| (name, [path.clone(), body].concat()))
    .collect()
}

/// Outcome label: `converted` or the bad-record kind.
fn label(
    outcome: &Result<telemetry_server::convert::Converted, telemetry_server::convert::BadRecord>,
) -> &'static str {
    match outcome {
        Ok(_) => "converted",
        Err(bad) => {
            assert!(!bad.detail.is_empty(), "a rejection says why: {bad:?}");
            bad.kind.as_str()
        }
    }
}

/// Mutations that keep JSON mostly well-formed, so cases get past the parser: a number
/// replaced by an extreme one, a string value emptied or given a control character.
fn mutate_json(rng: &mut Rng, data: &mut Vec<u8>) -> &'static str {
    const NUMBERS: [&str; 9] = [
        "0",
        "-1",
        "1e308",
        "-9223372036854775808",
        "18446744073709551616",
        "1.5",
        "99999999999999999999999",
        "[]",
        "null",
    ];
    let digits: Vec<usize> = data
        .iter()
        .enumerate()
        .filter(|(_, b)| b.is_ascii_digit())
        .map(|(i, _)| i)
        .collect();
    if rng.below(2) == 0 && !digits.is_empty() {
        let at = *rng.pick(&digits);
        let end = at
            + data[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b'.')
                .count();
        data.splice(at..end, rng.pick(&NUMBERS).bytes());
        "number"
    } else {
        let quotes: Vec<usize> = data
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'"')
            .map(|(i, _)| i)
            .collect();
        if quotes.is_empty() {
            return "none";
        }
        let at = *rng.pick(&quotes) + 1;
        const INSERTS: [&[u8]; 5] = [b"\x01", b"\\u0000", b"\\ud800", b"\xc3\x28", b"\""];
        let insert = *rng.pick(&INSERTS);
        data.splice(at..at, insert.iter().copied());
        "string"
    }
}

#[test]
fn converter_converts_or_rejects_every_input_with_a_counted_reason() {
    let seeds = converter_seeds();
    let mut rng = Rng::new(3);
    let mut cases = Cases::new("converter");
    let mut tally: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut inputs = Vec::new();
    for (i, seed) in seeds.iter().enumerate() {
        inputs.push((format!("seed {i}"), seed.clone()));
    }
    for case in 0..cases_per_target() {
        let (a, b) = (rng.pick(&seeds), rng.pick(&seeds));
        let (mut input, mut steps) = if rng.below(3) == 0 {
            (a.clone(), Vec::new())
        } else {
            mutate(&mut rng, a, b)
        };
        if steps.is_empty() || rng.below(2) == 0 {
            steps.push(mutate_json(&mut rng, &mut input));
        }
        inputs.push((format!("case {case} ({})", steps.join(" + ")), input));
    }
    // Outcomes of the raw-record form of the inputs that fit a raw log's default limits.
    let mut record_outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut loggable = Vec::new();
    for (label_text, input) in &inputs {
        if let Some(out) = cases.run(label_text, input, || fuzzing::converter(input)) {
            *tally.entry(label(&out.line)).or_default() += 1;
            *tally.entry(label(&out.record)).or_default() += 1;
            let r = fuzzing::raw_record(input);
            if r.path.len() <= MAX_PATH_BYTES && r.body.len() <= MAX_DATA_BYTES {
                *record_outcomes.entry(label(&out.record)).or_default() += 1;
                loggable.push(r);
            }
        }
    }
    let run = cases.finish();
    // Two outcomes per input (as a line and as a raw record), each converted or one kind.
    assert_eq!(tally.values().sum::<usize>(), 2 * run, "{tally:?}");
    assert!(
        tally["converted"] >= 50,
        "too few cases convert to exercise the converter: {tally:?}"
    );
    let kinds = tally.keys().filter(|k| **k != "converted").count();
    assert!(
        kinds >= 5,
        "mutations should reach most rejection reasons: {tally:?}"
    );

    // The gzip bombs are rejected as corrupted data, not inflated.
    for (name, bomb) in gzip_bombs() {
        let out = fuzzing::converter(&bomb);
        let bad = out.record.expect_err(name);
        assert_eq!(bad.kind, BadRecordKind::CorruptedData, "{name}: {bad}");
        assert!(
            bad.detail.contains("inflates to more than"),
            "{name}: {bad}"
        );
    }

    // The conversion pipeline counts exactly these outcomes: the raw-record forms written to a
    // v2 log and converted with the same settings give the same tally by reason, and records
    // read = written + rejected.
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    assert!(
        loggable.len() > cases_per_target() * 9 / 10,
        "{} of {} inputs fit a raw log",
        loggable.len(),
        inputs.len()
    );
    let mut log = Vec::new();
    for r in &loggable {
        telemetry_server::rawlog::encode_v2(&mut log, r.timestamp_ms, &r.ip, &r.path, &r.body);
    }
    let log_path = dir.path().join("fuzz.v2.log");
    std::fs::write(&log_path, &log).unwrap();
    let converter = std::sync::Arc::new(Converter::with_defaults().with_body_limit(1 << 20));
    let mut pipeline =
        Pipeline::new(&data, converter, WriterOptions::default(), "fuzz-smoke").unwrap();
    let summary = pipeline.convert_log(&log_path).unwrap();
    pipeline.finish().unwrap();
    assert_eq!(
        summary.records_read,
        loggable.len() as u64,
        "every record of the log read"
    );
    assert_eq!(
        summary.records_read,
        summary.records_written + summary.bad_records
    );
    assert_eq!(
        summary.records_written,
        record_outcomes.get("converted").copied().unwrap_or(0)
    );
    let by_type: BTreeMap<&str, u64> = summary
        .bad_records_by_type
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    let expected: BTreeMap<&str, u64> = record_outcomes
        .iter()
        .filter(|(k, _)| **k != "converted")
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(
        by_type, expected,
        "the pipeline counts every rejection under its reason"
    );
}

// ---------------------------------------------------------------------------------------------
// histograms_parser

/// Small documents of real definitions: windows of 1 to 8 consecutive entries of the real
/// Histograms.json files and bucket-spec documents.
fn mini_documents(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let files = [
        "histograms/Histograms.mozilla-central.2017-03.telemetry-batch-view.json",
        "seed/worker-test-data/8d3810543edc.json.FIREFOX_AURORA_24_BASE",
        "histograms/bucket-spec.Fx18.2012.telemetry-toolbox.json",
    ];
    for file in files {
        let text = String::from_utf8(read(common::data(file))).unwrap();
        let root: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        let (spec, entries) = match root.get("histograms").and_then(|h| h.as_object()) {
            Some(inner) if root.len() == 1 => (true, inner.clone()),
            _ => (false, root),
        };
        let entries: Vec<(String, serde_json::Value)> = entries.into_iter().collect();
        for _ in 0..30 {
            let at = rng.below(entries.len());
            let window: serde_json::Map<String, serde_json::Value> = entries
                [at..(at + 1 + rng.below(8)).min(entries.len())]
                .iter()
                .cloned()
                .collect();
            let doc = if spec {
                serde_json::json!({ "histograms": window })
            } else {
                serde_json::Value::Object(window)
            };
            out.push(serde_json::to_vec_pretty(&doc).unwrap());
        }
    }
    out
}

/// Mutations of definition parameters: a number or an arithmetic string replaced by an extreme
/// one, or one kind swapped for another.
fn mutate_definition(rng: &mut Rng, data: &mut Vec<u8>) -> &'static str {
    const KINDS: [&str; 7] = [
        "boolean",
        "flag",
        "count",
        "enumerated",
        "categorical",
        "linear",
        "exponential",
    ];
    const VALUES: [&str; 12] = [
        "0",
        "-1",
        "2",
        "3",
        "10000",
        "10001",
        "9223372036854775807",
        "\"9223372036854775807 + 1\"",
        "\"1000 * 1000 * 1000 * 1000 * 1000 * 1000 * 1000\"",
        "\"10 / 0\"",
        "1e400",
        "\"JS::gcreason::NUM_TELEMETRY_REASONS\"",
    ];
    let text = String::from_utf8_lossy(data).into_owned();
    if rng.below(3) == 0 {
        let present: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| text.contains(&format!("\"{k}\"")))
            .collect();
        if let Some(from) = present.get(rng.below(present.len().max(1))) {
            let to = rng.pick(&KINDS);
            *data = text
                .replacen(&format!("\"{from}\""), &format!("\"{to}\""), 1)
                .into_bytes();
            return "kind";
        }
    }
    let fields = [
        "\"n_buckets\": ",
        "\"high\": ",
        "\"low\": ",
        "\"n_values\": ",
        "\"bucket_count\": ",
        "\"min\": ",
        "\"max\": ",
    ];
    let spots: Vec<usize> = fields
        .iter()
        .flat_map(|f| text.match_indices(f).map(|(i, m)| i + m.len()))
        .collect();
    if spots.is_empty() {
        return "none";
    }
    let at = *rng.pick(&spots);
    let rest = &data[at..];
    let end = at
        + if rest.first() == Some(&b'"') {
            1 + rest[1..]
                .iter()
                .position(|&b| b == b'"')
                .map_or(rest.len() - 1, |i| i + 1)
        } else {
            rest.iter().take_while(|b| !b",}\n".contains(b)).count()
        };
    data.splice(at..end, rng.pick(&VALUES).bytes());
    "parameter"
}

#[test]
fn histograms_parser_parses_or_rejects_with_a_typed_error_and_round_trips() {
    // The real files, whole: every one parses with definitions that have bucket layouts.
    let mut big = vec![
        "histograms/Histograms.mozilla-central.2017-03.telemetry-batch-view.json",
        "histograms/Histograms.test-fixture.2017-2019.probe-scraper.json",
        "histograms/ShortHistograms.subset.2017-2018.telemetry-batch-view.json",
        "histograms/bucket-spec.Fx16.2012.telemetry-toolbox.json",
        "histograms/bucket-spec.Fx18.2012.telemetry-toolbox.json",
        "seed/worker-test-data/a55c55edf302.json.FIREFOX_AURORA_23_BASE",
    ];
    big.sort();
    let mut cases = Cases::new("histograms_parser");
    for file in big {
        let text = read(common::data(file));
        match cases.run(file, &text, || fuzzing::histograms_parser(&text)) {
            Some(HistogramsOutcome::Parsed {
                definitions,
                with_layout,
            }) => {
                assert!(
                    definitions >= 10 && with_layout >= 10,
                    "{file}: {definitions} definitions, {with_layout} with buckets"
                )
            }
            Some(other) => panic!("{file}: {other:?}"),
            None => {}
        }
    }
    // The seed's invalid documents are typed errors.
    for file in [
        "invalid.json",
        "invalid_kind.json",
        "invalid_schema.json",
        "missing_kind.json",
    ] {
        let text = read(common::data("seed/worker-test-data").join(file));
        let out = fuzzing::histograms_parser(&text);
        assert!(
            matches!(out, HistogramsOutcome::Rejected(_)),
            "{file}: {out:?}"
        );
    }

    let mut rng = Rng::new(4);
    let mut seeds = mini_documents(&mut rng);
    for file in [
        "histograms/Histograms.test-fixture.2017-2019.probe-scraper.json",
        "histograms/ShortHistograms.subset.2017-2018.telemetry-batch-view.json",
    ] {
        seeds.push(read(common::data(file)));
    }
    seeds.extend(
        regressions("histograms_parser")
            .into_iter()
            .map(|(_, bytes)| bytes),
    );
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for case in 0..cases_per_target() {
        let (a, b) = (rng.pick(&seeds), rng.pick(&seeds));
        let mut input = a.clone();
        let mut steps = Vec::new();
        for _ in 0..1 + rng.below(3) {
            steps.push(mutate_definition(&mut rng, &mut input));
        }
        if rng.below(3) == 0 {
            let (mutated, generic) = mutate(&mut rng, &input, b);
            input = mutated;
            steps.extend(generic);
        }
        let label_text = format!("case {case} ({})", steps.join(" + "));
        if let Some(out) = cases.run(&label_text, &input, || fuzzing::histograms_parser(&input)) {
            let key = match out {
                HistogramsOutcome::NotText => "not text",
                HistogramsOutcome::Parsed { .. } => "parsed",
                HistogramsOutcome::Rejected(e) => {
                    assert!(!e.to_string().is_empty());
                    "rejected"
                }
            };
            *tally.entry(key).or_default() += 1;
        }
    }
    cases.finish();
    assert_eq!(
        tally.values().sum::<usize>(),
        cases_per_target(),
        "{tally:?}"
    );
    assert!(
        tally.get("parsed").copied().unwrap_or(0) > cases_per_target() / 3,
        "most parameter mutations still parse: {tally:?}"
    );
    assert!(tally.get("rejected").copied().unwrap_or(0) > 0, "{tally:?}");
}

// ---------------------------------------------------------------------------------------------
// Regressions: inputs the smoke found, kept in `host/tests/fuzz_regressions/<target>/` (they
// also seed the mutations above).

#[test]
fn regression_inputs_stay_fixed() {
    for target in ["rawlog_reader", "converter", "histograms_parser"] {
        for (path, input) in regressions(target) {
            let name = path.display();
            let outcome = catch_unwind(AssertUnwindSafe(|| match target {
                "rawlog_reader" => drop(fuzzing::rawlog_reader(&input)),
                "converter" => drop(fuzzing::converter(&input)),
                _ => drop(fuzzing::histograms_parser(&input)),
            }));
            assert!(outcome.is_ok(), "{name} fails again");
        }
    }
}

/// A v0 log of 4 real records whose first record's data length was cut to 1: the rest of its
/// gzip body starts like a v0 header within the limits (the gzip header's zero bytes), and
/// was read as a second, phantom record with a binary path. Now that implausible header,
/// followed by no record, is a damaged record and the reader rescans to the next real one.
#[test]
fn v0_garbage_that_fits_the_limits_is_not_read_as_a_record() {
    let log = read(common::repo_root().join(
        "host/tests/fuzz_regressions/rawlog_reader/v0-shortened-data-length-phantom-record.bin",
    ));
    let read = fuzzing::read_log(&log, Some(Version::V0), Limits::default());
    let paths: Vec<&str> = read.records.iter().map(|r| &r.path[..8]).collect();
    assert_eq!(
        paths,
        ["00000002", "00000000", "00000006", "76f4594f"],
        "{:?}",
        read.errors
    );
    assert_eq!(
        read.records[0].body.len(),
        1,
        "the damaged record, as its header says"
    );
    for r in &read.records[1..] {
        let body = telemetry_server::rawlog::decode_body(&r.body, 1 << 24).unwrap();
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .expect("intact record body is its ping");
    }
    assert!(read.errors.iter().any(|e| matches!(
        e,
        telemetry_server::rawlog::RecordError::Implausible { offset: 104 }
    )));
}
