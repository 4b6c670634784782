//! Pairing queries with replies, as Zeek's `DNS::set_session` and the handlers around it do.
//!
//! Per connection, messages are matched by transaction id: a reply takes the oldest pending
//! query with its id (a one-query fast path first), a query takes the oldest pending reply.
//! An unmatched message waits in a per-id FIFO. A record is written once it has seen a query
//! and a reply; whatever still waits is written when the connection ends. Messages to a
//! multicast group (mDNS, LLMNR) are never paired: each is a record of its own.
//!
//! Bounded as Zeek bounds it: more than [`MAX_PENDING_IDS`] ids waiting, or more than
//! [`MAX_PENDING_PER_ID`] messages for one id, writes the waiting records unpaired.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::num::NonZeroI64;

use crate::flow::Uid;
use crate::ts::{Span, Ts};

use super::names::decode_netbios_name;
use super::wire::{Parsed, Section, MAX_ANSWERS, MAX_STRING, OPCODE_UPDATE};

/// Transaction ids with waiting messages, per direction of waiting (`DNS::max_pending_query_ids`).
pub const MAX_PENDING_IDS: usize = 50;
/// Waiting messages per transaction id (`DNS::max_pending_msgs`).
pub const MAX_PENDING_PER_ID: usize = 50;

/// The connection a message belongs to, as dns.log shows it.
#[derive(Clone, Copy, Debug)]
pub struct ConnCtx {
    pub uid: Uid,
    pub orig: (IpAddr, u16),
    pub resp: (IpAddr, u16),
    pub tcp: bool,
}

impl ConnCtx {
    /// NetBIOS name service: query names are decoded, type 33 is NBSTAT.
    pub fn nbns(&self) -> bool {
        !self.tcp && self.resp.1 == 137
    }

    /// Zeek's `DNS::multicast_subnets`: 224.0.0.0/4 and ff00::/8.
    pub fn multicast(&self) -> bool {
        self.resp.0.is_multicast()
    }
}

/// Rendered answers of a record and their TTLs, in one allocation however many answers
/// (none at all for records without answers, and one pointer in the record): the answer
/// count (2 bytes), then per answer its TTL and its text length (4 bytes each), then the
/// text; numbers in native byte order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Answers(Option<Box<[u8]>>);

impl Answers {
    pub fn len(&self) -> usize {
        self.0
            .as_deref()
            .and_then(|b| b.first_chunk::<2>())
            .map_or(0, |c| usize::from(u16::from_ne_bytes(*c)))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded answers after the count.
    fn entries(&self) -> &[u8] {
        self.0
            .as_deref()
            .map_or(&[], |b| b.get(2..).unwrap_or_default())
    }

    /// Each answer's text and TTL (seconds), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u32)> + '_ {
        let mut rest = self.entries();
        std::iter::from_fn(move || {
            let (head, tail) = rest.split_first_chunk::<8>()?;
            let ttl = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
            let len = u32::from_ne_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let (text, tail) = tail.split_at(len.min(tail.len()));
            rest = tail;
            Some((text, ttl))
        })
    }

    /// Appends the non-empty answers of `new` (text, TTL) while fewer than
    /// [`MAX_ANSWERS`] are kept.
    fn extend<'a, I>(&mut self, new: I)
    where
        I: Iterator<Item = (&'a [u8], u32)> + Clone,
    {
        let have = self.len();
        let new = new
            .filter(|(text, _)| !text.is_empty())
            .take(MAX_ANSWERS.saturating_sub(have));
        let (n, bytes) = new
            .clone()
            .fold((0, 0), |(n, b), (text, _)| (n + 1, b + 8 + text.len()));
        if n == 0 {
            return;
        }
        let old = self.entries();
        let mut buf = Vec::with_capacity(2 + old.len() + bytes);
        let count = u16::try_from(have + n).unwrap_or(u16::MAX);
        buf.extend_from_slice(&count.to_ne_bytes());
        buf.extend_from_slice(old);
        for (text, ttl) in new {
            buf.extend_from_slice(&ttl.to_ne_bytes());
            let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
            buf.extend_from_slice(&len.to_ne_bytes());
            buf.extend_from_slice(text);
        }
        self.0 = Some(buf.into_boxed_slice());
    }
}

/// One DNS transaction being built (Zeek's `DNS::Info` without the connection's columns),
/// kept small because connections hold the waiting ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Txn {
    pub ts: Ts,
    pub trans_id: u16,
    /// Microseconds; never zero (a zero rtt is unset in Zeek).
    rtt: Option<NonZeroI64>,
    pub query: Option<Box<[u8]>>,
    pub qclass: Option<u16>,
    pub qtype: Option<u16>,
    pub rcode: Option<u8>,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    pub z: u8,
    pub rejected: bool,
    answers: Answers,
    saw_query: bool,
    saw_reply: bool,
}

