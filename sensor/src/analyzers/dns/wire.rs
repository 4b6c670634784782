//! The DNS wire format (RFC 1035 §4), read the way Zeek's DNS interpreter reads it, so that
//! dns.log shows what Zeek shows even for odd messages: names are decompressed by following
//! pointers that must point strictly backwards (which also makes loops impossible), a name is
//! at most 512 bytes, a label too long or running past the end ends the name where it is, and
//! a section stops at the first record that does not fit. Every read is bounds-checked; a
//! malformed message yields what could be read plus [`Weird`] flags, never a panic.
//!
//! Only what dns.log needs is rendered: the questions, and the answer section (for dynamic
//! updates the prerequisite and update sections) as Zeek's `answers` strings. The authority
//! and additional sections are not read, as Zeek skips them by default
//! (`dns_skip_all_auth`/`dns_skip_all_addl`).

use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::ops::Range;

use super::names::qtype_name;

pub const HEADER_LEN: usize = 12;
/// More questions than this is not DNS (Zeek's `dns_max_queries`): a protocol violation.
pub const MAX_QUESTIONS: u16 = 25;
/// Rendered answers kept per message (Zeek's `Log::default_max_field_container_elements`).
pub const MAX_ANSWERS: usize = 100;
/// Bytes of one rendered answer or query kept (Zeek's `Log::default_max_field_string_bytes`).
pub const MAX_STRING: usize = 4096;
/// Bytes of rendered text per message, all answers together: a bound on memory when a
/// message decompresses into far more text than it holds.
const MAX_TEXT: usize = 64 * 1024;
/// Room for one decompressed name (Zeek's 513-byte buffer less its terminator).
const NAME_BUDGET: usize = 512;
/// Compression pointers followed within one name (Zeek's `dns_max_compression_chain_depth`).
/// Pointers only go backwards, so a name ends anyway; this keeps the work per name small when
/// a message chains pointers on purpose.
const MAX_POINTERS: usize = 20;

pub const OPCODE_QUERY: u8 = 0;
pub const OPCODE_NOTIFY: u8 = 4;
pub const OPCODE_UPDATE: u8 = 5;

const CLASS_NONE: u16 = 254;
const CLASS_ANY: u16 = 255;
const TYPE_ANY: u16 = 255;

/// The fixed 12-byte header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub qr: bool,
    pub opcode: u8,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    /// The three bits after RA (the reserved bit, AD and CD), as Zeek logs `Z`.
    pub z: u8,
    pub rcode: u8,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

fn be16(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(m.get(at..at + 2)?.try_into().ok()?))
}

fn be32(m: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(m.get(at..at + 4)?.try_into().ok()?))
}

impl Header {
    pub fn parse(m: &[u8]) -> Option<Header> {
        let flags = be16(m, 2)?;
        Some(Header {
            id: be16(m, 0)?,
            qr: flags & 0x8000 != 0,
            opcode: ((flags >> 11) & 0xf) as u8,
            aa: flags & 0x0400 != 0,
            tc: flags & 0x0200 != 0,
            rd: flags & 0x0100 != 0,
            ra: flags & 0x0080 != 0,
            z: ((flags >> 4) & 0x7) as u8,
            rcode: (flags & 0xf) as u8,
            qdcount: be16(m, 4)?,
            ancount: be16(m, 6)?,
            nscount: be16(m, 8)?,
            arcount: be16(m, 10)?,
        })
    }
}

