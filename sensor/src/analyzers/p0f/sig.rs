//! The p0f v3 TCP signature of one SYN or SYN+ACK: what is measured in the IP and TCP
//! headers, and its text form (`ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass`).
//!
//! The measurements follow the signature format documented in p0f's README (section 5) and the
//! behaviour of p0f 3.09b as observed on the same packets (`tests/p0f_agreement.rs`).

use std::fmt;

use crate::decode::{tcp_flags, IpLayer, TcpSegment};

/// Quirk bits, in the order p0f lists (and prints) them.
pub mod quirk {
    pub const DF: u32 = 1 << 0;
    pub const NZ_ID: u32 = 1 << 1;
    pub const ZERO_ID: u32 = 1 << 2;
    pub const ECN: u32 = 1 << 3;
    pub const NZ_MBZ: u32 = 1 << 4;
    pub const FLOW: u32 = 1 << 5;
    pub const ZERO_SEQ: u32 = 1 << 6;
    pub const NZ_ACK: u32 = 1 << 7;
    pub const ZERO_ACK: u32 = 1 << 8;
    pub const NZ_URG: u32 = 1 << 9;
    pub const URG: u32 = 1 << 10;
    pub const PUSH: u32 = 1 << 11;
    pub const OPT_ZERO_TS1: u32 = 1 << 12;
    pub const OPT_NZ_TS2: u32 = 1 << 13;
    pub const OPT_EOL_NZ: u32 = 1 << 14;
    pub const OPT_EXWS: u32 = 1 << 15;
    pub const OPT_BAD: u32 = 1 << 16;

    /// Names as they appear in signatures, index = bit number.
    pub const NAMES: [&str; 17] = [
        "df", "id+", "id-", "ecn", "0+", "flow", "seq-", "ack+", "ack-", "uptr+", "urgf+",
        "pushf+", "ts1-", "ts2+", "opt+", "exws", "bad",
    ];

    /// Quirks that only IPv4 headers can show.
    pub const V4_ONLY: u32 = DF | NZ_ID | ZERO_ID | NZ_MBZ;
    /// Quirks that only IPv6 headers can show.
    pub const V6_ONLY: u32 = FLOW;

    pub fn by_name(name: &str) -> Option<u32> {
        NAMES.iter().position(|n| *n == name).map(|i| 1 << i)
    }
}

/// TCP option kinds p0f names.
pub mod opt {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SOK: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TS: u8 = 8;
}

/// At most this many options are recorded in a layout (40 bytes of options hold at most 40).
pub const MAX_OPTS: usize = 40;

/// The kinds of the TCP options in order of appearance.
#[derive(Clone, Copy)]
pub struct Layout {
    kinds: [u8; MAX_OPTS],
    len: u8,
}

// Layouts compare and hash by the kinds recorded, not the whole array (most are a few
// options long; every SYN's signature is compared with a cached one).
impl PartialEq for Layout {
    #[inline]
    fn eq(&self, other: &Layout) -> bool {
        self.kinds() == other.kinds()
    }
}

impl Eq for Layout {}

impl std::hash::Hash for Layout {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.kinds().hash(h);
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            kinds: [0; MAX_OPTS],
            len: 0,
        }
    }
}

