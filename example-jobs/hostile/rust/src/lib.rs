//! hostile: a test guest that misbehaves in the way its parameter names, so the host's tests can
//! show each misbehaviour is contained. Map-only; the sandbox probes emit what the guest saw.
//!
//! | param        | behaviour in `map`                                           |
//! |--------------|--------------------------------------------------------------|
//! | `loop`       | spins forever                                                |
//! | `memory`     | allocates 1 MiB blocks forever                               |
//! | `emit-flood` | emits pairs forever                                          |
//! | `panic:ID`   | panics on the record with id ID (`panic:*`: on every record) |
//! | `recursion`  | recurses without end                                         |
//! | `files`      | lists preopened directories, tries to open files             |
//! | `env`        | reads environment variables, arguments and the cwd           |
//! | `socket`     | tries a TCP connection and a DNS lookup                      |
//! | `log-flood`  | a line to stdout, 100,000 `log` lines per record, then emits |
//! | `sleep`      | blocks an hour on a `wasi:clocks` pollable (`pollable.block`) |
//! | `poll-sleep` | waits an hour in `wasi:io/poll.poll` on two clock pollables  |
//! | `nap`        | blocks 20 ms on a clock pollable, then emits (`napped`, ID)   |
//! | `big-reduce:N` | emits (ID, `1`); `reduce` returns N MiB per key            |
use std::hint::black_box;
use telemetry_job::{emit, export_job, Job, Level, Record, Spec};

struct Hostile {
    mode: String,
}

impl Job for Hostile {
    fn init(param: &str) -> Result<Self, String> {
        Ok(Hostile { mode: param.to_string() })
    }
    // Older form on purpose (`export_job!(Hostile)`, phases from the spec): its reduce phase
    // depends on the parameter, and the older form must keep building.
    #[allow(deprecated)]
    fn spec(&self) -> Spec {
        match self.mode.starts_with("big-reduce:") {
            true => Spec::fields(&[]).reduce(),
            false => Spec::fields(&[]),
        }
    }
    fn reduce(&self, _key: &str, _values: Vec<String>) -> String {
        let mib: usize = self.mode.strip_prefix("big-reduce:").and_then(|n| n.parse().ok()).unwrap_or(1);
        "x".repeat(mib << 20)
    }
    fn map(&self, record: &Record) -> Result<(), String> {
        match self.mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut blocks = Vec::new();
                loop {
                    blocks.push(black_box(vec![7u8; 1 << 20]));
                }
            }
            "emit-flood" => loop {
                emit(record.id, "flood");
            },
            "recursion" => {
                emit("depth", &recurse(black_box(1)).to_string());
            }
            "files" => probe_files(),
            "env" => probe_env(),
            "socket" => probe_sockets(),
            "log-flood" => {
                let stdout = wasi::cli::stdout::get_stdout();
                let _ = stdout.blocking_write_and_flush(format!("stdout line of record {}\n", record.id).as_bytes());
                for i in 0..100_000 {
                    telemetry_job::log(Level::Info, &format!("log line {i} of record {}", record.id));
                }
                emit("logged", record.id);
            }
            "sleep" => {
                wasi::clocks::monotonic_clock::subscribe_duration(HOUR_NS).block();
                emit("woke", record.id);
            }
            "poll-sleep" => {
                let a = wasi::clocks::monotonic_clock::subscribe_duration(HOUR_NS);
                let b = wasi::clocks::monotonic_clock::subscribe_duration(2 * HOUR_NS);
                let ready = wasi::io::poll::poll(&[&a, &b]);
                emit("woke", &format!("{ready:?}"));
            }
            "nap" => {
                let start = wasi::clocks::monotonic_clock::now();
                wasi::clocks::monotonic_clock::subscribe_duration(20_000_000).block();
                let slept_ms = (wasi::clocks::monotonic_clock::now() - start) / 1_000_000;
                emit("napped", &format!("{} {}", record.id, if slept_ms >= 20 { "20ms+" } else { "short" }));
            }
            mode if mode.starts_with("big-reduce:") => emit(record.id, "1"),
            mode => match mode.strip_prefix("panic:") {
                Some(id) if id == "*" || id == record.id => panic!("hostile guest panics on record {}", record.id),
                Some(_) => emit("ok", record.id),
                None => return Err(format!("unknown hostile mode {mode:?}")),
            },
        }
        Ok(())
    }
}

/// One hour in nanoseconds (a `wasi:clocks` duration).
const HOUR_NS: u64 = 3_600 * 1_000_000_000;

#[allow(unconditional_recursion, reason = "the point of this probe")]
fn recurse(n: u64) -> u64 {
    // Each frame keeps a buffer alive so neither LLVM nor Cranelift can turn this into a loop.
    let buf = black_box([n as u8; 256]);
    black_box(recurse(n + 1)) + buf[0] as u64
}

fn probe_files() {
    let dirs = wasi::filesystem::preopens::get_directories();
    emit("preopens", &dirs.len().to_string());
    for (dir, name) in &dirs {
        let opened = dir.open_at(
            wasi::filesystem::types::PathFlags::empty(),
            "etc/passwd",
            wasi::filesystem::types::OpenFlags::empty(),
            wasi::filesystem::types::DescriptorFlags::READ,
        );
        emit("open", &format!("{name}: {:?}", opened.map(|_| "opened")));
    }
}

fn probe_env() {
    let vars = wasi::cli::environment::get_environment();
    emit("env-vars", &vars.len().to_string());
    emit("args", &wasi::cli::environment::get_arguments().len().to_string());
    emit("cwd", &format!("{:?}", wasi::cli::environment::initial_cwd()));
}

fn probe_sockets() {
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let network = wasi::sockets::instance_network::instance_network();
    let outcome = match wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Err(e) => format!("create: {e:?}"),
        Ok(socket) => {
            let addr = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: 80, address: (127, 0, 0, 1) });
            match socket.start_connect(&network, addr) {
                Err(e) => format!("connect: {e:?}"),
                Ok(()) => {
                    socket.subscribe().block();
                    format!("connect: {:?}", socket.finish_connect().map(|_| "connected"))
                }
            }
        }
    };
    emit("tcp", &outcome);
    let lookup = wasi::sockets::ip_name_lookup::resolve_addresses(&network, "localhost");
    emit("dns", &format!("{:?}", lookup.map(|_| "resolver created")));
}

export_job!(Hostile);