/// What was wrong with a message (Zeek raises a `weird` for each), as bit flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Weird {
    /// Shorter than the header.
    HeaderTooShort = 1 << 0,
    /// More than [`MAX_QUESTIONS`] questions.
    TooManyQuestions = 1 << 1,
    /// A question without room for its type and class.
    QuestionTooShort = 1 << 2,
    /// A resource record without room for its type and class.
    RecordTooShort = 1 << 3,
    /// RDLENGTH past the end of the message.
    RdataPastEnd = 1 << 4,
    /// A compression pointer that does not point backwards (the loop case).
    ForwardPointer = 1 << 5,
    /// A name chaining more compression pointers than any real name does.
    TooManyPointers = 1 << 6,
    /// A label running past the end of the message.
    LabelPastEnd = 1 << 7,
    /// A label longer than 63 bytes (allowed on the NetBIOS port) or past the name budget.
    LabelTooLong = 1 << 8,
    /// A decompressed name of 255 bytes or more.
    NameTooLong = 1 << 9,
    /// RDATA of a known type that does not have the type's shape.
    BadRdata = 1 << 10,
    /// Rendered text beyond the per-message bound (answers dropped).
    TextTooLong = 1 << 11,
}

/// The section a resource record came from, as far as dns.log cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Answer,
    /// Dynamic update prerequisites (RFC 2136 §2.4, carried in the answer section).
    Prereq,
    /// Dynamic update changes (RFC 2136 §2.5, carried in the authority section).
    Update,
}

/// One resource record that Zeek hands to its `answers` logic (`DNS::do_reply`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub section: Section,
    /// Owner name, lower-cased, in [`Parsed::text`].
    pub owner: Range<usize>,
    /// Rendered answer in [`Parsed::text`]; empty for records that count as a reply but show
    /// nothing (WKS).
    pub text: Range<usize>,
    pub ttl: u32,
}

/// One parsed message. Reused between messages: [`parse`] clears it.
#[derive(Debug, Default)]
pub struct Parsed {
    pub header: Header,
    /// Header, questions and answers parsed: Zeek's analyzer confirmation.
    pub confirmed: bool,
    /// Too many questions to be DNS: a protocol violation (nothing after the header read).
    pub violation: bool,
    /// [`Weird`] bits.
    pub weirds: u32,
    /// Questions read in full (each one is a `dns_request`/`dns_rejected` event in Zeek).
    pub questions: u16,
    /// The last question read: its name as sent (lower-cased), type and class.
    pub qname: Range<usize>,
    pub qtype: u16,
    pub qclass: u16,
    /// Records that reach `answers`, in message order.
    pub replies: Vec<Reply>,
    /// Rendered answers (non-empty ones) among `replies`.
    pub answers: usize,
    /// Names and rendered answers.
    pub text: Vec<u8>,
    /// With [`Options::keep_queries`]: every question (zone of an update included), its
    /// name as sent in [`Parsed::query_text`] and its type.
    pub queries: Vec<(Range<usize>, u16)>,
    pub query_text: Vec<u8>,
    /// The first question's name when it holds no compression pointer and read without a
    /// weird: its text in [`Parsed::text`] and where it ended. Replies point their records'
    /// owners at it (`c0 0c`); such an owner is copied rather than read again.
    first_question: Option<(Range<usize>, usize)>,
}

impl Parsed {
    fn clear(&mut self) {
        self.header = Header::default();
        self.confirmed = false;
        self.violation = false;
        self.weirds = 0;
        self.questions = 0;
        self.qname = 0..0;
        self.qtype = 0;
        self.qclass = 0;
        self.replies.clear();
        self.answers = 0;
        self.text.clear();
        self.queries.clear();
        self.query_text.clear();
        self.first_question = None;
    }

    pub fn has(&self, w: Weird) -> bool {
        self.weirds & w as u32 != 0
    }

    fn weird(&mut self, w: Weird) {
        self.weirds |= w as u32;
    }

    pub fn str(&self, r: &Range<usize>) -> &[u8] {
        self.text.get(r.clone()).unwrap_or_default()
    }
}

/// How a message is read: on the NetBIOS name service port labels may exceed 63 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub netbios: bool,
    /// Also keep every question's name as sent, case preserved ([`Parsed::queries`]), for
    /// a rule engine.
    pub keep_queries: bool,
}

