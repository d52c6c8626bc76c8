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
use std::net::SocketAddr;
use std::time::Duration;

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
        self.with_socket(|socket| {
            let local = socket.local_addr().ok().and_then(|a| a.as_socket());
            let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
            local == Some(self.local) && peer == Some(self.peer)
        })
        .unwrap_or(false)
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
/// connections. Connections whose request is being handled are marked with `in_use`.
pub struct Reaper {
    local: SocketAddr,
    timeout: Duration,
    in_use: std::sync::Mutex<std::collections::HashMap<SocketAddr, usize>>,
}

/// Marks a connection as being handled while it lives.
pub struct InUse<'a> {
    reaper: &'a Reaper,
    peer: SocketAddr,
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        let mut in_use = self.reaper.lock();
        if let Some(count) = in_use.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                in_use.remove(&self.peer);
            }
        }
    }
}

impl Reaper {
    /// A reaper for the connections to `local`; `start` runs it.
    pub fn new(local: SocketAddr, timeout: Duration) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            local,
            timeout,
            in_use: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<SocketAddr, usize>> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn in_use(&self, peer: SocketAddr) -> InUse<'_> {
        *self.lock().entry(peer).or_default() += 1;
        InUse { reaper: self, peer }
    }

    /// Starts the reaping thread (Unix; elsewhere connections are never reaped).
    pub fn start(self: &std::sync::Arc<Self>) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let reaper = self.clone();
            std::thread::Builder::new()
                .name("glimpse-reaper".into())
                .spawn(move || reaper.run())?;
        }
        Ok(())
    }

    #[cfg(unix)]
    fn run(&self) {
        let mut idle_since = std::collections::HashMap::<SocketAddr, std::time::Instant>::new();
        loop {
            let now = std::time::Instant::now();
            let mut seen = std::collections::HashSet::new();
            for fd in open_descriptors() {
                let socket = ConnectionSocket {
                    fd,
                    local: self.local,
                    peer: self.local,
                };
                let Some(Some(peer)) = socket.with_socket(|s| {
                    let local = s.local_addr().ok().and_then(|a| a.as_socket());
                    let peer = s.peer_addr().ok().and_then(|a| a.as_socket());
                    peer.filter(|_| local == Some(self.local))
                }) else {
                    continue;
                };
                if !seen.insert(peer) || self.lock().contains_key(&peer) {
                    continue;
                }
                let since = *idle_since.entry(peer).or_insert(now);
                if now.duration_since(since) >= self.timeout {
                    socket.with_socket(|s| s.shutdown(std::net::Shutdown::Both));
                }
            }
            idle_since.retain(|peer, _| seen.contains(peer) && !self.lock().contains_key(peer));
            std::thread::sleep(REAP_PERIOD);
        }
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
    fn the_reaper_closes_idle_connections_but_not_ones_in_use() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let reaper = Reaper::new(local, Duration::from_millis(300));
        reaper.start().unwrap();
        let mut idle_client = TcpStream::connect(local).unwrap();
        let (_idle, _) = listener.accept().unwrap();
        let busy_client = TcpStream::connect(local).unwrap();
        let (_busy, busy_peer) = listener.accept().unwrap();
        let _in_use = reaper.in_use(busy_peer);
        let mut buf = [0u8; 1];
        idle_client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(
            idle_client.read(&mut buf).unwrap(),
            0,
            "closed by the reaper"
        );
        busy_client
            .set_read_timeout(Some(Duration::from_millis(800)))
            .unwrap();
        assert!(
            (&busy_client).read(&mut buf).is_err(),
            "still open, no data"
        );
    }

    #[test]
    fn an_unknown_address_pair_is_not_found() {
        let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(ConnectionSocket::find(nowhere, nowhere).is_none());
    }
}
