//! Raw logs on real data: the seed's v1/v2 logs read with their documented values, v0/v1/v2
//! write→read round trips of every real ping, corruption (truncated records, garbage,
//! corrupt headers) losing only the damaged record, gzip bombs, and `log cat`.

use crate::common;

use crate::rawlog_support::{as_read, encode_all};
use std::io::{Cursor, Write};
use std::path::Path;
use std::process::Command;

use telemetry_server::rawlog::{
    self, decode_body, BodyError, LogReader, RawRecord, RecordError, Version, DEFAULT_BODY_LIMIT,
};

const SEED_V2: &str = "pings/rawlog-v2.saved-session.Fx40.0a2-aurora.2015-05.uberi.finished";

fn read_all<R: std::io::Read>(reader: &mut LogReader<R>) -> (Vec<RawRecord>, Vec<RecordError>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for item in reader {
        match item {
            Ok(r) => good.push(r),
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Every JSON ping in the shared data as a record: alternately gzipped and plain (bodies over
/// the default 200 KiB limit are gzipped, as the seed's clients did).
fn real_records() -> Vec<RawRecord> {
    let mut names: Vec<_> = std::fs::read_dir(common::data("pings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 10,
        "expected the shared pings, found {names:?}"
    );
    names
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let json = std::fs::read(path).unwrap();
            let body = if i % 2 == 0 || json.len() > rawlog::MAX_DATA_BYTES {
                gzip(&json)
            } else {
                json
            };
            let stem = path.file_stem().unwrap().to_str().unwrap();
            RawRecord {
                timestamp_ms: 1_432_830_425_610 + i as u64 * 1000,
                ip: format!("10.0.0.{i}"),
                path: format!("{i:08x}-0000-0000-0000-000000000000/{stem}"),
                body,
            }
        })
        .collect()
}

#[test]
fn seed_v2_log_reads_with_the_documented_values() {
    let mut reader = rawlog::open(&common::data(SEED_V2)).unwrap();
    let (good, bad) = read_all(&mut reader);
    assert_eq!(
        reader.version(),
        Some(Version::V2),
        "detected from the content"
    );
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(good.len(), 1);
    assert_eq!(reader.skipped_bytes(), 0);
    let r = &good[0];
    assert_eq!(r.ip, "127.0.0.1");
    assert_eq!(
        r.path,
        "76f4594f-e90d-e26b-31a6-8fbba68d1403/saved-session/Firefox/40.0a2/aurora/20150522004047"
    );
    assert_eq!(r.path.len(), 87);
    assert_eq!(r.body.len(), 18_416);
    assert_eq!(r.timestamp_ms, 1_432_830_425_610);
    // The gzip body is byte for byte the v4 saved-session ping published beside it.
    let body = decode_body(&r.body, DEFAULT_BODY_LIMIT).unwrap();
    let ping = std::fs::read(common::data(
        "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json",
    ))
    .unwrap();
    assert_eq!(body.as_ref(), &ping[..]);
}

#[test]
fn seed_v1_logs_read_with_the_documented_values() {
    // telemetry1.log: one gzip record and a stray trailing 0x0a.
    let mut reader = rawlog::open(&common::data("seed/worker-test-data/telemetry1.log")).unwrap();
    let (good, bad) = read_all(&mut reader);
    assert_eq!(reader.version(), Some(Version::V1));
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(good.len(), 1);
    assert_eq!(reader.skipped_bytes(), 1, "the trailing newline");
    let r = &good[0];
    assert_eq!(
        r.path,
        "17caa68c-25f5-450a-9cce-7d31318846d8/idle-daily/Firefox/23.0.1/release/20130814063812"
    );
    assert_eq!(r.body.len(), 18_255);
    assert_eq!(r.timestamp_ms, 1_378_822_911_255);
    assert_eq!(r.ip, "");
    let payload = std::fs::read(common::data(
        "seed/worker-test-data/telemetry1.record0.payload.json",
    ))
    .unwrap();
    assert_eq!(
        decode_body(&r.body, DEFAULT_BODY_LIMIT).unwrap().as_ref(),
        &payload[..]
    );

    // unicode.v1.packed: the same ping twice, gzipped then plain.
    let mut reader = rawlog::open(&common::data("seed/test/unicode.v1.packed")).unwrap();
    let (good, bad) = read_all(&mut reader);
    assert_eq!(reader.version(), Some(Version::V1));
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(reader.skipped_bytes(), 0);
    assert_eq!(
        good.iter().map(|r| r.timestamp_ms).collect::<Vec<_>>(),
        [1_426_078_139_554, 1_426_078_151_424]
    );
    assert_eq!(
        good.iter().map(|r| r.body.len()).collect::<Vec<_>>(),
        [2_488, 5_369]
    );
    assert!(rawlog::body::is_gzip(&good[0].body) && !rawlog::body::is_gzip(&good[1].body));
    let first = decode_body(&good[0].body, DEFAULT_BODY_LIMIT).unwrap();
    assert_eq!(
        first.as_ref(),
        [&good[1].body[..], b"\n"].concat(),
        "gzipped copy = plain copy + newline"
    );
    assert!(String::from_utf8(first.into_owned())
        .unwrap()
        .contains("Wikipédia"));
    for r in &good {
        assert_eq!(r.path, "e7916aaf-ab3e-924c-a0bf-47d54359f721/reason/appName/appVersion/appUpdateChannel/appBuildID");
    }
}

#[test]
fn version_comes_from_the_file_name_when_marked() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::fs::read(common::data("seed/worker-test-data/telemetry1.log")).unwrap();
    let named = dir
        .path()
        .join("telemetry.log.v1.host.1965.1432830357331.finished");
    std::fs::write(&named, &seed).unwrap();
    let mut reader = rawlog::open(&named).unwrap();
    assert_eq!(reader.version(), Some(Version::V1), "known before reading");
    assert_eq!(read_all(&mut reader).0.len(), 1);
    // A wrong marker is believed (the seed's "simple detection"): v1 bytes read as v2 yield nothing good.
    let wrong = dir.path().join("telemetry.log.v2.host.1.2.finished");
    std::fs::write(&wrong, &seed).unwrap();
    let mut reader = rawlog::open(&wrong).unwrap();
    assert_eq!(read_all(&mut reader).0.len(), 0);
    assert_eq!(
        rawlog::version_from_file_name("telemetry.log.v2.osboxes.1965.1432830357331.finished"),
        Some(Version::V2)
    );
    assert_eq!(rawlog::version_from_file_name("telemetry1.log"), None);
}

#[test]
fn every_version_round_trips_every_real_ping_and_is_detected() {
    let records = real_records();
    for version in Version::ALL {
        let (log, _) = encode_all(version, &records);
        for given in [Some(version), None] {
            let mut reader = LogReader::new(Cursor::new(&log), given);
            let (good, bad) = read_all(&mut reader);
            assert_eq!(reader.version(), Some(version), "{version} given {given:?}");
            assert!(bad.is_empty(), "{version}: {bad:?}");
            assert_eq!(reader.skipped_bytes(), 0);
            let expected: Vec<_> = records.iter().map(|r| as_read(version, r)).collect();
            assert_eq!(good, expected, "{version}");
        }
    }
}

/// A source that hands out its bytes in short, uneven reads (as a pipe or a socket does).
struct ShortReads<'a> {
    data: &'a [u8],
    next_len: usize,
}

impl std::io::Read for ShortReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.next_len = (self.next_len * 7 + 3) % 9973 + 1;
        let n = self.next_len.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn short_uneven_reads_give_the_same_records_as_whole_reads() {
    // The reader's buffer starts small and grows; records far larger than it (the real pings
    // reach ~200 KiB) must come out whole however the bytes arrive.
    let records = real_records();
    assert!(records.iter().any(|r| r.body.len() > 64 << 10));
    for version in Version::ALL {
        let (log, _) = encode_all(version, &records);
        for given in [Some(version), None] {
            let source = ShortReads {
                data: &log,
                next_len: 1,
            };
            let mut reader = LogReader::new(source, given);
            let (good, bad) = read_all(&mut reader);
            assert_eq!(reader.version(), Some(version), "{version} given {given:?}");
            assert!(bad.is_empty(), "{version}: {bad:?}");
            assert_eq!(reader.bytes_read(), log.len() as u64);
            let expected: Vec<_> = records.iter().map(|r| as_read(version, r)).collect();
            assert_eq!(good, expected, "{version} given {given:?}");
        }
    }
}

#[test]
fn encode_v2_writes_the_documented_layout() {
    let mut out = Vec::new();
    rawlog::encode_v2(&mut out, 1_432_830_425_610, "127.0.0.1", "id/x", b"{}");
    assert_eq!(out[0], 0x1E);
    assert_eq!(out[1], 9);
    assert_eq!(&out[2..4], &4u16.to_le_bytes());
    assert_eq!(&out[4..8], &2u32.to_le_bytes());
    assert_eq!(&out[8..16], &1_432_830_425_610u64.to_le_bytes());
    assert_eq!(&out[16..], b"127.0.0.1id/x{}");
}

#[test]
fn empty_and_tiny_logs() {
    let mut reader = LogReader::new(Cursor::new(Vec::<u8>::new()), None);
    assert!(reader.next().is_none());
    // A header cut short at the end of the file is one damaged record.
    let mut reader = LogReader::new(Cursor::new(vec![0x1E, 9, 0]), Some(Version::V2));
    let (good, bad) = read_all(&mut reader);
    assert!(good.is_empty());
    assert!(
        matches!(bad[..], [RecordError::Truncated { offset: 0, .. }]),
        "{bad:?}"
    );
    assert_eq!(reader.skipped_bytes(), 3);
}

/// Reads a corrupted log and checks that exactly the records in `lost` are missing.
fn assert_loses_only(
    version: Version,
    log: &[u8],
    records: &[RawRecord],
    lost: &[usize],
    errors: usize,
    skipped: usize,
    case: &str,
) {
    let mut reader = LogReader::new(Cursor::new(log), Some(version));
    let (good, bad) = read_all(&mut reader);
    let expected: Vec<_> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !lost.contains(i))
        .map(|(_, r)| as_read(version, r))
        .collect();
    assert_eq!(good.len(), expected.len(), "{version} {case}: {bad:?}");
    assert!(good == expected, "{version} {case}: records differ");
    assert_eq!(bad.len(), errors, "{version} {case}: {bad:?}");
    assert_eq!(reader.skipped_bytes(), skipped as u64, "{version} {case}");
    assert_eq!(reader.errors(), errors as u64);
    assert_eq!(reader.records(), expected.len() as u64);
}