/// Reads the name at `pos` into `out` (labels joined by dots), lower-cased if asked. Returns
/// the position after the name as its reader sees it: after the first compression pointer,
/// or wherever a malformed name stopped.
fn read_name(
    m: &[u8],
    pos: usize,
    opt: Options,
    downcase: bool,
    out: &mut Vec<u8>,
    weirds: &mut u32,
) -> usize {
    read_name_at(m, pos, opt, downcase, out, weirds).0
}

/// [`read_name`], also telling whether the name was read without following a pointer.
fn read_name_at(
    m: &[u8],
    pos: usize,
    opt: Options,
    downcase: bool,
    out: &mut Vec<u8>,
    weirds: &mut u32,
) -> (usize, bool) {
    let start = out.len();
    let mut budget = NAME_BUDGET;
    let mut cur = pos;
    // Bytes of the current stretch end here: the message end, then each pointer's position.
    let mut limit = m.len();
    let mut resume: Option<usize> = None;
    let mut pointers = 0;
    loop {
        if cur >= limit {
            break;
        }
        let len = m[cur];
        cur += 1;
        if cur >= limit {
            break;
        }
        if len == 0 {
            break;
        }
        if len & 0xc0 == 0xc0 {
            let target = (usize::from(len & 0x3f) << 8) | usize::from(m[cur]);
            cur += 1;
            let at = cur - 2;
            if target >= at {
                *weirds |= Weird::ForwardPointer as u32;
                break;
            }
            pointers += 1;
            if pointers > MAX_POINTERS {
                *weirds |= Weird::TooManyPointers as u32;
                break;
            }
            resume.get_or_insert(cur);
            limit = at;
            cur = target;
            continue;
        }
        let len = usize::from(len);
        if len > limit - cur {
            *weirds |= Weird::LabelPastEnd as u32;
            cur = limit;
            break;
        }
        if (len > 63 && !opt.netbios) || len >= budget {
            *weirds |= Weird::LabelTooLong as u32;
            break;
        }
        if out.len() > start {
            out.push(b'.');
        }
        out.extend_from_slice(&m[cur..cur + len]);
        budget -= len + 1;
        cur += len;
    }
    if out.len() - start >= 255 {
        *weirds |= Weird::NameTooLong as u32;
    }
    if downcase {
        lowercase(&mut out[start..]);
    }
    match resume {
        Some(after_pointer) => (after_pointer, false),
        None => (cur, true),
    }
}

/// ASCII lower-casing eight bytes at a time (names are read twice per reply and most of
/// their bytes are lower-case already; a byte at a time costs more than the rest of the
/// name's reading).
fn lowercase(b: &mut [u8]) {
    let mut chunks = b.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&lowercase8(u64::from_ne_bytes(w)).to_ne_bytes());
    }
    let rest = chunks.into_remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    let w = lowercase8(u64::from_ne_bytes(w)).to_ne_bytes();
    rest.copy_from_slice(&w[..rest.len()]);
}

/// Sets bit 5 of every byte in `A..=Z`; other bytes (non-ASCII included) stay as they are.
fn lowercase8(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Per byte, the low seven bits plus a bias carry into bit 7 exactly when they reach the
    // bound; no byte carries into its neighbour (at most 0x7f + 0x3f).
    let low = x & !HIGH;
    let from_a = low + ONES * u64::from(0x80 - b'A');
    let past_z = low + ONES * u64::from(0x80 - b'Z' - 1);
    let upper = from_a & !past_z & !x & HIGH;
    x | (upper >> 2)
}

