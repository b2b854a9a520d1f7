//! [`Runtime`]: the wasmtime engine jobs run on (pooling allocator, epoch interruption with a
//! background ticker) and the compile cache. A component is validated against the
//! `telemetry:job/mapreduce` world, compiled once, and kept as a serialized artifact named by the
//! SHA-256 of its bytes, so later runs (and `load_cached`) skip Cranelift. The cache directory
//! must be owned by this user and is made `0700`, its files `0600`; every artifact is sealed with
//! a keyed MAC ([`ArtifactSeal`]) and one that does not verify is refused, counted
//! ([`Runtime::artifact_refusals`]) and recompiled from the component.

use super::artifact_seal::ArtifactSeal;
use super::bindings::{v0_1, HISTOGRAMS_IMPORT, HOST_IMPORT, JOB_EXPORT};
use super::JobError;
use crate::histograms::RevisionCache;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Engine-wide settings. The defaults fit every guest toolchain measured here (Rust, C, JS,
/// Python) with room for 64 concurrent instances.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Component instances the pool holds at once (one per running worker).
    pub max_instances: u32,
    /// Largest linear memory any instance may reach (per-job limits are lower).
    pub max_memory_bytes: u64,
    /// How often the epoch advances: the granularity of timeouts and cancellation.
    pub epoch_tick: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: 64,
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(20),
        }
    }
}

/// The wasm engine plus the compile cache directory. Cheap to share by reference between jobs.
pub struct Runtime {
    engine: Engine,
    cache: cap_std::fs::Dir,
    seal: ArtifactSeal,
    artifact_refusals: Counter,
    config: RuntimeConfig,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    /// Where `telemetry:job/histograms` looks up a record's definitions.
    histograms: Arc<RevisionCache>,
}

/// A validated, compiled job component.
#[derive(Clone)]
pub struct CompiledJob {
    pub(crate) component: Component,
    sha256: String,
    cache_hit: bool,
    compile_time: Duration,
}

impl CompiledJob {
    /// Hex SHA-256 of the component's bytes: its name in the cache.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// Whether the compiled artifact came from the cache.
    pub fn cache_hit(&self) -> bool {
        self.cache_hit
    }
    /// Time to compile (or to load from the cache).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
}

