//! The handshake every timely mesh connection runs before timely sees the socket: both ends
//! prove they hold the attempt's secret, and the dialler says which process it is.
//!
//! Wire format (all fixed-size, so a peer can never make the other side allocate or wait for
//! more than [`MAX_MESSAGE`] bytes):
//! 1. acceptor → dialler: `MAGIC` (8 bytes) + a fresh 32-byte random challenge `a`;
//! 2. dialler → acceptor: its process index (u64, big-endian) + its own challenge `c` (32) +
//!    `HMAC(secret, "dial" ‖ a ‖ c ‖ index)`;
//! 3. acceptor → dialler (only when the tag verifies, compared in constant time):
//!    `HMAC(secret, "accept" ‖ c ‖ a ‖ acceptor index)`, which the dialler verifies in turn.
//!
//! Each end's challenge is fresh, so a recorded handshake cannot be replayed, and a tag made for
//! one connection is useless on another. Every read has a deadline (the socket's timeout), so a
//! silent or slow peer is dropped rather than blocking the mesh.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hmac::Mac;

use crate::mac::hmac;

/// First bytes the acceptor sends (protocol name and version).
pub const MAGIC: &[u8; 8] = b"tsmesh01";
const CHALLENGE: usize = 32;
const TAG: usize = 32;
/// Largest message of the handshake.
pub const MAX_MESSAGE: usize = 8 + CHALLENGE + TAG;

/// A per-attempt secret shared by the members of one timely run (32 random bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct MeshSecret([u8; 32]);

impl std::fmt::Debug for MeshSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshSecret(<redacted>)")
    }
}

impl MeshSecret {
    /// A fresh secret from the OS's random source.
    pub fn random() -> Result<Self, HandshakeError> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| HandshakeError::Random(e.to_string()))?;
        Ok(MeshSecret(key))
    }

    /// The secret from its hex form (64 hex digits, surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, HandshakeError> {
        let bytes = hex::decode(text.trim()).map_err(|_| HandshakeError::BadSecret)?;
        Ok(MeshSecret(
            bytes.try_into().map_err(|_| HandshakeError::BadSecret)?,
        ))
    }

    /// 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn tag(&self, role: &[u8], first: &[u8], second: &[u8], index: u64) -> [u8; TAG] {
        hmac(&self.0, &[role, first, second, &index.to_be_bytes()])
            .finalize()
            .into_bytes()
            .into()
    }

    fn verify(&self, role: &[u8], first: &[u8], second: &[u8], index: u64, tag: &[u8]) -> bool {
        hmac(&self.0, &[role, first, second, &index.to_be_bytes()])
            .verify_slice(tag)
            .is_ok()
    }
}

/// Why a mesh connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed or the peer was silent past the deadline.
    #[error("handshake i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The acceptor did not start with the protocol's magic bytes.
    #[error("the peer does not speak the mesh handshake")]
    NotMesh,
    /// The peer's tag does not verify: it does not hold this attempt's secret.
    #[error("the peer does not hold this attempt's secret")]
    BadTag,
    /// The dialler claims an index that may not dial this process.
    #[error("the peer claims process index {0}, which may not connect here")]
    BadIndex(u64),
    /// A secret that is not 64 hex digits.
    #[error("a mesh secret is 64 hex digits")]
    BadSecret,
    /// The OS's random source failed.
    #[error("drawing random bytes: {0}")]
    Random(String),
}

fn random_challenge() -> Result<[u8; CHALLENGE], HandshakeError> {
    let mut challenge = [0u8; CHALLENGE];
    getrandom::getrandom(&mut challenge).map_err(|e| HandshakeError::Random(e.to_string()))?;
    Ok(challenge)
}

/// Dialler side, on a fresh connection to process `peer`: proves the secret as process `me`
/// and checks that the acceptor holds it too. Every read waits at most `timeout`.
pub fn dial(
    stream: &mut TcpStream,
    secret: &MeshSecret,
    me: usize,
    peer: usize,
    timeout: Duration,
) -> Result<(), HandshakeError> {
    stream.set_read_timeout(Some(timeout))?;
    let mut magic = [0u8; 8];
    stream.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(HandshakeError::NotMesh);
    }
    let mut challenge = [0u8; CHALLENGE];
    stream.read_exact(&mut challenge)?;
    let theirs = &challenge[..];
    let mine = random_challenge()?;
    let mut message = Vec::with_capacity(8 + CHALLENGE + TAG);
    message.extend_from_slice(&(me as u64).to_be_bytes());
    message.extend_from_slice(&mine);
    message.extend_from_slice(&secret.tag(b"dial", theirs, &mine, me as u64));
    stream.write_all(&message)?;
    let mut answer = [0u8; TAG];
    stream.read_exact(&mut answer)?;
    if !secret.verify(b"accept", &mine, theirs, peer as u64, &answer) {
        return Err(HandshakeError::BadTag);
    }
    stream.set_read_timeout(None)?;
    Ok(())
}