#[test]
fn corrupted_logs_lose_only_the_damaged_record() {
    let records = real_records();
    let n = records.len();
    for version in Version::ALL {
        let (log, starts) = encode_all(version, &records);
        let end = |i: usize| starts.get(i + 1).copied().unwrap_or(log.len());

        // A record cut short in the middle: the next record starts where its data should be.
        let i = 3;
        let mut cut = log.clone();
        cut.drain(end(i) - 700..end(i));
        assert_loses_only(
            version,
            &cut,
            &records,
            &[i],
            1,
            end(i) - 700 - starts[i],
            "truncated in the middle",
        );

        // A record cut short by the end of the file.
        let mut cut = log.clone();
        cut.truncate(end(n - 1) - 10);
        assert_loses_only(
            version,
            &cut,
            &records,
            &[n - 1],
            1,
            end(n - 1) - 10 - starts[n - 1],
            "truncated at the end",
        );

        // Garbage between records, including separators and header-like bytes.
        let garbage: Vec<u8> = b"\x1e\x1e\xff\x00garbage\x1e\x09\x57\x00\x1e"
            .iter()
            .copied()
            .cycle()
            .take(5000)
            .collect();
        let mut dirty = log.clone();
        dirty.splice(starts[5]..starts[5], garbage.iter().copied());
        dirty.extend_from_slice(&garbage[..77]);
        let mut both = garbage[..33].to_vec();
        both.extend_from_slice(&dirty);
        // Each garbage run starts with 0x1E where a record is expected: a damaged header (error).
        assert_loses_only(
            version,
            &both,
            &records,
            &[],
            3,
            5000 + 77 + 33,
            "garbage between records",
        );

        // A header claiming a huge body: one error, then the reader rescans and finds the next record.
        let mut huge = log.clone();
        let data_len_at = starts[2]
            + if version == Version::V0 {
                4
            } else if version == Version::V1 {
                3
            } else {
                4
            };
        huge[data_len_at..data_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_loses_only(
            version,
            &huge,
            &records,
            &[2],
            1,
            end(2) - starts[2],
            "corrupt length",
        );

        // Garbage written over the start of a record (its header is gone).
        let mut smashed = log.clone();
        smashed[starts[4]..starts[4] + 40].fill(0xAA);
        // v1/v2 skip to the next separator silently; v0 has none, so the bad header is an error.
        let errors = usize::from(version == Version::V0);
        assert_loses_only(
            version,
            &smashed,
            &records,
            &[4],
            errors,
            end(4) - starts[4],
            "header overwritten",
        );
    }
}

/// Small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_corruption_never_costs_an_undamaged_record() {
    let records = real_records();
    let mut rng = Rng(0x5EED);
    for version in Version::ALL {
        let (log, starts) = encode_all(version, &records);
        for round in 0..40 {
            // Damage one record: cut bytes out of it, or insert random bytes into it.
            let victim = rng.below(records.len());
            let end = starts.get(victim + 1).copied().unwrap_or(log.len());
            let at = starts[victim] + rng.below(end - starts[victim]);
            let mut bad = log.clone();
            if round % 2 == 0 {
                let len = 1 + rng.below((end - at).min(3000));
                bad.drain(at..at + len);
            } else {
                let junk: Vec<u8> = (0..1 + rng.below(3000)).map(|_| rng.next() as u8).collect();
                bad.splice(at..at, junk);
            }
            let mut reader = LogReader::new(Cursor::new(&bad), Some(version));
            let mut got: Vec<RawRecord> = reader.by_ref().filter_map(Result::ok).collect();
            // Every other record comes back exactly once, in order; the victim may come back damaged.
            let expected: Vec<RawRecord> = records
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != victim)
                .map(|(_, r)| as_read(version, r))
                .collect();
            if got.len() == expected.len() + 1 {
                let extra = (0..expected.len())
                    .find(|&i| got[i] != expected[i])
                    .unwrap_or(expected.len());
                got.remove(extra);
            }
            assert!(
                got == expected,
                "{version} round {round}: victim {victim} at {at}: lost an undamaged record"
            );
        }
    }
}

