//! The TCP mesh of one timely run, made by us instead of timely: each process listens on its own
//! address, dials every lower-indexed process and accepts every higher-indexed one, and every
//! connection must pass the [`handshake`] (the attempt's secret, the claimed index) before
//! timely's send/receive threads get it (`initialize_networking_from_sockets`).
//!
//! A connection that fails the handshake (a raw TCP probe, garbage, timely's bare 8-byte index,
//! a wrong secret, a duplicate or impossible index) is logged, counted and closed; the process
//! keeps waiting for its real peers until the deadline. Nothing an unauthenticated peer sends
//! reaches timely, whose own protocol trusts its input.

use std::any::Any;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

use super::handshake::{self, HandshakeError, MeshSecret};

/// Connections this process refused at the handshake, over every run (exposed on `/metrics` as
/// `telemetry_cluster_mesh_handshakes_refused_total` by whichever process serves metrics).
static REFUSED: std::sync::LazyLock<prometheus_client::metrics::counter::Counter> =
    std::sync::LazyLock::new(Default::default);

/// The process-wide counter of refused mesh handshakes (a handle on the same counter).
pub fn refused_handshakes() -> prometheus_client::metrics::counter::Counter {
    REFUSED.clone()
}

/// How one process joins the mesh.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Every process's `host:port`, the same list everywhere.
    pub addresses: Vec<String>,
    /// This process's index in `addresses`.
    pub process: usize,
    /// The attempt's secret.
    pub secret: MeshSecret,
    /// The whole mesh must be up within this long.
    pub deadline: Duration,
    /// One handshake's reads wait at most this long.
    pub handshake_timeout: Duration,
}

impl MeshConfig {
    /// Defaults: 60 s for the mesh, 2 s per handshake read.
    pub fn new(addresses: Vec<String>, process: usize, secret: MeshSecret) -> Self {
        MeshConfig {
            addresses,
            process,
            secret,
            deadline: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(2),
        }
    }
}

/// Why the mesh could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// This process's address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address given for this process.
        address: String,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// A peer was not reachable (or did not pass the handshake) before the deadline.
    #[error(
        "process {peer} ({address}) did not join the mesh within {secs} s (last error: {last})"
    )]
    Timeout {
        /// Index of the process that did not join.
        peer: usize,
        /// Its address.
        address: String,
        /// The join deadline, in seconds.
        secs: u64,
        /// The last connection or handshake error seen.
        last: String,
    },
    /// The peer we dialled answered the handshake but does not hold the secret.
    #[error("process {peer} ({address}) refused or failed the handshake: {source}")]
    Refused {
        /// Index of the process dialled.
        peer: usize,
        /// Its address.
        address: String,
        /// Why the handshake failed.
        source: HandshakeError,
    },
    /// `process` is not an index into `addresses`.
    #[error("process {process} is not an index into the {count} addresses")]
    BadIndex {
        /// This process's index.
        process: usize,
        /// How many addresses were given.
        count: usize,
    },
    /// timely's networking threads could not start.
    #[error("starting timely's networking: {0}")]
    Timely(std::io::Error),
}

/// The authenticated sockets, one per process (`None` at this process's own index), and how
/// many connections were refused meanwhile.
pub struct Mesh {
    /// One authenticated socket per process, by index; `None` at this process's own index.
    pub sockets: Vec<Option<TcpStream>>,
    /// Connections refused (failed handshake) while the mesh formed.
    pub refused: u64,
}

/// Ports reserved for meshes about to form ([`reserve`]), at most this many (oldest released).
const MAX_RESERVED: usize = 32;

/// Listeners bound by [`reserve`] and not yet taken by [`connect`].
static RESERVED: std::sync::Mutex<Vec<(String, TcpListener)>> = std::sync::Mutex::new(Vec::new());

/// Binds a free port on `host` for a mesh about to form and keeps it bound (so no other process
/// takes it meanwhile) until [`connect`] for that address takes the listener; `host:port`.
pub fn reserve(host: &str) -> std::io::Result<String> {
    let listener = TcpListener::bind((host, 0))?;
    let port = listener.local_addr()?.port();
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut reserved = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    reserved.push((address.clone(), listener));
    if reserved.len() > MAX_RESERVED {
        reserved.remove(0);
    }
    Ok(address)
}