/// Parses one message. False when it is shorter than a header (nothing else happens then).
pub fn parse(m: &[u8], opt: Options, p: &mut Parsed) -> bool {
    p.clear();
    let Some(h) = Header::parse(m) else {
        p.weird(Weird::HeaderTooShort);
        return false;
    };
    p.header = h;
    if h.qdcount > MAX_QUESTIONS {
        p.violation = true;
        p.weird(Weird::TooManyQuestions);
        return true;
    }
    // Dynamic updates (RFC 2136) reuse the sections: zone, prerequisites, updates. NetBIOS
    // uses the same opcode for name registration, with ordinary sections.
    let update = h.opcode == OPCODE_UPDATE && !opt.netbios;
    let mut pos = HEADER_LEN;
    for _ in 0..h.qdcount {
        let start = p.text.len();
        let weirds = p.weirds;
        let first = pos == HEADER_LEN;
        let plain;
        (pos, plain) = read_name_at(m, pos, opt, !opt.keep_queries, &mut p.text, &mut p.weirds);
        if opt.keep_queries {
            let at = p.query_text.len();
            p.query_text.extend_from_slice(&p.text[start..]);
            p.text[start..].make_ascii_lowercase();
            if let Some(qtype) = be16(m, pos) {
                p.queries.push((at..p.query_text.len(), qtype));
            }
        }
        if first && plain && p.weirds == weirds && p.text.len() > start && !update {
            p.first_question = Some((start..p.text.len(), pos));
        }
        let (Some(qtype), Some(qclass)) = (be16(m, pos), be16(m, pos + 2)) else {
            p.text.truncate(start);
            p.weird(Weird::QuestionTooShort);
            return true;
        };
        pos += 4;
        if update {
            // The zone of an update is not a query: Zeek raises no request event for it.
            p.text.truncate(start);
        } else {
            p.questions += 1;
            p.qname = start..p.text.len();
            p.qtype = qtype;
            p.qclass = qclass;
        }
    }
    let first = if update {
        Section::Prereq
    } else {
        Section::Answer
    };
    for _ in 0..h.ancount {
        match read_record(m, pos, opt, update, first, p) {
            Some(next) => pos = next,
            None => return true,
        }
    }
    p.confirmed = true;
    if update {
        for _ in 0..h.nscount {
            match read_record(m, pos, opt, update, Section::Update, p) {
                Some(next) => pos = next,
                None => break,
            }
        }
    }
    true
}

/// Reads one resource record; `None` ends the section (Zeek stops there too).
fn read_record(
    m: &[u8],
    pos: usize,
    opt: Options,
    update: bool,
    section: Section,
    p: &mut Parsed,
) -> Option<usize> {
    let owner_start = p.text.len();
    let mut pos = match p.first_question.clone() {
        // A pointer to the first question (read in full, lower-cased, without a pointer or a
        // weird, and ending before this record): reading it again gives the same text.
        Some((text, end)) if pos >= end && m.get(pos..pos + 2) == Some(&[0xc0, 0x0c]) => {
            p.text.extend_from_within(text);
            pos + 2
        }
        _ => read_name(m, pos, opt, true, &mut p.text, &mut p.weirds),
    };
    let owner = owner_start..p.text.len();
    let (Some(rtype), Some(class)) = (be16(m, pos), be16(m, pos + 2)) else {
        p.text.truncate(owner_start);
        p.weird(Weird::RecordTooShort);
        return None;
    };
    pos += 4;
    // Zeek reads a missing TTL or RDLENGTH as 0 without consuming anything.
    let ttl = be32(m, pos).inspect(|_| pos += 4).unwrap_or(0);
    let rdlen = be16(m, pos).inspect(|_| pos += 2).unwrap_or(0);
    let rdlen = usize::from(rdlen);
    if rdlen > m.len() - pos {
        p.text.truncate(owner_start);
        p.weird(Weird::RdataPastEnd);
        return None;
    }
    let rdata = pos..pos + rdlen;
    let full = p.answers >= MAX_ANSWERS || p.text.len() >= MAX_TEXT;
    let text_start = p.text.len();
    let ctx = Rdata {
        m,
        rdata: rdata.clone(),
        rtype,
        owner: owner.clone(),
        opt,
        update,
    };
    let outcome = match section {
        Section::Prereq => Outcome::Reply(render_prereq(&ctx, class, &mut p.text)),
        Section::Update if class == CLASS_ANY || class == CLASS_NONE => {
            Outcome::Reply(render_delete(&ctx, class, &mut p.text))
        }
        Section::Update => {
            p.text.extend_from_slice(b"add: ");
            let o = render(&ctx, p);
            if p.text.len() == text_start + 5 {
                // Nothing rendered: no "add:" either.
                p.text.truncate(text_start);
            }
            o
        }
        Section::Answer => render(&ctx, p),
    };
    let (replied, ok) = match outcome {
        Outcome::Reply(ok) => (true, ok),
        Outcome::Silent(ok) => (false, ok),
    };
    if p.text.len() - text_start > MAX_STRING {
        p.text.truncate(text_start + MAX_STRING);
    }
    let text = text_start..p.text.len();
    if replied && !full {
        if !text.is_empty() {
            p.answers += 1;
        }
        p.replies.push(Reply {
            section,
            owner,
            text,
            ttl,
        });
    } else {
        if replied && !text.is_empty() {
            p.weird(Weird::TextTooLong);
        }
        p.text.truncate(owner_start);
    }
    ok.then_some(rdata.end)
}

