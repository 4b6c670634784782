//! Content-Encoding decoding of message bodies, only to count (and sample) the decoded bytes:
//! Zeek reports `request_body_len`/`response_body_len` after gzip/deflate decoding.
//!
//! Decoding is streaming with fixed buffers (flate2's writer decoders keep one window), and
//! stops once a body decoded to [`MAX_DECODED`] bytes, so a compression bomb costs bounded work.

use std::io::{self, Write};

use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};

/// Decoded bytes after which a body is no longer decoded (counted as weird).
pub const MAX_DECODED: u64 = 64 << 20;

/// The encodings Zeek decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// Collects decoded output: counts it and keeps it for the caller to pick up.
#[derive(Debug)]
struct Sink {
    total: u64,
    cap: u64,
    fresh: Vec<u8>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.total >= self.cap {
            return Err(io::Error::other("decoded body too large"));
        }
        self.total += buf.len() as u64;
        // Only a prefix of each write is kept: callers sample bodies, they do not store them.
        let room = FRESH_MAX.saturating_sub(self.fresh.len());
        self.fresh.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decoded bytes handed back per call at most (the rest is only counted).
const FRESH_MAX: usize = 8 * 1024;

enum Kind {
    Gzip(GzDecoder<Sink>),
    Zlib(ZlibDecoder<Sink>),
    Raw(DeflateDecoder<Sink>),
    /// Deflate whose framing (zlib or raw) is known after the first two bytes.
    Undecided(Vec<u8>),
}

/// Streaming decoder of one body.
pub struct Decoder {
    kind: Option<Kind>,
    failed: bool,
    cap: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("failed", &self.failed)
            .finish()
    }
}

impl Decoder {
    pub fn new(enc: Encoding) -> Decoder {
        Decoder::with_cap(enc, MAX_DECODED)
    }

    /// A decoder that gives up after `cap` decoded bytes.
    pub fn with_cap(enc: Encoding, cap: u64) -> Decoder {
        let sink = Sink {
            total: 0,
            cap,
            fresh: Vec::new(),
        };
        let kind = match enc {
            Encoding::Identity => None,
            Encoding::Gzip => Some(Kind::Gzip(GzDecoder::new(sink))),
            Encoding::Deflate => Some(Kind::Undecided(Vec::new())),
        };
        Decoder {
            kind,
            failed: false,
            cap,
        }
    }

    fn new_sink(&self) -> Sink {
        Sink {
            total: 0,
            cap: self.cap,
            fresh: Vec::new(),
        }
    }

    fn sink(&mut self) -> Option<&mut Sink> {
        match self.kind.as_mut()? {
            Kind::Gzip(d) => Some(d.get_mut()),
            Kind::Zlib(d) => Some(d.get_mut()),
            Kind::Raw(d) => Some(d.get_mut()),
            Kind::Undecided(_) => None,
        }
    }

    /// Feeds encoded bytes; `out` receives the result of this step.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> (u64, bool) {
        out.clear();
        if self.failed || data.is_empty() {
            return (0, false);
        }
        if let Some(Kind::Undecided(head)) = self.kind.as_mut() {
            head.extend_from_slice(data);
            if head.len() < 2 {
                return (0, false);
            }
            let head = std::mem::take(head);
            // "deflate" is meant to be zlib-wrapped, but many servers send raw deflate.
            let zlib =
                head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            let sink = self.new_sink();
            self.kind = Some(if zlib {
                Kind::Zlib(ZlibDecoder::new(sink))
            } else {
                Kind::Raw(DeflateDecoder::new(sink))
            });
            return self.feed(&head, out);
        }
        let before = self.sink().map_or(0, |s| s.total);
        let res = match self.kind.as_mut() {
            Some(Kind::Gzip(d)) => d.write_all(data),
            Some(Kind::Zlib(d)) => d.write_all(data),
            Some(Kind::Raw(d)) => d.write_all(data),
            _ => Ok(()),
        };
        let Some(sink) = self.sink() else {
            return (0, false);
        };
        let count = sink.total - before;
        std::mem::swap(out, &mut sink.fresh);
        sink.fresh.clear();
        if res.is_err() {
            self.failed = true;
            self.kind = None;
            return (count, true);
        }
        (count, false)
    }

    /// End of body: whatever the decoder still holds comes out.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> u64 {
        out.clear();
        let before = self.sink().map_or(0, |s| s.total);
        let _ = match self.kind.as_mut() {
            Some(Kind::Gzip(d)) => d.try_finish(),
            Some(Kind::Zlib(d)) => d.try_finish(),
            Some(Kind::Raw(d)) => d.try_finish(),
            _ => Ok(()),
        };
        let count = match self.sink() {
            Some(s) => {
                std::mem::swap(out, &mut s.fresh);
                s.total - before
            }
            None => 0,
        };
        self.kind = None;
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    fn roundtrip(enc: Encoding, packed: &[u8]) -> u64 {
        let mut d = Decoder::new(enc);
        let mut out = Vec::new();
        let mut total = 0;
        for chunk in packed.chunks(7) {
            total += d.feed(chunk, &mut out).0;
        }
        total + d.finish(&mut out)
    }

    #[test]
    fn counts_decoded_bytes_of_every_framing() {
        let plain: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut g = GzEncoder::new(Vec::new(), Compression::default());
        g.write_all(&plain).unwrap();
        assert_eq!(roundtrip(Encoding::Gzip, &g.finish().unwrap()), 20_000);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&plain).unwrap();
        assert_eq!(roundtrip(Encoding::Deflate, &z.finish().unwrap()), 20_000);
        let mut r = DeflateEncoder::new(Vec::new(), Compression::default());
        r.write_all(&plain).unwrap();
        assert_eq!(roundtrip(Encoding::Deflate, &r.finish().unwrap()), 20_000);
    }

    #[test]
    fn garbage_fails_without_panic_and_bombs_stop() {
        let mut d = Decoder::new(Encoding::Gzip);
        let mut out = Vec::new();
        let (_, failed) = d.feed(b"definitely not gzip data at all", &mut out);
        assert!(failed);
        assert_eq!(d.feed(b"more", &mut out), (0, false));
        // 8 MiB of zeros compress to a few KiB; decoding stops at the cap.
        let mut g = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..8 {
            g.write_all(&zeros).unwrap();
        }
        let packed = g.finish().unwrap();
        let cap = 1 << 20;
        let mut d = Decoder::with_cap(Encoding::Gzip, cap);
        let mut total = 0;
        let mut failed = false;
        for chunk in packed.chunks(4096) {
            let (n, f) = d.feed(chunk, &mut out);
            total += n;
            failed |= f;
            assert!(out.len() <= FRESH_MAX);
        }
        assert!(failed);
        assert!(total <= cap + (64 << 10), "{total}");
    }
}