/// The listener [`reserve`] bound for `address`, if it is still held.
fn take_reserved(address: &str) -> Option<TcpListener> {
    let mut reserved = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    let pos = reserved.iter().position(|(a, _)| a == address)?;
    Some(reserved.remove(pos).1)
}

/// Connects this process to every other one (see the module doc).
pub fn connect(config: &MeshConfig) -> Result<Mesh, MeshError> {
    let count = config.addresses.len();
    let me = config.process;
    if me >= count {
        return Err(MeshError::BadIndex { process: me, count });
    }
    let started = Instant::now();
    let listener = match take_reserved(&config.addresses[me]) {
        Some(listener) => listener,
        None => {
            TcpListener::bind(config.addresses[me].as_str()).map_err(|source| MeshError::Bind {
                address: config.addresses[me].clone(),
                source,
            })?
        }
    };
    listener
        .set_nonblocking(true)
        .map_err(|source| MeshError::Bind {
            address: config.addresses[me].clone(),
            source,
        })?;
    let dialled = std::thread::scope(|s| {
        let dialler = s.spawn(|| dial_lower(config, started));
        let accepted = accept_higher(config, &listener, started);
        let dialled = dialler.join().expect("the dial thread does not panic");
        (dialled, accepted)
    });
    let (lower, (higher, refused)) = (dialled.0?, dialled.1?);
    let mut sockets: Vec<Option<TcpStream>> = lower.into_iter().map(Some).collect();
    sockets.push(None);
    sockets.extend(higher.into_iter().map(Some));
    Ok(Mesh { sockets, refused })
}