/// One record's data and what its rendering depends on.
struct Rdata<'m> {
    m: &'m [u8],
    rdata: Range<usize>,
    rtype: u16,
    owner: Range<usize>,
    opt: Options,
    update: bool,
}

impl Rdata<'_> {
    fn bytes(&self) -> &[u8] {
        &self.m[self.rdata.clone()]
    }

    fn byte(&self, i: usize) -> u8 {
        self.bytes().get(i).copied().unwrap_or(0)
    }

    fn u16_at(&self, i: usize) -> u16 {
        let b = self.bytes();
        match b.get(i..i + 2) {
            Some(s) => u16::from_be_bytes([s[0], s[1]]),
            None => 0,
        }
    }
}

/// Whether a record went to Zeek's reply logic (with its text appended), and whether the
/// section goes on after it.
enum Outcome {
    Reply(bool),
    Silent(bool),
}

/// The `answers` text of one record of the answer or update section.
fn render(r: &Rdata, p: &mut Parsed) -> Outcome {
    let n = r.rdata.len();
    let bad = |p: &mut Parsed| {
        p.weird(Weird::BadRdata);
        Outcome::Silent(false)
    };
    match r.rtype {
        // A
        1 => {
            if n != 4 {
                return bad(p);
            }
            let b = r.bytes();
            let a = [b[0], b[1], b[2], b[3]];
            if r.update {
                p.text.extend_from_slice(b"A ");
                own(r, p);
                p.text.push(b' ');
            }
            push_ipv4(&mut p.text, a);
            Outcome::Reply(true)
        }
        // AAAA, A6: sixteen address bytes (Zeek reads them even from a shorter RDATA).
        28 | 38 => {
            if n != 16 {
                p.weird(Weird::BadRdata);
            }
            let mut a = [0u8; 16];
            for (i, slot) in a.iter_mut().enumerate() {
                *slot = r.byte(i);
            }
            if r.update {
                p.text
                    .extend_from_slice(if r.rtype == 28 { b"AAAA " } else { b"A6 " });
                own(r, p);
                p.text.push(b' ');
            }
            let _ = write!(Text(&mut p.text), "{}", Ipv6Addr::from(a));
            Outcome::Reply(true)
        }
        // NS, CNAME, PTR: the target name.
        2 | 5 | 12 => {
            name_at(r, r.rdata.start, p);
            Outcome::Reply(true)
        }
        // SOA: the primary server's name (the record must hold both names and five numbers).
        6 => {
            let mut w = p.weirds;
            let mut scratch = Vec::new();
            let after = read_name(r.m, r.rdata.start, r.opt, true, &mut p.text, &mut w);
            let after = read_name(r.m, after, r.opt, true, &mut scratch, &mut w);
            p.weirds = w;
            if after + 20 > r.rdata.end {
                return bad(p);
            }
            Outcome::Reply(true)
        }
        // WKS: counts as a reply, shows nothing.
        11 => Outcome::Reply(true),
        // MX: preference, then the exchange's name.
        15 => {
            if n < 2 {
                return bad(p);
            }
            name_at(r, r.rdata.start + 2, p);
            Outcome::Reply(true)
        }
        16 => char_strings(r, b"TXT", p),
        99 => char_strings(r, b"SPF", p),
        // SRV; on the NetBIOS port type 33 is NBSTAT, which Zeek does not parse.
        33 => {
            if r.opt.netbios {
                return Outcome::Silent(true);
            }
            if n < 6 {
                return bad(p);
            }
            name_at(r, r.rdata.start + 6, p);
            Outcome::Reply(true)
        }
        35 => naptr(r, p),
        // DS: algorithm and digest type.
        43 => {
            if n < 4 {
                return bad(p);
            }
            let _ = write!(Text(&mut p.text), "DS {} {}", r.byte(2), r.byte(3));
            Outcome::Reply(true)
        }
        // SSHFP: the fingerprint in hex.
        44 => {
            if n < 2 {
                return bad(p);
            }
            p.text.extend_from_slice(b"SSHFP: ");
            for b in &r.bytes()[2..] {
                let _ = write!(Text(&mut p.text), "{b:02x}");
            }
            Outcome::Reply(true)
        }
        // RRSIG: the covered type and the signer (the root shown as <Root>).
        46 => {
            if n < 18 {
                return bad(p);
            }
            let _ = write!(Text(&mut p.text), "RRSIG {} ", r.u16_at(0));
            let before = p.text.len();
            name_at(r, r.rdata.start + 18, p);
            if p.text.len() == before {
                p.text.extend_from_slice(b"<Root>");
            }
            Outcome::Reply(true)
        }
        // NSEC: the owner and the next owner.
        47 => {
            p.text.extend_from_slice(b"NSEC ");
            own(r, p);
            p.text.push(b' ');
            name_at(r, r.rdata.start, p);
            Outcome::Reply(true)
        }
        // DNSKEY: the algorithm.
        48 => {
            if n < 4 {
                return bad(p);
            }
            let _ = write!(Text(&mut p.text), "DNSKEY {}", r.byte(3));
            Outcome::Reply(true)
        }
        50 => {
            if n < 6 {
                return bad(p);
            }
            p.text.extend_from_slice(b"NSEC3");
            Outcome::Reply(true)
        }
        51 => {
            if n < 5 {
                return bad(p);
            }
            p.text.extend_from_slice(b"NSEC3PARAM");
            Outcome::Reply(true)
        }
        // LOC: size and the two precisions.
        29 => {
            if n < 16 {
                return bad(p);
            }
            let _ = write!(
                Text(&mut p.text),
                "LOC:  {} {} {}",
                r.byte(1),
                r.byte(2),
                r.byte(3)
            );
            Outcome::Reply(true)
        }
        // BIND's private signing-state record.
        65534 => {
            if n < 5 {
                return bad(p);
            }
            p.text.extend_from_slice(b"BIND9 signing signal");
            Outcome::Reply(true)
        }
        // CAA: parsed, not logged; a tag past the data ends the section.
        257 => {
            if n < 2 || usize::from(r.byte(1)) >= n - 2 {
                return bad(p);
            }
            Outcome::Silent(true)
        }
        // HINFO, NetBIOS NB, EDNS OPT, SVCB, HTTPS, TKEY, TSIG: parsed by Zeek, not logged.
        13 | 32 | 41 | 64 | 65 | 249 | 250 => Outcome::Silent(true),
        t => {
            let _ = write!(Text(&mut p.text), "<unknown type={t}>");
            Outcome::Reply(true)
        }
    }
}

