//! The TCP socket under a tiny_http request, for timeouts. tiny_http owns its sockets and
//! sets no timeouts, so a client that sends its body one byte a second, or stops reading
//! an answer, would hold an HTTP worker for as long as it liked. The socket is found among
//! the process's open descriptors by its address pair (this server's address, the
//! client's), which names exactly one connection; its reads and writes then time out.
//! tiny_http also reads request heads and small bodies (up to 1 KiB) before it hands a
//! request over, in a read that started before any timeout could be set: the `Reaper`
//! closes connections that stay outside a request handler for longer than the timeout,
//! so a client that stalls there loses its connection instead of holding one of
//! tiny_http's threads forever.
//!
//! Unix only (descriptors are enumerated); elsewhere `find` returns `None` and requests
//! run without socket timeouts.
use std::collections::HashMap;
#[cfg(unix)]
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An open connection socket, borrowed by descriptor number for one request.
pub struct ConnectionSocket {
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    #[cfg(unix)]
    local: SocketAddr,
    #[cfg(unix)]
    peer: SocketAddr,
}

#[cfg(unix)]
impl ConnectionSocket {
    /// The socket connecting `local` (this server) with `peer` (the client), if found.
    pub fn find(local: SocketAddr, peer: SocketAddr) -> Option<Self> {
        open_descriptors()
            .into_iter()
            .map(|fd| Self { fd, local, peer })
            .find(|socket| socket.is_still_ours())
    }

    /// Whether the descriptor is still this connection (descriptor numbers are reused
    /// once closed; the request holds the connection open while it is served).
    fn is_still_ours(&self) -> bool {
        self.addresses() == Some((self.local, Some(self.peer)))
    }

    /// The descriptor's (local, peer) addresses, if it is an IP socket (peer `None` when
    /// it is not connected).
    fn addresses(&self) -> Option<(SocketAddr, Option<SocketAddr>)> {
        self.with_socket(|socket| {
            let local = socket.local_addr().ok()?.as_socket()?;
            Some((local, socket.peer_addr().ok().and_then(|a| a.as_socket())))
        })
        .flatten()
    }

    /// Every read and every write on the connection fails after `timeout` without progress.
    pub fn set_timeouts(&self, timeout: Duration) {
        if !self.is_still_ours() {
            return;
        }
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        self.with_socket(|socket| {
            let _ = socket.set_read_timeout(timeout);
            let _ = socket.set_write_timeout(timeout);
        });
    }

    /// Runs `f` on the socket behind the descriptor (`None` if it is not a valid one).
    fn with_socket<T>(&self, f: impl FnOnce(&socket2::SockRef) -> T) -> Option<T> {
        if self.fd < 0 {
            return None;
        }
        // SAFETY: the descriptor is only borrowed for the duration of `f`; a descriptor
        // closed meanwhile makes the calls fail with EBADF, and one reused for another
        // socket fails the address check in `is_still_ours`.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        Some(f(&socket2::SockRef::from(&borrowed)))
    }
}

/// How often the reaper looks at the connections.
#[cfg(unix)]
const REAP_PERIOD: Duration = Duration::from_millis(250);

/// Closes connections that sit outside a request handler for longer than the timeout:
/// stalled request heads and small bodies (which tiny_http reads before handing a request
/// over, in a blocking read no timeout set afterwards can interrupt) and idle keep-alive
/// connections. Request handlers mark their connection with `in_use`; a connection's idle
/// time runs from when the reaper first saw it or its last request ended, whichever is later.
pub struct Reaper {
    // Read by the reaping thread, which only runs on Unix.
    #[cfg_attr(not(unix), allow(dead_code))]
    local: SocketAddr,
    #[cfg_attr(not(unix), allow(dead_code))]
    timeout: Duration,
    connections: Mutex<HashMap<SocketAddr, Activity>>,
}

struct Activity {
    /// Requests of this connection being handled.
    active: usize,
    idle_since: Instant,
}

/// Marks a connection as being handled while it lives.
pub struct InUse<'a> {
    reaper: &'a Reaper,
    peer: SocketAddr,
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        if let Some(activity) = self.reaper.lock().get_mut(&self.peer) {
            activity.active = activity.active.saturating_sub(1);
            activity.idle_since = Instant::now();
        }
    }
}