impl Txn {
    pub(crate) fn new(ts: Ts, trans_id: u16) -> Txn {
        Txn {
            ts,
            trans_id,
            rtt: None,
            query: None,
            qclass: None,
            qtype: None,
            rcode: None,
            aa: false,
            tc: false,
            rd: false,
            ra: false,
            z: 0,
            rejected: false,
            answers: Answers::default(),
            saw_query: false,
            saw_reply: false,
        }
    }

    pub fn rtt(&self) -> Option<Span> {
        self.rtt.map(|r| Span(r.get()))
    }

    /// Rendered answers and their TTLs (empty: the columns are unset).
    pub fn answers(&self) -> &Answers {
        &self.answers
    }

    /// The columns of a row but `ts` (and the pairing flags, which are not columns).
    fn row_key(&self) -> impl PartialEq + std::hash::Hash + '_ {
        (
            self.trans_id,
            self.rtt,
            &self.query,
            (self.qclass, self.qtype, self.rcode),
            (self.aa, self.tc, self.rd, self.ra, self.z, self.rejected),
            &self.answers,
        )
    }
}

/// One dns.log record: a transaction on its connection.
#[derive(Clone, Debug)]
pub struct Info {
    pub conn: ConnCtx,
    pub txn: Txn,
}

impl Info {
    /// Whether two records are the same row in every column but `ts` (and `pkts`).
    pub fn same_row(&self, o: &Info) -> bool {
        self.conn.uid == o.conn.uid
            && self.conn.orig == o.conn.orig
            && self.conn.resp == o.conn.resp
            && self.conn.tcp == o.conn.tcp
            && self.txn.row_key() == o.txn.row_key()
    }

    /// A hash of some of the columns [`Info::same_row`] compares (rows that are the same
    /// hash the same): the connection, the transaction id, the round trip (repeated
    /// transactions of one connection differ in little else) and the query tell rows apart
    /// well enough, and hashing every column cost more than the rest of the lookup.
    pub fn row_hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(self.conn.uid.0);
        h.write_u64(
            u64::from(self.txn.trans_id)
                | u64::from(self.txn.qtype.unwrap_or(0)) << 16
                | u64::from(self.txn.rcode.map_or(0x100, u16::from)) << 32,
        );
        h.write_i64(self.txn.rtt.map_or(0, NonZeroI64::get));
        if let Some(q) = &self.txn.query {
            h.write(q);
        }
    }
}

/// Per-id FIFOs of waiting records, in the order the ids first waited.
#[derive(Debug, Default)]
struct Pending {
    ids: Vec<(u16, VecDeque<Txn>)>,
}

impl Pending {
    fn pop(&mut self, id: u16) -> Option<Txn> {
        let i = self.ids.iter().position(|(k, _)| *k == id)?;
        let info = self.ids[i].1.pop_front();
        if self.ids[i].1.is_empty() {
            self.ids.remove(i);
        }
        info
    }

    /// The oldest record of any id (the fast path's refill when no same-id query waits).
    fn pop_any(&mut self) -> Option<Txn> {
        let id = self.ids.first()?.0;
        self.pop(id)
    }

    /// Queues a record; a full table or queue is written out first. Returns true when that
    /// happened (an overflow).
    fn push(&mut self, info: Txn, emit: &mut dyn FnMut(Txn)) -> bool {
        let mut overflow = false;
        match self.ids.iter().position(|(k, _)| *k == info.trans_id) {
            None => {
                if self.ids.len() > MAX_PENDING_IDS {
                    for (_, q) in self.ids.drain(..) {
                        q.into_iter().for_each(&mut *emit);
                    }
                    overflow = true;
                }
                self.ids.push((info.trans_id, VecDeque::from([info])));
            }
            Some(i) => {
                let q = &mut self.ids[i].1;
                if q.len() > MAX_PENDING_PER_ID {
                    q.drain(..).for_each(&mut *emit);
                    overflow = true;
                }
                q.push_back(info);
            }
        }
        overflow
    }

    fn drain(&mut self, emit: &mut dyn FnMut(Txn)) {
        for (_, q) in self.ids.drain(..) {
            q.into_iter().for_each(&mut *emit);
        }
    }
}

/// The pairing state of one connection (Zeek's `DNS::State`).
#[derive(Debug, Default)]
pub struct Sessions {
    /// One query waiting for its reply: the common case, kept out of the tables.
    pending_query: Option<Txn>,
    /// The per-id tables, allocated when a second message has to wait.
    tables: Option<Box<Tables>>,
}

#[derive(Debug, Default)]
struct Tables {
    queries: Pending,
    replies: Pending,
}

/// Where a record goes once its message has been read.
enum Then {
    /// Paired (or multicast): written when the message ends.
    Write,
    FastPath,
    Queries,
    Replies,
}