/// Appends the record's owner name.
fn own(r: &Rdata, p: &mut Parsed) {
    let owner = r.owner.clone();
    p.text.extend_from_within(owner);
}

/// Appends the (lower-cased, decompressed) name at `at`.
fn name_at(r: &Rdata, at: usize, p: &mut Parsed) {
    let mut w = p.weirds;
    read_name(r.m, at, r.opt, true, &mut p.text, &mut w);
    p.weirds = w;
}

/// TXT and SPF: every character-string as `<TAG> <length> <bytes>`, space-joined. A string
/// running past the RDATA ends the section, after what came before it was logged.
fn char_strings(r: &Rdata, tag: &[u8], p: &mut Parsed) -> Outcome {
    let data = r.bytes();
    let mut i = 0;
    let mut first = true;
    while i < data.len() {
        let len = usize::from(data[i]);
        i += 1;
        if len > data.len() - i {
            p.weird(Weird::BadRdata);
            return Outcome::Reply(false);
        }
        if !first {
            p.text.push(b' ');
        }
        first = false;
        p.text.extend_from_slice(tag);
        let _ = write!(Text(&mut p.text), " {len} ");
        p.text.extend_from_slice(&data[i..i + len]);
        i += len;
    }
    Outcome::Reply(true)
}

/// NAPTR (RFC 3403): `NAPTR <order> <preference> <flags> <service> <regexp and replacement>`.
fn naptr(r: &Rdata, p: &mut Parsed) -> Outcome {
    let data = r.bytes();
    if data.len() < 4 {
        p.weird(Weird::BadRdata);
        return Outcome::Silent(false);
    }
    let mut strings: [&[u8]; 3] = [&[]; 3];
    let mut i = 4;
    for s in &mut strings {
        let Some(&len) = data.get(i) else {
            p.weird(Weird::BadRdata);
            return Outcome::Silent(false);
        };
        let len = usize::from(len);
        i += 1;
        if len > data.len() - i {
            p.weird(Weird::BadRdata);
            return Outcome::Silent(false);
        }
        *s = &data[i..i + len];
        i += len;
    }
    let mut replacement = Vec::new();
    let mut w = p.weirds;
    read_name(
        r.m,
        r.rdata.start + i,
        r.opt,
        true,
        &mut replacement,
        &mut w,
    );
    p.weirds = w;
    let _ = write!(Text(&mut p.text), "NAPTR {} {} ", r.u16_at(0), r.u16_at(2));
    p.text.extend_from_slice(strings[0]);
    p.text.push(b' ');
    p.text.extend_from_slice(strings[1]);
    p.text.push(b' ');
    p.text.extend_from_slice(strings[2]);
    if !replacement.is_empty() {
        if !strings[2].is_empty() {
            p.text.push(b' ');
        }
        p.text.extend_from_slice(&replacement);
    }
    Outcome::Reply(true)
}

