//! Just enough TLS for the `tls.*` and `ja3*` buffers: the handshake messages of each
//! direction are reassembled from the in-order stream (records split across segments, and
//! handshake messages split across records), then the ClientHello (SNI, JA3), ServerHello
//! (JA3S) and Certificate (the chain; subject, issuer, serial and fingerprint of the first)
//! are decoded. Parsing stops at the first encrypted record. Buffers are bounded; anything
//! malformed ends parsing of that direction, never the sensor.

use md5::{Digest, Md5};
use sha1::Sha1;

/// Largest TLS record body (2^14 plus expansion), per RFC 8446.
const MAX_RECORD: usize = 18_432;
/// Most handshake bytes buffered per direction (certificate chains included).
const MAX_HANDSHAKE: usize = 64 * 1024;

/// What a direction's parser produced from one chunk of stream data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsEvent {
    ClientHello,
    ServerHello,
    Certificate,
}

/// Decoded handshake fields of one connection (both directions).
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    pub version: u16,
    pub sni: Option<Vec<u8>>,
    pub ja3: Option<String>,
    pub ja3_hash: Option<String>,
    pub ja3s: Option<String>,
    pub ja3s_hash: Option<String>,
    /// The certificate chain as sent (DER), server certificate first.
    pub certs: Vec<Vec<u8>>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub fingerprint: Option<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct TlsDir {
    rec: Vec<u8>,
    hs: Vec<u8>,
    stopped: bool,
}

impl TlsDir {
    /// Feeds in-order stream bytes; returns the handshake messages completed.
    pub fn feed(&mut self, data: &[u8], info: &mut TlsInfo, events: &mut Vec<TlsEvent>) {
        if self.stopped {
            return;
        }
        self.rec.extend_from_slice(data);
        loop {
            if self.rec.len() < 5 {
                break;
            }
            let ctype = self.rec[0];
            let len = u16::from_be_bytes([self.rec[3], self.rec[4]]) as usize;
            if !(20..=24).contains(&ctype) || self.rec[1] != 3 || len > MAX_RECORD {
                self.stop();
                return;
            }
            if self.rec.len() < 5 + len {
                break;
            }
            if ctype != 22 {
                // ChangeCipherSpec, alerts or application data: the handshake we can read
                // is over.
                self.stop();
                return;
            }
            if self.hs.len() + len > MAX_HANDSHAKE {
                self.stop();
                return;
            }
            self.hs.extend_from_slice(&self.rec[5..5 + len]);
            self.rec.drain(..5 + len);
            self.handshake(info, events);
            if self.stopped {
                return;
            }
        }
        if self.rec.len() > MAX_RECORD + 5 {
            self.stop();
        }
    }

    fn stop(&mut self) {
        self.stopped = true;
        self.rec = Vec::new();
        self.hs = Vec::new();
    }

    fn handshake(&mut self, info: &mut TlsInfo, events: &mut Vec<TlsEvent>) {
        while self.hs.len() >= 4 {
            let t = self.hs[0];
            let len = u32::from_be_bytes([0, self.hs[1], self.hs[2], self.hs[3]]) as usize;
            if len > MAX_HANDSHAKE {
                self.stop();
                return;
            }
            if self.hs.len() < 4 + len {
                return;
            }
            let body = self.hs[4..4 + len].to_vec();
            self.hs.drain(..4 + len);
            let ok = match t {
                1 => client_hello(&body, info).map(|_| events.push(TlsEvent::ClientHello)),
                2 => server_hello(&body, info).map(|_| events.push(TlsEvent::ServerHello)),
                11 => certificate(&body, info).map(|_| events.push(TlsEvent::Certificate)),
                _ => Some(()),
            };
            if ok.is_none() {
                self.stop();
                return;
            }
        }
    }
}

/// A cursor over a handshake message.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// GREASE values (RFC 8701) are left out of JA3, as its definition says.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn join16(vals: impl Iterator<Item = u16>) -> String {
    let v: Vec<String> = vals
        .filter(|v| !grease(*v))
        .map(|v| v.to_string())
        .collect();
    v.join("-")
}

fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn client_hello(body: &[u8], info: &mut TlsInfo) -> Option<()> {
    let mut r = Rd(body);
    let version = r.u16()?;
    r.take(32)?;
    r.vec8()?;
    let ciphers = r.vec16()?;
    r.vec8()?;
    let mut exts = Vec::new();
    let mut groups = String::new();
    let mut formats = String::new();
    if !r.0.is_empty() {
        let mut e = Rd(r.vec16()?);
        while !e.0.is_empty() {
            let t = e.u16()?;
            let data = e.vec16()?;
            exts.push(t);
            match t {
                0 => {
                    let mut s = Rd(data);
                    let mut list = Rd(s.vec16()?);
                    while !list.0.is_empty() {
                        let kind = list.u8()?;
                        let name = list.vec16()?;
                        if kind == 0 && info.sni.is_none() {
                            info.sni = Some(name.to_vec());
                        }
                    }
                }
                10 => {
                    let mut s = Rd(data);
                    groups = join16(u16s(s.vec16()?));
                }
                11 => {
                    let mut s = Rd(data);
                    let f: Vec<String> = s.vec8()?.iter().map(|b| b.to_string()).collect();
                    formats = f.join("-");
                }
                _ => {}
            }
        }
    }
    info.version = version;
    let ja3 = format!(
        "{},{},{},{},{}",
        version,
        join16(u16s(ciphers)),
        join16(exts.into_iter()),
        groups,
        formats
    );
    info.ja3_hash = Some(md5_hex(&ja3));
    info.ja3 = Some(ja3);
    Some(())
}

fn server_hello(body: &[u8], info: &mut TlsInfo) -> Option<()> {
    let mut r = Rd(body);
    let version = r.u16()?;
    r.take(32)?;
    r.vec8()?;
    let cipher = r.u16()?;
    r.u8()?;
    let mut exts = Vec::new();
    if !r.0.is_empty() {
        let mut e = Rd(r.vec16()?);
        while !e.0.is_empty() {
            let t = e.u16()?;
            e.vec16()?;
            exts.push(t);
        }
    }
    let ja3s = format!("{},{},{}", version, cipher, join16(exts.into_iter()));
    info.ja3s_hash = Some(md5_hex(&ja3s));
    info.ja3s = Some(ja3s);
    Some(())
}

fn certificate(body: &[u8], info: &mut TlsInfo) -> Option<()> {
    let mut r = Rd(body);
    let total = r.u24()?;
    let mut list = Rd(r.take(total)?);
    let mut certs = Vec::new();
    while !list.0.is_empty() {
        let n = list.u24()?;
        certs.push(list.take(n)?.to_vec());
    }
    if let Some(first) = certs.first() {
        let fp = Sha1::digest(first);
        info.fingerprint = Some(
            fp.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        );
        if let Ok((_, c)) = x509_parser::parse_x509_certificate(first) {
            info.subject = Some(c.subject().to_string());
            info.issuer = Some(c.issuer().to_string());
            info.serial = Some(
                c.raw_serial()
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            );
            info.not_before = Some(c.validity().not_before.timestamp());
            info.not_after = Some(c.validity().not_after.timestamp());
        }
    }
    info.certs = certs;
    Some(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello record with an SNI extension, a GREASE cipher and supported groups.
    pub fn client_hello_record(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        // server_name
        let name = sni.as_bytes();
        let mut sn = Vec::new();
        sn.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sn.push(0);
        sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sn.extend_from_slice(name);
        ext.extend_from_slice(&0u16.to_be_bytes());
        ext.extend_from_slice(&(sn.len() as u16).to_be_bytes());
        ext.extend_from_slice(&sn);
        // supported_groups: x25519, secp256r1
        ext.extend_from_slice(&[0, 10, 0, 6, 0, 4, 0, 29, 0, 23]);
        // ec_point_formats: uncompressed
        ext.extend_from_slice(&[0, 11, 0, 2, 1, 0]);
        let mut body = Vec::new();
        body.extend_from_slice(&[3, 3]);
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 6, 0x0a, 0x0a, 0x13, 0x01, 0xc0, 0x2f]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn client_hello_across_segments() {
        let rec = client_hello_record("www.example.com");
        let mut d = TlsDir::default();
        let mut info = TlsInfo::default();
        let mut ev = Vec::new();
        for chunk in rec.chunks(7) {
            d.feed(chunk, &mut info, &mut ev);
        }
        assert_eq!(ev, vec![TlsEvent::ClientHello]);
        assert_eq!(info.sni.as_deref(), Some(&b"www.example.com"[..]));
        assert_eq!(info.ja3.as_deref(), Some("771,4865-49199,0-10-11,29-23,0"));
        assert_eq!(info.ja3_hash.as_ref().unwrap().len(), 32);
    }

    #[test]
    fn garbage_stops_quietly() {
        let mut d = TlsDir::default();
        let mut info = TlsInfo::default();
        let mut ev = Vec::new();
        d.feed(b"GET / HTTP/1.1\r\n\r\n", &mut info, &mut ev);
        d.feed(&[22, 3, 1, 0xff, 0xff], &mut info, &mut ev);
        assert!(ev.is_empty());
        // A record claiming a truncated hello: parsed as far as it goes, no panic.
        let mut d = TlsDir::default();
        d.feed(&[22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3], &mut info, &mut ev);
        assert!(ev.is_empty());
    }
}
