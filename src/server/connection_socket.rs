//! The TCP socket under a tiny_http request, for timeouts. tiny_http owns its sockets and
//! sets no timeouts, so a client that sends its body one byte a second, or stops reading
//! an answer, would hold an HTTP worker for as long as it liked. The socket is found among
//! the process's open descriptors by its address pair (this server's address, the
//! client's), which names exactly one connection; its reads and writes then time out, and
//! when a body came too slowly its reading side is shut, so tiny_http does not wait for
//! the rest of it before closing the connection.
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
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        self.with_socket(|socket| {
            let _ = socket.set_read_timeout(timeout);
            let _ = socket.set_write_timeout(timeout);
        });
    }

    /// Ends reading: pending and later reads see end-of-file (answers can still be written).
    pub fn stop_reading(&self) {
        if self.is_still_ours() {
            self.with_socket(|socket| {
                let _ = socket.shutdown(std::net::Shutdown::Read);
            });
        }
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

    pub fn stop_reading(&self) {}
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
        socket.stop_reading();
        let mut rest = Vec::new();
        // After shutdown(Read) the accepted side reads end-of-file (buffered bytes may
        // or may not be returned first), and can still write to the client.
        let _ = accepted.read_to_end(&mut rest);
        accepted.write_all(b"ok").unwrap();
        let mut answer = [0u8; 2];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"ok");
    }

    #[test]
    fn an_unknown_address_pair_is_not_found() {
        let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(ConnectionSocket::find(nowhere, nowhere).is_none());
    }
}