impl Layout {
    /// Appends a kind; `false` when the layout is full.
    pub fn push(&mut self, kind: u8) -> bool {
        match self.kinds.get_mut(self.len as usize) {
            Some(k) => {
                *k = kind;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn kinds(&self) -> &[u8] {
        &self.kinds[..self.len as usize]
    }

    /// Writes the layout (`eol+N` takes the padding length).
    pub fn render(&self, eol_pad: u8, out: &mut impl fmt::Write) -> fmt::Result {
        let mut text = Vec::with_capacity(4 * MAX_OPTS);
        self.push_text(eol_pad, &mut text);
        out.write_str(&String::from_utf8_lossy(&text))
    }

    /// [`Layout::render`] as bytes (the log writer's form: no formatting machinery).
    pub fn push_text(&self, eol_pad: u8, out: &mut Vec<u8>) {
        for (i, &k) in self.kinds().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match k {
                opt::EOL => {
                    out.extend_from_slice(b"eol+");
                    push_dec(out, u64::from(eol_pad));
                }
                opt::NOP => out.extend_from_slice(b"nop"),
                opt::MSS => out.extend_from_slice(b"mss"),
                opt::WS => out.extend_from_slice(b"ws"),
                opt::SOK => out.extend_from_slice(b"sok"),
                opt::SACK => out.extend_from_slice(b"sack"),
                opt::TS => out.extend_from_slice(b"ts"),
                other => {
                    out.push(b'?');
                    push_dec(out, u64::from(other));
                }
            }
        }
    }
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(0, f)
    }
}

/// Writes quirk names separated by commas.
pub fn render_quirks(q: u32, out: &mut impl fmt::Write) -> fmt::Result {
    let mut text = Vec::with_capacity(64);
    push_quirks(q, &mut text);
    out.write_str(&String::from_utf8_lossy(&text))
}

/// [`render_quirks`] as bytes.
pub fn push_quirks(q: u32, out: &mut Vec<u8>) {
    let mut first = true;
    for (i, name) in quirk::NAMES.iter().enumerate() {
        if q & (1 << i) != 0 {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// Largest TTL distance p0f believes in; beyond it the initial TTL is "unknown".
pub const MAX_DIST: u8 = 35;

/// The usual initial TTLs: the smallest of 32, 64, 128, 255 that is not below `ttl`.
pub fn guess_initial_ttl(ttl: u8) -> u8 {
    match ttl {
        0..=32 => 32,
        33..=64 => 64,
        65..=128 => 128,
        _ => 255,
    }
}

/// Why a packet gives no signature (counted as an analyzer weird when malformed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoSig {
    /// Not something p0f fingerprints (fragment, IPv6 extension headers, flag mix): skipped.
    Skip,
    /// Headers too short or inconsistent.
    Malformed,
}

/// What p0f measures of one SYN or SYN+ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketSig {
    pub ver: u8,
    pub ttl: u8,
    /// IPv4 options length (always 0 for IPv6).
    pub olen: u8,
    /// MSS option value, 0 when absent.
    pub mss: u16,
    pub win: u16,
    /// Window scale option value, 0 when absent.
    pub wscale: u8,
    pub layout: Layout,
    /// Bytes after an explicit end-of-options.
    pub eol_pad: u8,
    pub quirks: u32,
    /// Payload present.
    pub payload: bool,
    /// Own timestamp (TS option), 0 when absent.
    pub ts1: u32,
    /// IP plus TCP header bytes.
    pub tot_hdr: u16,
}

/// Measures a TCP segment and its IP header (`layer.header`, `seg.header` must be the raw
/// headers). `syn_only` is true for a SYN without ACK.
pub fn extract(layer: &IpLayer<'_>, seg: &TcpSegment<'_>) -> Result<PacketSig, NoSig> {
    let ip = layer.header;
    let mut quirks = 0u32;
    let (ver, olen, ip_hdr_len) = match ip.first().map(|b| b >> 4) {
        Some(4) => {
            if ip.len() < 20 {
                return Err(NoSig::Malformed);
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < 20 || ihl > ip.len() {
                return Err(NoSig::Malformed);
            }
            let flags_off = u16::from_be_bytes([ip[6], ip[7]]);
            // p0f leaves fragments alone.
            if flags_off & 0x3fff != 0 || layer.reassembled {
                return Err(NoSig::Skip);
            }
            if ip[1] & 0x03 != 0 {
                quirks |= quirk::ECN;
            }
            if flags_off & 0x8000 != 0 {
                quirks |= quirk::NZ_MBZ;
            }
            let id = u16::from_be_bytes([ip[4], ip[5]]);
            if flags_off & 0x4000 != 0 {
                quirks |= quirk::DF;
                if id != 0 {
                    quirks |= quirk::NZ_ID;
                }
            } else if id == 0 {
                quirks |= quirk::ZERO_ID;
            }
            (4u8, (ihl - 20) as u8, ihl)
        }
        Some(6) => {
            if ip.len() < 40 {
                return Err(NoSig::Malformed);
            }
            // p0f reads TCP only right after the fixed IPv6 header.
            if ip[6] != 6 || layer.reassembled {
                return Err(NoSig::Skip);
            }
            let vtf = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]);
            // Traffic class is bits 20..28; its low two bits are ECN.
            if (vtf >> 20) & 0x03 != 0 {
                quirks |= quirk::ECN;
            }
            if vtf & 0x000f_ffff != 0 {
                quirks |= quirk::FLOW;
            }
            (6u8, 0u8, 40usize)
        }
        _ => return Err(NoSig::Malformed),
    };

    let tcp = seg.header;
    if tcp.len() < 20 {
        return Err(NoSig::Malformed);
    }
    let doff = usize::from(tcp[12] >> 4) * 4;
    if doff < 20 || doff > tcp.len() {
        return Err(NoSig::Malformed);
    }
    let flags = seg.flags;
    if flags & (tcp_flags::ECE | tcp_flags::CWR) != 0 || tcp[12] & 0x01 != 0 {
        quirks |= quirk::ECN;
    }
    if seg.seq == 0 {
        quirks |= quirk::ZERO_SEQ;
    }
    if flags & tcp_flags::ACK != 0 {
        if seg.ack == 0 {
            quirks |= quirk::ZERO_ACK;
        }
    } else if seg.ack & 0x0100_0000 != 0 && flags & tcp_flags::RST == 0 {
        // p0f 3.09b (x86) raises `ack+` only when bit 24 of the acknowledgment number is
        // set, not for any non-zero value (measured: tests/p0f_agreement.rs). The reference
        // runs that build, so its logs carry the same quirk.
        quirks |= quirk::NZ_ACK;
    }
    if flags & tcp_flags::URG != 0 {
        quirks |= quirk::URG;
    } else if u16::from_be_bytes([tcp[18], tcp[19]]) != 0 {
        quirks |= quirk::NZ_URG;
    }
    if flags & tcp_flags::PSH != 0 {
        quirks |= quirk::PUSH;
    }

    let syn_only = flags & tcp_flags::ACK == 0;
    let opts = parse_options(&tcp[20..doff], syn_only);
    quirks |= opts.quirks;

    Ok(PacketSig {
        ver,
        ttl: layer.ttl,
        olen,
        mss: opts.mss,
        win: seg.window,
        wscale: opts.wscale,
        layout: opts.layout,
        eol_pad: opts.eol_pad,
        quirks,
        payload: seg.payload_len > 0,
        ts1: opts.ts1,
        tot_hdr: (ip_hdr_len + doff) as u16,
    })
}

#[derive(Default)]
struct Options {
    layout: Layout,
    eol_pad: u8,
    mss: u16,
    wscale: u8,
    ts1: u32,
    quirks: u32,
}

/// Walks the TCP options. Known options with a wrong length byte are flagged `bad` and read at
/// their proper size; an option running past the end stops the walk, also flagged `bad`.
fn parse_options(o: &[u8], syn_only: bool) -> Options {
    let mut r = Options::default();
    let mut i = 0usize;
    let end = o.len();
    while i < end {
        let kind = o[i];
        i += 1;
        if !r.layout.push(kind) {
            r.quirks |= quirk::OPT_BAD;
            break;
        }
        // Bytes this option needs after its kind byte, for the options of fixed size.
        let fixed = match kind {
            opt::EOL => {
                r.eol_pad = (end - i) as u8;
                // p0f 3.09b never looks at the very last byte of the options for `opt+`
                // (measured against it; bug-compatible).
                if o[i..end.saturating_sub(1).max(i)].iter().any(|&b| b != 0) {
                    r.quirks |= quirk::OPT_EOL_NZ;
                }
                break;
            }
            opt::NOP => continue,
            opt::MSS => Some(4u8),
            opt::WS => Some(3),
            opt::SOK => Some(2),
            opt::TS => Some(10),
            _ => None,
        };
        match fixed {
            Some(size) => {
                let rest = usize::from(size) - 1;
                if i + rest > end {
                    r.quirks |= quirk::OPT_BAD;
                    break;
                }
                if o[i] != size {
                    r.quirks |= quirk::OPT_BAD;
                }
                let body = &o[i + 1..i + rest];
                match kind {
                    opt::MSS => r.mss = u16::from_be_bytes([body[0], body[1]]),
                    opt::WS => {
                        r.wscale = body[0];
                        if r.wscale > 14 {
                            r.quirks |= quirk::OPT_EXWS;
                        }
                    }
                    opt::TS => {
                        r.ts1 = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                        let ts2 = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                        if r.ts1 == 0 {
                            r.quirks |= quirk::OPT_ZERO_TS1;
                        }
                        if ts2 != 0 && syn_only {
                            r.quirks |= quirk::OPT_NZ_TS2;
                        }
                    }
                    _ => {}
                }
                i += rest;
            }
            None => {
                let Some(&len) = o.get(i) else {
                    r.quirks |= quirk::OPT_BAD;
                    break;
                };
                if len < 2
                    || (kind == opt::SACK && !(10..=34).contains(&len))
                    || i + usize::from(len) - 1 > end
                {
                    r.quirks |= quirk::OPT_BAD;
                    break;
                }
                i += usize::from(len) - 1;
            }
        }
    }
    r
}

/// How a window size relates to the MSS or MTU, as p0f detects it: `(multiplier, is_mtu)`.
/// `syn_mss` is the MSS of the SYN a SYN+ACK answers (0 for a SYN).
pub fn window_multiple(s: &PacketSig, syn_mss: u16) -> Option<(u16, bool)> {
    let win = u32::from(s.win);
    let mss = u32::from(s.mss);
    if win == 0 || mss < 100 {
        return None;
    }
    const TCP4: u32 = 40;
    const TCP6: u32 = 60;
    let v6 = s.ver == 6;
    let mut candidates: [(u32, bool, bool); 12] = [
        (mss, false, true),
        (mss.wrapping_sub(12), false, s.ts1 != 0),
        (1500 - TCP4, false, true),
        (1500 - TCP4 - 12, false, true),
        (1500 - TCP6, false, v6),
        (1500 - TCP6 - 12, false, v6),
        (mss + TCP4, true, true),
        (mss + u32::from(s.tot_hdr), true, true),
        (mss + TCP6, true, v6),
        (1500, true, true),
        (u32::from(syn_mss), false, syn_mss != 0),
        (u32::from(syn_mss).wrapping_sub(12), false, syn_mss != 0),
    ];
    for (div, is_mtu, on) in candidates.iter_mut() {
        if *on && *div != 0 && *div < 1 << 20 && win % *div == 0 {
            return Some(((win / *div) as u16, *is_mtu));
        }
    }
    None
}

/// The signature as p0f prints it (`raw_sig`).
pub fn render(s: &PacketSig, syn_mss: u16) -> String {
    let mut out = Vec::with_capacity(96);
    render_into(s, syn_mss, &mut out);
    // Always ASCII: digits, names and punctuation.
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends a decimal number without going through `fmt` (this runs once per SYN).
pub fn push_dec(out: &mut Vec<u8>, n: u64) {
    crate::logs::zeek::push_u64(out, n);
}

/// [`render`] into a buffer.
pub fn render_into(s: &PacketSig, syn_mss: u16, out: &mut Vec<u8>) {
    push_dec(out, u64::from(s.ver));
    out.push(b':');
    let guess = guess_initial_ttl(s.ttl);
    let dist = guess - s.ttl;
    push_dec(out, u64::from(s.ttl));
    out.push(b'+');
    if dist > MAX_DIST {
        out.push(b'?');
    } else {
        push_dec(out, u64::from(dist));
    }
    out.push(b':');
    push_dec(out, u64::from(s.olen));
    out.push(b':');
    push_dec(out, u64::from(s.mss));
    out.push(b':');
    match window_multiple(s, syn_mss) {
        Some((n, mtu)) => {
            out.extend_from_slice(if mtu { b"mtu*" } else { b"mss*" });
            push_dec(out, u64::from(n));
        }
        None => push_dec(out, u64::from(s.win)),
    }
    out.push(b',');
    push_dec(out, u64::from(s.wscale));
    out.push(b':');
    s.layout.push_text(s.eol_pad, out);
    out.push(b':');
    push_quirks(s.quirks, out);
    out.push(b':');
    out.push(if s.payload { b'+' } else { b'0' });
}