/// A dynamic update prerequisite (RFC 2136 §2.4), by its class and type.
fn render_prereq(r: &Rdata, class: u16, text: &mut Vec<u8>) -> bool {
    text.extend_from_slice(b"pre: ");
    let owner = r.owner.clone();
    match (class, r.rtype) {
        (CLASS_NONE, TYPE_ANY) => text.extend_from_slice(b"NameNotInUse "),
        (CLASS_ANY, TYPE_ANY) => text.extend_from_slice(b"NameInUse "),
        (CLASS_NONE, t) => {
            let _ = write!(Text(text), "NoRRSet {} ", qtype_name(t));
        }
        (_, t) => {
            let _ = write!(Text(text), "RRSetExists {} ", qtype_name(t));
        }
    }
    text.extend_from_within(owner);
    true
}

/// A dynamic update deletion (RFC 2136 §2.5.2-2.5.4): class ANY or NONE.
fn render_delete(r: &Rdata, class: u16, text: &mut Vec<u8>) -> bool {
    let owner = r.owner.clone();
    match (class, r.rtype) {
        (CLASS_ANY, TYPE_ANY) => {
            text.extend_from_slice(b"del: RRSet * ");
            text.extend_from_within(owner);
        }
        (CLASS_NONE, t) => {
            let _ = write!(Text(text), "del: RR {} ", qtype_name(t));
            text.extend_from_within(owner);
        }
        (_, t) => {
            let _ = write!(Text(text), "del: RRSet {}", qtype_name(t));
        }
    }
    true
}