#[test]
fn oversized_paths_and_bodies_are_errors_and_the_next_record_is_read() {
    let mut log = Vec::new();
    rawlog::encode_v2(
        &mut log,
        1,
        "1.1.1.1",
        &"p".repeat(rawlog::MAX_PATH_BYTES + 1),
        b"{}",
    );
    rawlog::encode_v2(&mut log, 2, "1.1.1.1", "ok", b"{}");
    let mut reader = LogReader::new(Cursor::new(&log), Some(Version::V2));
    let (good, bad) = read_all(&mut reader);
    assert!(
        matches!(
            bad[..],
            [RecordError::TooLarge {
                field: "path",
                offset: 0,
                ..
            }]
        ),
        "{bad:?}"
    );
    assert_eq!(good.len(), 1);
    assert_eq!(good[0].path, "ok");

    // The data limit is configurable.
    let mut log = Vec::new();
    rawlog::encode_v2(&mut log, 1, "", "big", &[b'x'; 2000]);
    rawlog::encode_v2(&mut log, 2, "", "small", &[b'y'; 10]);
    let limits = rawlog::Limits {
        max_data_bytes: 1000,
        ..Default::default()
    };
    let mut reader = LogReader::with_limits(Cursor::new(&log), Some(Version::V2), limits);
    let (good, bad) = read_all(&mut reader);
    assert!(
        matches!(
            bad[..],
            [RecordError::TooLarge {
                field: "data",
                len: 2000,
                limit: 1000,
                ..
            }]
        ),
        "{bad:?}"
    );
    assert_eq!(
        good.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["small"]
    );
}

