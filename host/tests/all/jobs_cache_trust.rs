//! The compile cache trusts no file by its name: a tampered or swapped `.cwasm` (native code) is
//! refused, counted and recompiled from the component, never executed; a `.wasm` that is not the
//! component its name says is refused; the cache directory is private.

use crate::common;
use crate::jobs_support::{all_with, output_text, tiny_data};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use telemetry_server::jobs::{self, CancelToken, CompiledJob, JobError, Progress, Runtime};
use telemetry_server::storage::DataDir;

fn runtime(dir: &Path) -> Runtime {
    let cache = DataDir::open(dir).unwrap().sub("cache").unwrap();
    Runtime::new(cache, jobs::RuntimeConfig::default()).unwrap()
}

fn output(rt: &Runtime, job: &CompiledJob, data: &Path) -> String {
    let source = jobs::open_source(data.to_str().unwrap()).unwrap();
    let out = jobs::run(
        rt,
        job,
        source,
        &all_with(1),
        &Progress::default(),
        &CancelToken::new(),
    )
    .unwrap();
    output_text(&out).to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_swapped_or_tampered_artifact_is_refused_and_recompiled() {
    let data = tiny_data(&[
        ("a", r#"{"info":{"OS":"Linux","appVersion":"40.0"}}"#),
        ("b", r#"{"info":{"OS":"Darwin","appVersion":"41.0"}}"#),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let a = rt
        .compile(&std::fs::read(common::guest("simple-counter-rust")).unwrap())
        .unwrap();
    let b = rt
        .compile(&std::fs::read(common::guest("os-distribution-rust")).unwrap())
        .unwrap();
    let (a_out, b_out) = (output(&rt, &a, data.path()), output(&rt, &b, data.path()));
    assert_ne!(a_out, b_out, "the two guests must be told apart by output");

    let cache = dir.path().join("cache");
    assert_eq!(mode(&cache), 0o700, "the cache directory is private");
    let cwasm = |job: &CompiledJob| cache.join(format!("{}.cwasm", job.sha256()));
    assert_eq!(mode(&cwasm(&a)), 0o600);
    assert_eq!(mode(&cache.join(".artifact-key")), 0o600);

    // B's native code under A's name: refused, A recompiled, A's code runs.
    std::fs::copy(cwasm(&b), cwasm(&a)).unwrap();
    let loaded = rt.load_cached(a.sha256()).unwrap();
    assert!(!loaded.cache_hit(), "a swapped artifact is no cache hit");
    assert_eq!(rt.artifact_refusals().get(), 1);
    assert_eq!(output(&rt, &loaded, data.path()), a_out);
    // The recompiled artifact is sealed again: a hit, in a new runtime (same key) too.
    assert!(rt.load_cached(a.sha256()).unwrap().cache_hit());
    let restarted = runtime(dir.path());
    assert!(restarted.load_cached(a.sha256()).unwrap().cache_hit());

    // One flipped byte of native code: refused (through `compile` too).
    let mut bytes = std::fs::read(cwasm(&a)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(cwasm(&a), &bytes).unwrap();
    let recompiled = rt
        .compile(&std::fs::read(common::guest("simple-counter-rust")).unwrap())
        .unwrap();
    assert!(!recompiled.cache_hit());
    assert_eq!(rt.artifact_refusals().get(), 2);
    assert_eq!(output(&rt, &recompiled, data.path()), a_out);

    // An artifact without the seal (as an older server wrote them): refused.
    let artifact = std::fs::read(cwasm(&a)).unwrap();
    std::fs::write(cwasm(&a), &artifact[40..]).unwrap();
    assert!(!rt.load_cached(a.sha256()).unwrap().cache_hit());
    assert_eq!(rt.artifact_refusals().get(), 3);

    // B's component bytes under A's name, with no artifact: refused, not compiled as A.
    std::fs::remove_file(cwasm(&a)).unwrap();
    std::fs::copy(
        cache.join(format!("{}.wasm", b.sha256())),
        cache.join(format!("{}.wasm", a.sha256())),
    )
    .unwrap();
    assert!(matches!(
        rt.load_cached(a.sha256()),
        Err(JobError::NotCached { .. })
    ));
    assert_eq!(rt.artifact_refusals().get(), 4);
}

#[test]
fn a_cache_directory_open_to_others_is_made_private_and_a_readable_key_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    drop(runtime(dir.path()));
    assert_eq!(mode(&cache), 0o700);
    std::fs::set_permissions(
        cache.join(".artifact-key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let cache_dir = DataDir::open(dir.path()).unwrap().sub("cache").unwrap();
    let err = Runtime::new(cache_dir, jobs::RuntimeConfig::default())
        .err()
        .expect("a readable key must be refused");
    assert!(matches!(err, JobError::UnsafeCache { .. }), "{err}");
}