/// The opcodes Zeek logs: standard query, NOTIFY, dynamic update (and NetBIOS registration,
/// which shares the update's number).
pub fn tracked(opcode: u8) -> bool {
    matches!(opcode, 0 | 4 | 5)
}

impl Sessions {
    /// Applies one parsed message of a tracked opcode; finished records go to `emit`.
    /// Returns true if a pending table overflowed.
    pub fn message(
        &mut self,
        conn: ConnCtx,
        ts: Ts,
        p: &Parsed,
        emit: &mut dyn FnMut(Info),
    ) -> bool {
        let h = p.header;
        let is_query = !h.qr;
        let tables = &mut self.tables;
        let (mut txn, then) = if conn.multicast() {
            (Txn::new(ts, h.id), Then::Write)
        } else if is_query {
            match tables.as_mut().and_then(|t| t.replies.pop(h.id)) {
                Some(txn) => (txn, Then::Write),
                None if self.pending_query.is_none() => (Txn::new(ts, h.id), Then::FastPath),
                None => (Txn::new(ts, h.id), Then::Queries),
            }
        } else if self
            .pending_query
            .as_ref()
            .is_some_and(|q| q.trans_id == h.id)
        {
            let txn = self.pending_query.take();
            // Refill the fast path so that the queues keep their order: a query with the same
            // id first, else any.
            self.pending_query = tables
                .as_mut()
                .and_then(|t| t.queries.pop(h.id).or_else(|| t.queries.pop_any()));
            (txn.unwrap_or_else(|| Txn::new(ts, h.id)), Then::Write)
        } else {
            match tables.as_mut().and_then(|t| t.queries.pop(h.id)) {
                Some(txn) => (txn, Then::Write),
                None => (Txn::new(ts, h.id), Then::Replies),
            }
        };
        if conn.multicast() {
            txn.saw_query = true;
            txn.saw_reply = true;
        }
        if !is_query {
            txn.rcode = Some(h.rcode);
            if h.rcode != 0 && h.qdcount == 0 {
                txn.rejected = true;
            }
        }
        if p.questions > 0 {
            if is_query {
                request(&mut txn, conn, p);
            } else if h.ancount == 0 && h.nscount == 0 && h.arcount == 0 {
                // A reply with nothing but its question: refused in some way.
                txn.rejected = true;
            }
        }
        if !is_query {
            for r in &p.replies {
                reply(&mut txn, ts, p, r, h.opcode);
            }
            txn.answers
                .extend(p.replies.iter().map(|r| (p.str(&r.text), r.ttl)));
        }
        if is_query {
            txn.saw_query = true;
        } else {
            txn.saw_reply = true;
        }
        let mut emit_txn = |txn: Txn| emit(Info { conn, txn });
        if txn.saw_query && txn.saw_reply {
            emit_txn(txn);
            return false;
        }
        match then {
            Then::Write => {
                emit_txn(txn);
                false
            }
            Then::FastPath => {
                self.pending_query = Some(txn);
                false
            }
            Then::Queries => tables
                .get_or_insert_with(Default::default)
                .queries
                .push(txn, &mut emit_txn),
            Then::Replies => tables
                .get_or_insert_with(Default::default)
                .replies
                .push(txn, &mut emit_txn),
        }
    }

    /// The connection ended: everything still waiting is written.
    pub fn finish(&mut self, conn: ConnCtx, emit: &mut dyn FnMut(Info)) {
        let mut emit_txn = |txn: Txn| emit(Info { conn, txn });
        if let Some(q) = self.pending_query.take() {
            emit_txn(q);
        }
        if let Some(mut t) = self.tables.take() {
            t.queries.drain(&mut emit_txn);
            t.replies.drain(&mut emit_txn);
        }
    }
}

/// Zeek's `dns_request` handler (for the last question; earlier ones are overwritten).
fn request(info: &mut Txn, conn: ConnCtx, p: &Parsed) {
    let h = p.header;
    info.rd = h.rd;
    info.tc = h.tc;
    info.qclass = Some(p.qclass);
    info.qtype = Some(p.qtype);
    info.z = h.z;
    let name = p.str(&p.qname);
    let decoded = if conn.nbns() {
        decode_netbios_name(name)
    } else {
        None
    };
    info.query = Some(clip(decoded.as_deref().unwrap_or(name)));
}

/// Zeek's `DNS::do_reply` for one record of a reply (its answer text is added with the
/// others after the loop, [`Answers::extend`]).
fn reply(info: &mut Txn, ts: Ts, p: &Parsed, r: &super::wire::Reply, opcode: u8) {
    debug_assert!(r.section != Section::Update || opcode == OPCODE_UPDATE);
    if info.query.is_none() {
        info.query = Some(clip(p.str(&r.owner)));
    }
    info.aa = p.header.aa;
    info.ra = p.header.ra;
    if info.rtt.is_none() {
        // A zero rtt means the reply created the record: there is no query to measure from.
        info.rtt = NonZeroI64::new(ts.since(info.ts).0);
    }
}

