//! The upload body: `multipart/form-data` with the field `label_id` and the file field
//! `file_uploaded`, as the OsecT cloud expects (reference §4.1), streamed from the bundle file
//! with a known length so the request carries a Content-Length (a proxy on the closed network
//! may refuse chunked uploads).

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::thread;
use std::time::{Duration, Instant};

/// A form body ready to send.
pub struct Form<R> {
    pub content_type: String,
    pub len: u64,
    pub body: R,
}

/// The form for bundle `file_name` (the bundle's bare name) of `file_len` bytes.
pub fn form(
    label_id: &str,
    file_name: &str,
    file: File,
    file_len: u64,
    boundary: &str,
) -> Form<impl Read> {
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"label_id\"\r\n\r\n{label_id}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file_uploaded\"; \
         filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
    let len = head.len() as u64 + file_len + tail.len() as u64;
    Form {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        len,
        // `take`: the body is exactly as long as announced even if the file were to change.
        body: Cursor::new(head)
            .chain(file.take(file_len))
            .chain(Cursor::new(tail)),
    }
}

/// A reader that delivers at most `bytes_per_sec` on average: the bandwidth cap. Reads are cut
/// into slices of about a tenth of a second so the link sees a steady trickle, not bursts.
pub struct Throttled<R> {
    inner: R,
    bytes_per_sec: u64,
    start: Option<Instant>,
    delivered: u64,
}

impl<R: Read> Throttled<R> {
    pub fn new(inner: R, bytes_per_sec: u64) -> Throttled<R> {
        Throttled {
            inner,
            bytes_per_sec: bytes_per_sec.max(1),
            start: None,
            delivered: 0,
        }
    }
}

impl<R: Read> Read for Throttled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = *self.start.get_or_insert_with(Instant::now);
        let slice = (self.bytes_per_sec / 10).clamp(256, 64 << 10) as usize;
        let want = buf.len().min(slice);
        let n = self.inner.read(&mut buf[..want])?;
        self.delivered += n as u64;
        let due = Duration::from_secs_f64(self.delivered as f64 / self.bytes_per_sec as f64);
        let elapsed = start.elapsed();
        if due > elapsed {
            thread::sleep(due - elapsed);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn body_has_both_fields_and_exact_length() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("b.tar.zst");
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        File::create(&path).unwrap().write_all(&data).unwrap();
        let f = form(
            "L-7",
            "realtime-2024-01-01-00:00:00.tar.zst",
            File::open(&path).unwrap(),
            data.len() as u64,
            "BOUND",
        );
        assert_eq!(f.content_type, "multipart/form-data; boundary=BOUND");
        let mut body = Vec::new();
        let mut r = f.body;
        r.read_to_end(&mut body).unwrap();
        assert_eq!(body.len() as u64, f.len);
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(
            "--BOUND\r\nContent-Disposition: form-data; name=\"label_id\"\r\n\r\nL-7\r\n--BOUND\r\n"
        ));
        assert!(text
            .contains("name=\"file_uploaded\"; filename=\"realtime-2024-01-01-00:00:00.tar.zst\""));
        assert!(text.ends_with("\r\n--BOUND--\r\n"));
        let start = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let start = start
            + 4
            + body[start + 4..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap()
            + 4;
        assert_eq!(&body[start..start + data.len()], &data[..]);
    }

    #[test]
    fn throttle_paces_the_reader() {
        // 2000 bytes at 10 000 bytes/s: at least 0.2 s, measured here only as a lower bound
        // (a busy machine may be slower, never faster).
        let data = vec![0u8; 2000];
        let mut r = Throttled::new(&data[..], 10_000);
        let t = Instant::now();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 2000);
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
    }
}