/// A gzip body that inflates to `size` zero bytes, compressed as it is generated.
fn gzip_bomb(size: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..size / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

#[test]
fn gzip_bomb_is_rejected_without_inflating_it() {
    let bomb = gzip_bomb(256 << 20); // 256 MiB of zeros in ~250 KB
    assert!(bomb.len() < 300_000, "bomb is {} bytes", bomb.len());
    let err = decode_body(&bomb, DEFAULT_BODY_LIMIT).unwrap_err();
    assert!(
        matches!(
            err,
            BodyError::TooLarge {
                limit: DEFAULT_BODY_LIMIT
            }
        ),
        "{err}"
    );
    // A smaller bomb inside a log: the record reads, its body is refused, the next one decodes.
    let small_bomb = gzip_bomb(64 << 20);
    let mut log = Vec::new();
    rawlog::encode_v2(&mut log, 1, "", "bomb", &small_bomb);
    rawlog::encode_v2(&mut log, 2, "", "fine", &gzip(b"{\"ok\":true}"));
    let records: Vec<_> = LogReader::new(Cursor::new(&log), None)
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 2);
    assert!(matches!(
        decode_body(&records[0].body, 1 << 20),
        Err(BodyError::TooLarge { .. })
    ));
    assert_eq!(
        decode_body(&records[1].body, 1 << 20).unwrap().as_ref(),
        b"{\"ok\":true}"
    );
}