fn clip(s: &[u8]) -> Box<[u8]> {
    s[..s.len().min(MAX_STRING)].into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::dns::wire::{parse, Options};

    fn ctx(resp: &str, port: u16) -> ConnCtx {
        ConnCtx {
            uid: Uid(7),
            orig: ("10.0.0.1".parse().unwrap(), 40000),
            resp: (resp.parse().unwrap(), port),
            tcp: false,
        }
    }

    /// A minimal message: header, one question `a.example` A IN, `an` A answers.
    fn msg(id: u16, qr: bool, an: u16) -> Vec<u8> {
        let mut m = vec![];
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&(if qr { 0x8180u16 } else { 0x0100 }).to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&an.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(b"\x01a\x07example\x00\x00\x01\x00\x01");
        for i in 0..an {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, i as u8]);
        }
        m
    }

    fn run(s: &mut Sessions, c: ConnCtx, ts: i64, m: &[u8], out: &mut Vec<Txn>) {
        let mut p = Parsed::default();
        assert!(parse(m, Options::default(), &mut p));
        s.message(c, Ts(ts), &p, &mut |i| out.push(i.txn));
    }

    #[test]
    fn query_then_reply_is_one_record_with_rtt() {
        let (mut s, c, mut out) = (Sessions::default(), ctx("10.0.0.2", 53), vec![]);
        run(&mut s, c, 1_000_000, &msg(5, false, 0), &mut out);
        assert!(out.is_empty());
        run(&mut s, c, 1_000_400, &msg(5, true, 2), &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.rtt(), Some(Span(400)));
        assert_eq!(r.query.as_deref(), Some(&b"a.example"[..]));
        assert_eq!((r.qtype, r.qclass, r.rcode), (Some(1), Some(1), Some(0)));
        let answers: Vec<(&[u8], u32)> = r.answers().iter().collect();
        assert_eq!(answers, [(&b"192.0.2.0"[..], 60), (&b"192.0.2.1"[..], 60)]);
        assert!(r.rd && r.ra && !r.aa);
    }

    #[test]
    fn unanswered_and_unsolicited_are_written_at_the_end() {
        let (mut s, c, mut out) = (Sessions::default(), ctx("10.0.0.2", 53), vec![]);
        run(&mut s, c, 1, &msg(1, false, 0), &mut out);
        run(&mut s, c, 2, &msg(2, false, 0), &mut out);
        run(&mut s, c, 3, &msg(9, true, 1), &mut out);
        // The second reply to 1 is reply-only: Zeek's dns-two-responses.
        run(&mut s, c, 4, &msg(1, true, 0), &mut out);
        run(&mut s, c, 5, &msg(1, true, 0), &mut out);
        assert_eq!(out.len(), 1);
        s.finish(c, &mut |i| out.push(i.txn));
        assert_eq!(out.len(), 4);
        let reply_only: Vec<_> = out.iter().filter(|i| i.qtype.is_none()).collect();
        assert_eq!(reply_only.len(), 2);
        assert!(reply_only.iter().all(|i| i.rtt().is_none()));
    }

    #[test]
    fn multicast_is_never_paired() {
        let (mut s, c, mut out) = (Sessions::default(), ctx("224.0.0.251", 5353), vec![]);
        run(&mut s, c, 1, &msg(0, false, 0), &mut out);
        run(&mut s, c, 2, &msg(0, true, 1), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[1].rtt().is_none() && out[1].qtype.is_none());
    }

    #[test]
    fn pending_tables_are_bounded() {
        let (mut s, c, mut out) = (Sessions::default(), ctx("10.0.0.2", 53), vec![]);
        let mut overflows = 0;
        let mut p = Parsed::default();
        for id in 0..1000u16 {
            assert!(parse(&msg(id, false, 0), Options::default(), &mut p));
            overflows += usize::from(s.message(c, Ts(1), &p, &mut |i| out.push(i.txn)));
        }
        assert!(overflows > 0);
        let t = s.tables.as_ref().unwrap();
        assert!(t.queries.ids.len() <= MAX_PENDING_IDS + 1);
        for _ in 0..1000 {
            assert!(parse(&msg(7, false, 0), Options::default(), &mut p));
            s.message(c, Ts(2), &p, &mut |i| out.push(i.txn));
        }
        let t = s.tables.as_ref().unwrap();
        assert!(t
            .queries
            .ids
            .iter()
            .all(|(_, q)| q.len() <= MAX_PENDING_PER_ID + 1));
        s.finish(c, &mut |i| out.push(i.txn));
        assert_eq!(out.len(), 2000);
    }
}