impl Runtime {
    /// Builds the engine and starts the epoch ticker. `cache_dir` holds compiled artifacts: it must
    /// be owned by this user (it is made `0700`).
    pub fn new(cache_dir: cap_std::fs::Dir, config: RuntimeConfig) -> Result<Runtime, JobError> {
        crate::storage::private::ensure_private_dir(&cache_dir, "the compile cache").map_err(
            |e| JobError::UnsafeCache {
                reason: e.to_string(),
            },
        )?;
        // Per component instance the pool reserves what the largest guests need, so that
        // `max_instances` of them fit at once: a componentize-py (Python) guest instantiates 38
        // core modules (the count is only a counter: reserving the per-component maximum of 64
        // costs nothing); a componentize-qjs (JavaScript) guest defines 3 memories and 3 tables
        // (each memory slot reserves ~4 GiB of address space, not of memory: 256 slots ≈ 1 TiB).
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances * 64)
            .total_memories(config.max_instances * 4)
            .total_tables(config.max_instances * 4)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_memory_size(config.max_memory_bytes as usize);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .max_wasm_stack(1 << 20);
        let engine = Engine::new(&wasm).map_err(|e| JobError::Engine(format!("{e:#}")))?;
        let seal = ArtifactSeal::open(&cache_dir, &engine)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop, tick) = (engine.clone(), ticker_stop.clone(), config.epoch_tick);
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| JobError::io("starting the epoch ticker", e))?
        };
        Ok(Runtime {
            engine,
            cache: cache_dir,
            seal,
            artifact_refusals: Counter::default(),
            config,
            ticker_stop,
            ticker: Some(ticker),
            histograms: Arc::new(RevisionCache::embedded()),
        })
    }

    /// Looks up the definitions of the records jobs read (`telemetry:job/histograms`) in
    /// `histograms` instead of the embedded ones (e.g. the cache conversion uses, or one with
    /// `--histograms` directories).
    pub fn with_histograms(mut self, histograms: Arc<RevisionCache>) -> Runtime {
        self.histograms = histograms;
        self
    }

    /// The definitions jobs' histogram layouts come from.
    pub fn histograms(&self) -> &Arc<RevisionCache> {
        &self.histograms
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Cached artifacts refused because their seal did not verify (each was recompiled), for
    /// `telemetry_jobs_cache_artifact_refusals_total`.
    pub fn artifact_refusals(&self) -> &Counter {
        &self.artifact_refusals
    }

    /// The engine settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Validates and compiles a component, or loads it from the cache when these exact bytes were
    /// compiled before. The original bytes are kept too, so the artifact can be rebuilt.
    pub fn compile(&self, wasm: &[u8]) -> Result<CompiledJob, JobError> {
        let start = Instant::now();
        let sha256 = hex::encode(Sha256::digest(wasm));
        if let Some(component) = self.try_load(&sha256)? {
            return Ok(CompiledJob {
                component,
                sha256,
                cache_hit: true,
                compile_time: start.elapsed(),
            });
        }
        self.compile_fresh(wasm, sha256, start)
    }

    /// Compiles `wasm` (whose SHA-256 is `sha256`) with Cranelift and stores it, sealed.
    fn compile_fresh(
        &self,
        wasm: &[u8],
        sha256: String,
        start: Instant,
    ) -> Result<CompiledJob, JobError> {
        check_header(wasm)?;
        let component =
            Component::new(&self.engine, wasm).map_err(|e| JobError::InvalidComponent {
                reason: format!("{e:#}"),
            })?;
        self.check_world(&component)?;
        let artifact = component
            .serialize()
            .map_err(|e| JobError::Engine(format!("{e:#}")))?;
        self.write_atomic(&format!("{sha256}.wasm"), wasm)?;
        self.write_atomic(
            &format!("{sha256}.cwasm"),
            &self.seal.seal(&sha256, &artifact),
        )?;
        Ok(CompiledJob {
            component,
            sha256,
            cache_hit: false,
            compile_time: start.elapsed(),
        })
    }

    /// The original bytes of a component compiled earlier, by its SHA-256 (a coordinator ships
    /// them to cluster members that do not have them yet).
    pub fn component_bytes(&self, sha256: &str) -> Result<Vec<u8>, JobError> {
        let not_cached = || JobError::NotCached {
            sha256: sha256.to_string(),
        };
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_cached());
        }
        match self.cache.read(format!("{sha256}.wasm")) {
            Ok(wasm) if hex::encode(Sha256::digest(&wasm)) == sha256 => Ok(wasm),
            Ok(_) => Err(not_cached()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_cached()),
            Err(e) => Err(JobError::io("reading a cached component", e)),
        }
    }

    /// Deletes the cached component `sha256` (its bytes and compiled artefact), if present.
    pub fn forget(&self, sha256: &str) {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return;
        }
        for name in [format!("{sha256}.wasm"), format!("{sha256}.cwasm")] {
            if let Err(e) = self.cache.remove_file(&name) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(%name, error = %e, "cannot delete a cached component");
                }
            }
        }
    }

    /// A component compiled earlier (by [`compile`](Self::compile)), by its SHA-256.
    pub fn load_cached(&self, sha256: &str) -> Result<CompiledJob, JobError> {
        let start = Instant::now();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JobError::NotCached {
                sha256: sha256.to_string(),
            });
        }
        if let Some(component) = self.try_load(sha256)? {
            return Ok(CompiledJob {
                component,
                sha256: sha256.into(),
                cache_hit: true,
                compile_time: start.elapsed(),
            });
        }
        // The artifact is gone, refused, or was made by another engine version: recompile the
        // original, when it still is the component of that name.
        match self.cache.read(format!("{sha256}.wasm")) {
            Ok(wasm) if hex::encode(Sha256::digest(&wasm)) == sha256 => {
                self.compile_fresh(&wasm, sha256.into(), start)
            }
            Ok(_) => {
                self.artifact_refusals.inc();
                tracing::warn!(sha256, "cached component does not match its name, refused");
                Err(JobError::NotCached {
                    sha256: sha256.into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(JobError::NotCached {
                sha256: sha256.into(),
            }),
            Err(e) => Err(JobError::io(format!("reading cached job {sha256}"), e)),
        }
    }

    fn try_load(&self, sha256: &str) -> Result<Option<Component>, JobError> {
        let bytes = match self.cache.read(format!("{sha256}.cwasm")) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(JobError::io(format!("reading cached job {sha256}"), e)),
        };
        let artifact = match self.seal.open_sealed(sha256, &bytes) {
            Ok(artifact) => artifact,
            Err(refused) => {
                self.artifact_refusals.inc();
                tracing::warn!(sha256, %refused, "cached artifact refused, recompiling");
                return Ok(None);
            }
        };
        // SAFETY: the seal verified, so these bytes are what `Component::serialize` produced for
        // this component with this engine configuration (the MAC covers the component's SHA-256,
        // the engine's compatibility hash and every byte, under a key only this user can read);
        // they were read into memory before the check, so what is checked is what is loaded.
        match unsafe { Component::deserialize(&self.engine, artifact) } {
            Ok(component) => Ok(Some(component)),
            Err(e) => {
                tracing::warn!(sha256, error = %e, "cached artifact unusable, recompiling");
                Ok(None)
            }
        }
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), JobError> {
        let tmp = format!(".{name}.{}.tmp", uuid::Uuid::new_v4());
        let write = || -> std::io::Result<()> {
            crate::storage::private::write_private(&self.cache, &tmp, bytes)?;
            self.cache.rename(&tmp, &self.cache, name)
        };
        write().map_err(|e| {
            let _ = self.cache.remove_file(&tmp);
            JobError::io(format!("writing {name} to the job cache"), e)
        })
    }

    /// Checks imports and exports against the `telemetry:job/mapreduce` world, naming what is
    /// missing or unexpected.
    fn check_world(&self, component: &Component) -> Result<(), JobError> {
        let ty = component.component_type();
        let invalid = |reason: String| Err(JobError::InvalidComponent { reason });
        let unversioned = |name: &'static str| name.split('@').next().unwrap_or_default();
        for (name, _) in ty.imports(&self.engine) {
            let base = name.split('@').next().unwrap_or(name);
            let allowed = name.starts_with("wasi:")
                || base == unversioned(HOST_IMPORT)
                || base == unversioned(HISTOGRAMS_IMPORT);
            if !allowed {
                return invalid(format!(
                    "imports `{name}`, which the host does not provide (a job may import `{HOST_IMPORT}`, `{HISTOGRAMS_IMPORT}` and WASI 0.2)"
                ));
            }
        }
        // The current contract, else the 0.1.0 one of components built before it.
        let found = [JOB_EXPORT, v0_1::JOB_EXPORT]
            .into_iter()
            .find_map(|name| Some((name, ty.get_export(&self.engine, name)?)));
        let Some((export_name, export)) = found else {
            let found: Vec<&str> = ty.exports(&self.engine).map(|(n, _)| n).collect();
            return invalid(format!(
                "missing export `{JOB_EXPORT}` (or `{}` of a job built against 0.1.0; the component exports [{}]; is it built from wit/job.wit's `mapreduce` world?)",
                v0_1::JOB_EXPORT,
                found.join(", ")
            ));
        };
        let ComponentItem::ComponentInstance(instance) = export.ty else {
            return invalid(format!(
                "export `{export_name}` is not an interface instance"
            ));
        };
        for func in ["init", "map-batch", "combine", "reduce"] {
            if instance.get_export(&self.engine, func).is_none() {
                return invalid(format!(
                    "missing function `{func}` in export `{export_name}`"
                ));
            }
        }
        // Types are checked exactly when the job is linked (see `guest::Linked::new`).
        Ok(())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Tells a core module or random bytes apart from a component before handing them to Cranelift.
fn check_header(wasm: &[u8]) -> Result<(), JobError> {
    let reason = if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        "not a WebAssembly binary (no `\\0asm` header)"
    } else if wasm[4..8] == [1, 0, 0, 0] {
        "a core WebAssembly module, not a component: wrap it with `wasm-tools component new` (see docs/jobs/)"
    } else {
        return Ok(());
    };
    Err(JobError::InvalidComponent {
        reason: reason.into(),
    })
}
