//! The upload connection's socket, so that `upload.timeout_s` bounds a stall rather than a
//! slow transfer, and ends a stalled one after about that long.

use std::io;
use std::sync::Arc;

use rustls::ClientConfig;

/// Most bytes of the request the kernel may hold unsent for the upload socket.
///
/// Without a limit the kernel's send buffer grows to megabytes: the last write of a body
/// returns while much of it has not left yet, and the wait for the answer — bounded by the
/// per-stall timeout — would include draining it over a slow uplink, cutting a transfer that
/// is still progressing. With it each write completes in step with the link, so the timeout
/// keeps meaning "nothing moved for that long". 16 KiB drains in half a second at 256 kbit/s.
const UNSENT_LIMIT: usize = 16 << 10;

// nix has no wrapper for TCP_NOTSENT_LOWAT; its macro builds one from the option number.
use nix::{libc, setsockopt_impl, sockopt_impl};
sockopt_impl!(
    TcpNotSentLowat,
    SetOnly,
    libc::IPPROTO_TCP,
    libc::TCP_NOTSENT_LOWAT,
    usize
);

/// ureq's rustls connector over a [`StallFuse`], after limiting the socket's unsent bytes
/// ([`UNSENT_LIMIT`]).
struct PacedTls(Arc<ClientConfig>);

/// The socket under TLS, failing every call once one has timed out.
///
/// rustls ignores a failed socket write after it has taken the plaintext and retries it, and
/// reads, on the next call; the kernel returns a partial write after waiting the full timeout
/// as a success. On a dead link each of these waited the timeout again, so a stall took several
/// times `timeout_s` to end the request. A socket that stalled once is abandoned.
#[derive(Debug)]
struct StallFuse {
    io: Box<dyn ureq::ReadWrite>,
    blown: bool,
}

impl StallFuse {
    fn guard<T>(
        &mut self,
        op: impl FnOnce(&mut dyn ureq::ReadWrite) -> io::Result<T>,
    ) -> io::Result<T> {
        if self.blown {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection stalled earlier",
            ));
        }
        let r = op(self.io.as_mut());
        if let Err(e) = &r {
            self.blown = matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            );
        }
        r
    }
}

impl io::Read for StallFuse {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.guard(|io| io.read(buf))
    }
}

impl io::Write for StallFuse {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let started = std::time::Instant::now();
        let r = self.guard(|io| io.write(buf));
        // A write that took part of `buf` and then ran out of its timeout waiting for room
        // returns that part as success. Counted as a stall: a link that cannot carry one TLS
        // record (at most 16 KiB) within `timeout_s` is as good as down.
        let limit = self
            .io
            .socket()
            .and_then(|s| s.write_timeout().ok().flatten());
        if r.is_ok() && limit.is_some_and(|l| started.elapsed() >= l) {
            self.blown = true;
        }
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        self.guard(|io| io.flush())
    }
}

impl ureq::ReadWrite for StallFuse {
    fn socket(&self) -> Option<&std::net::TcpStream> {
        self.io.socket()
    }
}

impl ureq::TlsConnector for PacedTls {
    fn connect(
        &self,
        dns_name: &str,
        io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        if let Some(sock) = io.socket() {
            if let Err(e) = nix::sys::socket::setsockopt(sock, TcpNotSentLowat, &UNSENT_LIMIT) {
                // Only the timeout's meaning on a slow link suffers; the upload still works.
                log::debug!("upload: TCP_NOTSENT_LOWAT not set: {e}");
            }
        }
        let fused = StallFuse { io, blown: false };
        self.0.connect(dns_name, Box::new(fused))
    }
}

/// The TLS connector of the uploader's HTTP agent.
pub fn connector(config: ClientConfig) -> Arc<impl ureq::TlsConnector> {
    Arc::new(PacedTls(Arc::new(config)))
}