/// Dials processes `0..me` in order, retrying refused connects until the deadline.
fn dial_lower(config: &MeshConfig, started: Instant) -> Result<Vec<TcpStream>, MeshError> {
    let mut streams = Vec::with_capacity(config.process);
    for (peer, address) in config.addresses.iter().enumerate().take(config.process) {
        let mut last = String::from("not tried");
        let stream = loop {
            if started.elapsed() >= config.deadline {
                return Err(MeshError::Timeout {
                    peer,
                    address: address.clone(),
                    secs: config.deadline.as_secs(),
                    last,
                });
            }
            match TcpStream::connect(address.as_str()) {
                Ok(mut stream) => {
                    let _ = stream.set_nodelay(true);
                    handshake::dial(
                        &mut stream,
                        &config.secret,
                        config.process,
                        peer,
                        config.handshake_timeout,
                    )
                    .map_err(|source| MeshError::Refused {
                        peer,
                        address: address.clone(),
                        source,
                    })?;
                    break stream;
                }
                Err(e) => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        streams.push(stream);
    }
    Ok(streams)
}

/// Accepts processes `me+1..` (any order) until each has passed the handshake or the deadline.
fn accept_higher(
    config: &MeshConfig,
    listener: &TcpListener,
    started: Instant,
) -> Result<(Vec<TcpStream>, u64), MeshError> {
    let me = config.process;
    let count = config.addresses.len();
    let mut slots: Vec<Option<TcpStream>> = (me + 1..count).map(|_| None).collect();
    let mut refused = 0u64;
    let mut last = String::from("no connection");
    while let Some(missing) = slots.iter().position(Option::is_none) {
        if started.elapsed() >= config.deadline {
            return Err(MeshError::Timeout {
                peer: me + 1 + missing,
                address: config.addresses[me + 1 + missing].clone(),
                secs: config.deadline.as_secs(),
                last,
            });
        }
        let (mut stream, from) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                last = e.to_string();
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let open = |peer: usize| peer > me && peer < count && slots[peer - me - 1].is_none();
        match handshake::answer(
            &mut stream,
            &config.secret,
            me,
            open,
            config.handshake_timeout,
        ) {
            Ok(peer) => slots[peer - me - 1] = Some(stream),
            Err(e) => {
                refused += 1;
                REFUSED.inc();
                last = format!("{from}: {e}");
                tracing::warn!(%from, error = %e, "refused a mesh connection");
            }
        }
    }
    Ok((slots.into_iter().flatten().collect(), refused))
}

/// A run's network: what keeps timely's network threads alive (hand it to
/// `timely::execute::execute_from`), and a way to cut every mesh connection.
pub struct Network {
    /// timely's network guard.
    pub guard: Box<dyn Any + Send>,
    /// Cuts the mesh's connections.
    pub cut: MeshCut,
}

impl Network {
    /// For a run without a mesh: only the guard.
    pub fn local(guard: Box<dyn Any + Send>) -> Network {
        Network {
            guard,
            cut: MeshCut {
                sockets: Vec::new(),
            },
        }
    }
}

/// Clones of a run's mesh sockets (the same connections timely uses).
pub struct MeshCut {
    sockets: Vec<TcpStream>,
}

impl MeshCut {
    /// Shuts down every mesh connection of this process: its timely threads (and its peers')
    /// see the connections break and the run ends. A cancelled run whose peer froze (stopped,
    /// partitioned) waits for that peer's progress forever otherwise.
    pub fn cut(&mut self) {
        for socket in self.sockets.drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Whether there is nothing (left) to cut.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// timely's allocators over the authenticated sockets: pass them to
/// `timely::execute::execute_from` (the [`Network`] keeps the network threads alive).
pub fn allocators(
    sockets: Vec<Option<TcpStream>>,
    process: usize,
    threads: usize,
) -> Result<(Vec<AllocatorBuilder>, Network), MeshError> {
    let clones = sockets
        .iter()
        .flatten()
        .map(TcpStream::try_clone)
        .collect::<Result<Vec<_>, _>>()
        .map_err(MeshError::Timely)?;
    let hooks = Hooks::default();
    let local =
        ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) =
        initialize_networking_from_sockets(local, sockets, process, threads, hooks)
            .map_err(MeshError::Timely)?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        Network {
            guard: Box::new(guard),
            cut: MeshCut { sockets: clones },
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn addresses(n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn three_processes_connect_while_intruders_are_refused() {
        let addrs = addresses(3);
        let secret = MeshSecret::random().unwrap();
        let before = refused_handshakes().get();
        // Process 0 starts first; intruders reach it before its real peers.
        let first = {
            let config = MeshConfig::new(addrs.clone(), 0, secret.clone());
            std::thread::spawn(move || connect(&config))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut probe = loop {
            match TcpStream::connect(&addrs[0]) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("process 0 never listened: {e}"),
            }
        };
        // timely's bare greeting, then junk.
        probe.write_all(&2u64.to_be_bytes()).unwrap();
        probe.write_all(&[7u8; 100]).unwrap();
        // A peer with another secret claiming index 1.
        let mut liar = TcpStream::connect(&addrs[0]).unwrap();
        let err = handshake::dial(
            &mut liar,
            &MeshSecret::random().unwrap(),
            1,
            0,
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(matches!(err, HandshakeError::Io(_)), "{err:?}");
        let others: Vec<_> = (1..3)
            .map(|p| {
                let config = MeshConfig::new(addrs.clone(), p, secret.clone());
                std::thread::spawn(move || connect(&config))
            })
            .collect();
        let zero = first.join().unwrap().unwrap();
        assert_eq!(zero.refused, 2, "the probe and the liar");
        // The process-wide counter saw them too (other tests may add theirs meanwhile).
        assert!(refused_handshakes().get() >= before + 2);
        assert!(
            zero.sockets[0].is_none() && zero.sockets[1].is_some() && zero.sockets[2].is_some()
        );
        for (p, other) in others.into_iter().enumerate() {
            let mesh = other.join().unwrap().unwrap();
            assert!(mesh.sockets[p + 1].is_none());
            assert_eq!(mesh.sockets.iter().flatten().count(), 2);
        }
    }

    #[test]
    fn a_missing_peer_is_named_after_the_deadline() {
        let addrs = addresses(2);
        let mut config = MeshConfig::new(addrs.clone(), 0, MeshSecret::random().unwrap());
        config.deadline = Duration::from_millis(300);
        let err = connect(&config).err().unwrap().to_string();
        assert!(
            err.contains("process 1") && err.contains(&addrs[1]),
            "{err}"
        );
    }
}