impl Reaper {
    /// A reaper for the connections to `local`; `start` runs it.
    pub fn new(local: SocketAddr, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            local,
            timeout,
            connections: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Activity>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn in_use(&self, peer: SocketAddr) -> InUse<'_> {
        self.lock()
            .entry(peer)
            .or_insert(Activity {
                active: 0,
                idle_since: Instant::now(),
            })
            .active += 1;
        InUse { reaper: self, peer }
    }

    /// Starts the reaping thread (Unix; elsewhere connections are never reaped).
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let reaper = self.clone();
            std::thread::Builder::new()
                .name("glimpse-reaper".into())
                .spawn(move || loop {
                    reaper.reap_once();
                    std::thread::sleep(REAP_PERIOD);
                })?;
        }
        Ok(())
    }

    /// Shuts down every connection idle for longer than the timeout.
    #[cfg(unix)]
    fn reap_once(&self) {
        let now = Instant::now();
        let mut seen = HashSet::new();
        for fd in open_descriptors() {
            let socket = ConnectionSocket {
                fd,
                local: self.local,
                peer: self.local,
            };
            let Some((local, Some(peer))) = socket.addresses() else {
                continue;
            };
            if local != self.local {
                continue;
            }
            if !seen.insert(peer) {
                continue;
            }
            let mut connections = self.lock();
            let activity = connections.entry(peer).or_insert(Activity {
                active: 0,
                idle_since: now,
            });
            if activity.active == 0 && now.duration_since(activity.idle_since) >= self.timeout {
                drop(connections);
                socket.with_socket(|s| s.shutdown(std::net::Shutdown::Both));
            }
        }
        self.lock()
            .retain(|peer, activity| seen.contains(peer) || activity.active > 0);
    }
}

/// The process's open descriptor numbers (from /proc on Linux, by probing elsewhere).
#[cfg(unix)]
fn open_descriptors() -> Vec<std::os::fd::RawFd> {
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        return entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
    }
    // SAFETY: plain query without arguments.
    let limit = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    (0..limit.clamp(0, 1 << 16) as std::os::fd::RawFd)
        // SAFETY: F_GETFD only reads the descriptor's flags.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .collect()
}

#[cfg(not(unix))]
impl ConnectionSocket {
    pub fn find(_local: SocketAddr, _peer: SocketAddr) -> Option<Self> {
        None
    }

    pub fn set_timeouts(&self, _timeout: Duration) {}
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn finds_the_accepted_socket_and_times_out_its_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut accepted, peer) = listener.accept().unwrap();
        let socket = ConnectionSocket::find(listener.local_addr().unwrap(), peer).unwrap();
        socket.set_timeouts(Duration::from_millis(50));
        let mut buf = [0u8; 4];
        let error = accepted.read(&mut buf).unwrap_err();
        assert!(matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ));
        client.write_all(b"ab").unwrap();
        accepted.read_exact(&mut buf[..2]).unwrap();
        assert_eq!(&buf[..2], b"ab");
        accepted.write_all(b"ok").unwrap();
        let mut answer = [0u8; 2];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"ok");
    }

    #[test]
    fn the_reaper_closes_idle_connections_but_not_ones_in_use_or_recently_used() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let reaper = Reaper::new(local, Duration::from_millis(600));
        reaper.start().unwrap();
        let connect = || {
            let client = TcpStream::connect(local).unwrap();
            let (accepted, peer) = listener.accept().unwrap();
            (client, accepted, peer)
        };
        let (mut idle, _idle_side, _) = connect();
        let (busy, _busy_side, busy_peer) = connect();
        let (chatty, _chatty_side, chatty_peer) = connect();
        let _in_use = reaper.in_use(busy_peer);
        // Short requests, one every 100 ms, for longer than the timeout.
        for _ in 0..12 {
            drop(reaper.in_use(chatty_peer));
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut buf = [0u8; 1];
        idle.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(idle.read(&mut buf).unwrap(), 0, "closed by the reaper");
        for (name, mut client) in [("in use", busy), ("recently used", chatty)] {
            client
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            assert!(
                client.read(&mut buf).is_err(),
                "{name}: still open, no data"
            );
        }
    }

    #[test]
    fn an_unknown_address_pair_is_not_found() {
        let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(ConnectionSocket::find(nowhere, nowhere).is_none());
    }
}