fn run_cat(args: &[&Path]) -> (String, String, Option<i32>) {
    let out = Command::new(common::binary())
        .arg("log")
        .arg("cat")
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code(),
    )
}

#[test]
fn log_cat_prints_records_as_json_lines() {
    let (stdout, stderr, code) = run_cat(&[
        &common::data(SEED_V2),
        &common::data("seed/test/unicode.v1.packed"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["timestamp"], 1_432_830_425_610u64);
    assert_eq!(lines[0]["ip"], "127.0.0.1");
    assert_eq!(lines[0]["body"]["type"], "saved-session");
    assert_eq!(
        lines[0]["body"]["id"],
        "04d55860-6948-42dd-92ee-cd9d8d34404e"
    );
    assert_eq!(
        lines[1]["body"], lines[2]["body"],
        "gzipped and plain copies of one ping"
    );
    assert!(
        stderr.contains("3 records, 0 damaged records, 0 bodies not JSON, 0 bytes skipped"),
        "{stderr}"
    );
}

#[test]
fn log_cat_reports_damage_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    rawlog::encode_v2(&mut log, 1, "", "good", b"{\"a\":1}");
    rawlog::encode_v2(&mut log, 2, "", "notjson", b"hello");
    log.extend_from_slice(b"junk");
    rawlog::encode_v2(&mut log, 3, "", "bomb", &gzip_bomb(40 << 20));
    rawlog::encode_v2(&mut log, 4, "", "cut", b"{\"b\":2}");
    log.truncate(log.len() - 3); // skipped: 4 junk bytes + the 23 bytes left of this record
    let path = dir.path().join("damaged.v2.log");
    std::fs::write(&path, &log).unwrap();
    let (stdout, stderr, code) = run_cat(&[&path]);
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[0]["body"]["a"], 1);
    assert!(lines[1]["error"].as_str().unwrap().contains("not JSON"));
    assert!(lines[2]["error"]
        .as_str()
        .unwrap()
        .contains("inflates to more than"));
    assert!(lines[3]["error"].as_str().unwrap().contains("truncated"));
    assert!(
        stderr.contains("3 records, 1 damaged records, 2 bodies not JSON, 27 bytes skipped"),
        "{stderr}"
    );
}

#[test]
fn log_cat_missing_file_is_an_error_naming_it() {
    let (_, stderr, code) = run_cat(&[Path::new("/nonexistent/telemetry.log")]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("cannot open raw log '/nonexistent/telemetry.log'"),
        "{stderr}"
    );
}