/// `fmt::Write` into a byte buffer.
/// Dotted-quad text of an IPv4 address (what `Ipv4Addr`'s `Display` writes), without the
/// formatting machinery: A records are most of the answers.
fn push_ipv4(out: &mut Vec<u8>, a: [u8; 4]) {
    let mut text = [0u8; 15];
    let mut n = 0;
    for (i, o) in a.into_iter().enumerate() {
        if i > 0 {
            text[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            text[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            text[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        text[n] = b'0' + o % 10;
        n += 1;
    }
    out.extend_from_slice(&text[..n]);
}

struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Whether `m` is plausibly one whole DNS message (content detection off the DNS ports):
/// a sane header, exactly one question with a well-formed, uncompressed, printable name and a
/// known class, every section walking to exactly the end of the message. Random bytes almost
/// never pass; real DNS on an odd port does.
pub fn plausible(m: &[u8], complete: bool) -> bool {
    let Some(h) = Header::parse(m) else {
        return false;
    };
    if !matches!(h.opcode, OPCODE_QUERY | OPCODE_NOTIFY | OPCODE_UPDATE) || h.z & 0x4 != 0 {
        return false;
    }
    if h.qdcount != 1 || h.ancount > 64 || h.nscount > 64 || h.arcount > 64 {
        return false;
    }
    if !h.qr && (h.rcode != 0 || h.ancount > 1 || (h.opcode == OPCODE_QUERY && h.nscount != 0)) {
        return false;
    }
    if h.rcode > 10 {
        return false;
    }
    // The question: labels of printable bytes, no pointer (nothing precedes it to point at).
    let mut pos = HEADER_LEN;
    let mut name_len = 0;
    loop {
        let Some(&len) = m.get(pos) else {
            return !complete && pos > HEADER_LEN;
        };
        pos += 1;
        if len == 0 {
            break;
        }
        let len = usize::from(len);
        if len > 63 {
            return false;
        }
        name_len += len + 1;
        if name_len > 255 {
            return false;
        }
        let Some(label) = m.get(pos..pos + len) else {
            return !complete;
        };
        if !label.iter().all(|b| b.is_ascii_graphic()) {
            return false;
        }
        pos += len;
    }
    let (Some(qtype), Some(qclass)) = (be16(m, pos), be16(m, pos + 2)) else {
        return !complete && pos + 4 > m.len();
    };
    pos += 4;
    // mDNS sets the top bit of the class (unicast response wanted).
    if qtype == 0 || !matches!(qclass & 0x7fff, 1 | 3 | 4 | 254 | 255) {
        return false;
    }
    if !complete {
        return true;
    }
    let records = u32::from(h.ancount) + u32::from(h.nscount) + u32::from(h.arcount);
    for _ in 0..records {
        let mut scratch = Vec::new();
        let mut w = 0;
        pos = read_name(m, pos, Options::default(), false, &mut scratch, &mut w);
        if w != 0 {
            return false;
        }
        let Some(rdlen) = be16(m, pos + 8) else {
            return false;
        };
        pos += 10 + usize::from(rdlen);
        if pos > m.len() {
            return false;
        }
    }
    pos == m.len()
}

#[cfg(test)]
mod tests;