/// Acceptor side, on a connection accepted by process `me`: the dialler's index once it proved
/// the secret and its index is accepted by `allowed`. Every read waits at most `timeout`.
pub fn answer(
    stream: &mut TcpStream,
    secret: &MeshSecret,
    me: usize,
    allowed: impl Fn(usize) -> bool,
    timeout: Duration,
) -> Result<usize, HandshakeError> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mine = random_challenge()?;
    let mut hello = Vec::with_capacity(8 + CHALLENGE);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&mine);
    stream.write_all(&hello)?;
    let mut message = [0u8; 8 + CHALLENGE + TAG];
    stream.read_exact(&mut message)?;
    let index = u64::from_be_bytes(message[..8].try_into().expect("8 bytes"));
    let theirs = &message[8..8 + CHALLENGE];
    if !secret.verify(b"dial", &mine, theirs, index, &message[8 + CHALLENGE..]) {
        return Err(HandshakeError::BadTag);
    }
    let peer = usize::try_from(index).map_err(|_| HandshakeError::BadIndex(index))?;
    if !allowed(peer) {
        return Err(HandshakeError::BadIndex(index));
    }
    stream.write_all(&secret.tag(b"accept", theirs, &mine, me as u64))?;
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const T: Duration = Duration::from_secs(2);

    /// Runs `accept` on one end of a real loopback connection and `client` on the other.
    fn pair<A: Send + 'static>(
        accept: impl FnOnce(TcpStream) -> A + Send + 'static,
        client: impl FnOnce(TcpStream),
    ) -> A {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = std::thread::spawn(move || accept(listener.accept().unwrap().0));
        client(TcpStream::connect(addr).unwrap());
        acceptor.join().unwrap()
    }

    #[test]
    fn members_with_the_secret_connect_both_ways() {
        let secret = MeshSecret::random().unwrap();
        let s = secret.clone();
        let index = pair(
            move |mut c| answer(&mut c, &s, 0, |i| i == 1, T).unwrap(),
            |mut c| dial(&mut c, &secret, 1, 0, T).unwrap(),
        );
        assert_eq!(index, 1);
    }

    #[test]
    fn a_wrong_secret_is_refused_on_both_sides() {
        let (good, bad) = (MeshSecret::random().unwrap(), MeshSecret::random().unwrap());
        let refused = pair(
            move |mut c| answer(&mut c, &good, 0, |_| true, T),
            |mut c| {
                let err = dial(&mut c, &bad, 1, 0, T).unwrap_err();
                // The acceptor never answers a bad tag: the dialler sees the connection close.
                assert!(matches!(err, HandshakeError::Io(_)), "{err:?}");
            },
        );
        assert!(
            matches!(refused, Err(HandshakeError::BadTag)),
            "{refused:?}"
        );
    }

    #[test]
    fn an_index_not_allowed_is_refused_even_with_the_secret() {
        let secret = MeshSecret::random().unwrap();
        let s = secret.clone();
        let refused = pair(
            move |mut c| answer(&mut c, &s, 0, |i| i == 1, T),
            |mut c| {
                let _ = dial(&mut c, &secret, 7, 0, T);
            },
        );
        assert!(
            matches!(refused, Err(HandshakeError::BadIndex(7))),
            "{refused:?}"
        );
    }

    #[test]
    fn garbage_and_silence_are_refused_within_the_deadline() {
        let secret = MeshSecret::random().unwrap();
        let s = secret.clone();
        let garbage = pair(
            move |mut c| answer(&mut c, &s, 0, |_| true, T),
            |mut c| {
                // timely's own greeting (an 8-byte index) followed by junk.
                c.write_all(&1u64.to_be_bytes()).unwrap();
                c.write_all(&[0xAB; 200]).unwrap();
                // Then read until the acceptor hangs up: closing with its challenge unread would
                // reset the connection, and the acceptor could see the reset before the junk.
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = std::io::copy(&mut c, &mut std::io::sink());
            },
        );
        assert!(
            matches!(garbage, Err(HandshakeError::BadTag)),
            "{garbage:?}"
        );
        let started = std::time::Instant::now();
        let silent = pair(
            move |mut c| answer(&mut c, &secret, 0, |_| true, Duration::from_millis(300)),
            |c| {
                std::thread::sleep(Duration::from_millis(600));
                drop(c);
            },
        );
        assert!(matches!(silent, Err(HandshakeError::Io(_))), "{silent:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A dialler reaching something that is not a mesh port gives up too.
        pair(
            |mut c| c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap(),
            |mut c| {
                let err = dial(&mut c, &MeshSecret::random().unwrap(), 1, 0, T).unwrap_err();
                assert!(matches!(err, HandshakeError::NotMesh), "{err:?}");
            },
        );
    }

    #[test]
    fn secrets_round_trip_through_hex_and_never_print() {
        let secret = MeshSecret::random().unwrap();
        assert_eq!(MeshSecret::from_hex(&secret.to_hex()).unwrap(), secret);
        assert!(MeshSecret::from_hex("abcd").is_err());
        assert!(!format!("{secret:?}").contains(&secret.to_hex()));
    }
}
