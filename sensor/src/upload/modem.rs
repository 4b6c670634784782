//! The modem check before an upload round: on a closed mobile network the LTE modem answers
//! `AT` with `OK` when it is alive; when it does not, uploading is pointless and the round is
//! postponed (bundles stay queued), as the reference product does.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, BaudRate, SetArg};

/// Most bytes read while waiting for the answer (echo, unsolicited lines, `OK`).
const MAX_ANSWER: usize = 512;

/// Sends `AT\r` to `device` and waits up to `timeout` for a line `OK`. `Err` says why not.
pub fn check(device: &Path, timeout: Duration) -> Result<(), String> {
    let mut port = OpenOptions::new()
        .read(true)
        .write(true)
        // O_NOCTTY: the modem must not become our controlling terminal; O_NONBLOCK: never
        // hang in open() or read() on a wedged device.
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(device)
        .map_err(|e| format!("{}: {e}", device.display()))?;
    // A serial line: raw bytes at the modem's 115200 baud. Not a tty (a test double): as is.
    if let Ok(mut t) = termios::tcgetattr(port.as_fd()) {
        termios::cfmakeraw(&mut t);
        let _ = termios::cfsetspeed(&mut t, BaudRate::B115200);
        let _ = termios::tcsetattr(port.as_fd(), SetArg::TCSANOW, &t);
        let _ = termios::tcflush(port.as_fd(), termios::FlushArg::TCIFLUSH);
    }
    port.write_all(b"AT\r")
        .map_err(|e| format!("{}: writing AT: {e}", device.display()))?;
    let deadline = Instant::now() + timeout;
    let mut answer = Vec::new();
    let mut buf = [0u8; 128];
    loop {
        let text = String::from_utf8_lossy(&answer);
        let mut lines = text.split(['\r', '\n']).map(str::trim);
        if lines.clone().any(|l| l == "OK") {
            return Ok(());
        }
        if lines.any(|l| l == "ERROR") {
            return Err(format!("{}: modem answered ERROR", device.display()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || answer.len() >= MAX_ANSWER {
            return Err(format!(
                "{}: no OK from the modem within {:?} (got {:?})",
                device.display(),
                timeout,
                text.trim()
            ));
        }
        let mut fds = [PollFd::new(port.as_fd(), PollFlags::POLLIN)];
        let wait = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, wait) {
            Ok(0) => continue,
            Ok(_) => match port.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(20)),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("{}: reading: {e}", device.display())),
            },
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("{}: poll: {e}", device.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::OwnedFd;

    /// A pseudo-terminal standing in for the modem; `reply` is what it answers to `AT\r`.
    fn fake_modem(
        reply: Option<&'static [u8]>,
    ) -> (std::path::PathBuf, std::thread::JoinHandle<Vec<u8>>) {
        let pty = nix::pty::openpty(None, None).unwrap();
        let path = nix::unistd::ttyname(pty.slave.as_fd()).unwrap();
        let master: OwnedFd = pty.master;
        let slave = pty.slave;
        let h = std::thread::spawn(move || {
            let _keep_open = slave;
            let mut m = File::from(master);
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while !got.ends_with(b"\r") {
                match m.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            if let Some(r) = reply {
                m.write_all(r).unwrap();
            }
            std::thread::sleep(Duration::from_millis(600));
            got
        });
        (path, h)
    }

    #[test]
    fn ok_answer_passes() {
        let (dev, h) = fake_modem(Some(b"AT\r\r\nOK\r\n"));
        check(&dev, Duration::from_secs(5)).unwrap();
        assert_eq!(h.join().unwrap(), b"AT\r");
    }

    #[test]
    fn silence_error_and_missing_device_postpone() {
        let (dev, h) = fake_modem(None);
        let e = check(&dev, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("no OK"), "{e}");
        h.join().unwrap();
        let (dev, h) = fake_modem(Some(b"\r\nERROR\r\n"));
        let e = check(&dev, Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("ERROR"), "{e}");
        h.join().unwrap();
        let e = check(Path::new("/dev/ttyNOSUCH9"), Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("ttyNOSUCH9"), "{e}");
    }
}
