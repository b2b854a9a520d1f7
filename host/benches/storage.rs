//! Read/write throughput of raw logs and partition files on the real v4 pings, each next to
//! its baseline in the same run:
//! - `rawlog/read`: `LogReader` over a v2 log in memory vs copying the same bytes
//!   (`rawlog/copy`).
//! - `partition/read-<codec>`: `LocalSource::open` + line splitting of one partition file vs
//!   the codec's bare decoder into memory (`partition/decode-<codec>`), in uncompressed bytes.
//! - `partition/write-zstd`: `StorageWriter` vs `zstd::stream::encode_all` of the same lines.
//!
//! `cargo bench -p telemetry-server --bench storage`

use std::io::{BufRead, Cursor, Read};
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use telemetry_server::rawlog::{self, LogReader, Version};
use telemetry_server::storage::{
    split_line, Codec, DataDir, LocalSource, PartitionSource, Schema, StorageWriter, WriterOptions,
};

/// The v4 main pings in the shared data, minified to one line each.
fn main_pings() -> Vec<String> {
    let shared = std::env::var_os("TELEMETRY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(shared.join("data/pings")).expect("shared data") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("v4.main.") && name.ends_with(".json") {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.push(value.to_string());
        }
    }
    assert!(out.len() >= 4, "v4 main pings not found");
    out
}

fn schema() -> Schema {
    Schema::from_json(r#"{"version":1,"dimensions":[{"field_name":"reason","allowed_values":"*"},{"field_name":"date","allowed_values":"*"}]}"#)
        .unwrap()
}

/// `copies` rounds of every ping as `(id, json)` lines.
fn lines(pings: &[String], copies: usize) -> Vec<(String, &str)> {
    (0..copies)
        .flat_map(|c| {
            pings
                .iter()
                .enumerate()
                .map(move |(i, p)| (format!("{c:06}-{i:04}"), p.as_str()))
        })
        .collect()
}

fn bench_rawlog(c: &mut Criterion) {
    let pings = main_pings();
    let mut log = Vec::new();
    for (i, (id, json)) in lines(&pings, 20).iter().enumerate() {
        let body = json.as_bytes();
        // Bodies over the record limit are stored gzipped, as clients sent them.
        let body = if body.len() > rawlog::MAX_DATA_BYTES {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, body).unwrap();
            enc.finish().unwrap()
        } else {
            body.to_vec()
        };
        rawlog::encode_v2(
            &mut log,
            1_432_830_425_610 + i as u64,
            "127.0.0.1",
            &format!("{id}/main/Firefox/45.0/beta/20151103030248"),
            &body,
        );
    }
    let mut group = c.benchmark_group("rawlog");
    group.throughput(Throughput::Bytes(log.len() as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("read", |b| {
        b.iter(|| {
            let reader = LogReader::new(Cursor::new(&log), Some(Version::V2));
            reader.map(|r| r.unwrap().body.len()).sum::<usize>()
        })
    });
    group.bench_function("copy", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            Cursor::new(&log).read_to_end(&mut out).unwrap();
            out.len()
        })
    });
    group.finish();
}

fn bench_partitions(c: &mut Criterion) {
    let pings = main_pings();
    let records = lines(&pings, 20);
    let text: Vec<u8> = records
        .iter()
        .flat_map(|(id, json)| [id.as_bytes(), b"\t", json.as_bytes(), b"\n"].concat())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::open(tmp.path()).unwrap();
    let dims = vec!["main".to_string(), "20151105".to_string()];
    let mut group = c.benchmark_group("partition");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));

    for (name, codec) in [
        ("zstd", Codec::Zstd { level: 3 }),
        ("xz", Codec::Xz { preset: 1 }),
    ] {
        let storage = data.sub(&format!("storage-{name}")).unwrap();
        let options = WriterOptions {
            codec,
            ..WriterOptions::default()
        };
        let mut writer = StorageWriter::new(storage.try_clone().unwrap(), schema(), options);
        for (id, json) in &records {
            writer.write(&dims, 4, id, json).unwrap();
        }
        let file = writer.finish().unwrap().remove(0).partition_file();
        let compressed = storage.read(&file.path).unwrap();
        let source = LocalSource::new(storage);
        group.bench_function(format!("read-{name}"), |b| {
            b.iter(|| {
                let mut reader = source.open(&file).unwrap();
                let (mut line, mut bytes) = (Vec::with_capacity(1 << 20), 0usize);
                while reader.read_until(b'\n', &mut line).unwrap() > 0 {
                    let (_id, json) = split_line(&line).unwrap();
                    bytes += json.len();
                    line.clear();
                }
                bytes
            })
        });
        group.bench_function(format!("decode-{name}"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(text.len());
                match codec {
                    Codec::Zstd { .. } => {
                        zstd::stream::copy_decode(&compressed[..], &mut out).unwrap()
                    }
                    Codec::Xz { .. } => {
                        xz2::read::XzDecoder::new(&compressed[..])
                            .read_to_end(&mut out)
                            .unwrap();
                    }
                }
                out.len()
            })
        });
    }

    let storage = data.sub("write").unwrap();
    group.bench_function("write-zstd", |b| {
        b.iter(|| {
            let mut writer = StorageWriter::new(
                storage.try_clone().unwrap(),
                schema(),
                WriterOptions::default(),
            );
            for (id, json) in &records {
                writer.write(&dims, 4, id, json).unwrap();
            }
            let file = writer.finish().unwrap().remove(0);
            storage.remove_file(&file.path).unwrap();
            file.size
        })
    });
    group.bench_function("encode-zstd", |b| {
        b.iter(|| zstd::stream::encode_all(&text[..], 3).unwrap().len())
    });
    group.finish();
}

criterion_group!(benches, bench_rawlog, bench_partitions);
criterion_main!(benches);
