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

/// One dns.log record being built (Zeek's `DNS::Info`).
#[derive(Clone, Debug)]
pub struct Info {
    pub ts: Ts,
    pub conn: ConnCtx,
    pub trans_id: u16,
    pub rtt: Option<Span>,
    pub query: Option<Box<[u8]>>,
    pub qclass: Option<u16>,
    pub qtype: Option<u16>,
    pub rcode: Option<u8>,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    pub z: u8,
    /// Rendered answers; their TTLs in `ttls` (both unset when empty).
    pub answers: Vec<Box<[u8]>>,
    pub ttls: Vec<u32>,
    pub rejected: bool,
    saw_query: bool,
    saw_reply: bool,
}

impl Info {
    pub(crate) fn new(conn: ConnCtx, ts: Ts, trans_id: u16) -> Info {
        Info {
            ts,
            conn,
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
            answers: Vec::new(),
            ttls: Vec::new(),
            rejected: false,
            saw_query: false,
            saw_reply: false,
        }
    }

    /// Whether two records are the same row in every column but `ts` (and `pkts`).
    pub fn same_row(&self, o: &Info) -> bool {
        self.conn.uid == o.conn.uid
            && self.conn.orig == o.conn.orig
            && self.conn.resp == o.conn.resp
            && self.conn.tcp == o.conn.tcp
            && self.trans_id == o.trans_id
            && self.rtt == o.rtt
            && self.query == o.query
            && self.qclass == o.qclass
            && self.qtype == o.qtype
            && self.rcode == o.rcode
            && (self.aa, self.tc, self.rd, self.ra, self.z) == (o.aa, o.tc, o.rd, o.ra, o.z)
            && self.answers == o.answers
            && self.ttls == o.ttls
            && self.rejected == o.rejected
    }

    /// Hash of the columns [`Info::same_row`] compares.
    pub fn row_hash<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        self.conn.uid.0.hash(h);
        self.conn.orig.hash(h);
        self.conn.resp.hash(h);
        self.conn.tcp.hash(h);
        self.trans_id.hash(h);
        self.rtt.map(|s| s.0).hash(h);
        self.query.hash(h);
        (self.qclass, self.qtype, self.rcode).hash(h);
        (self.aa, self.tc, self.rd, self.ra, self.z, self.rejected).hash(h);
        self.answers.hash(h);
        self.ttls.hash(h);
    }
}

/// Per-id FIFOs of waiting records, in the order the ids first waited.
#[derive(Debug, Default)]
struct Pending {
    ids: Vec<(u16, VecDeque<Info>)>,
}

impl Pending {
    fn pop(&mut self, id: u16) -> Option<Info> {
        let i = self.ids.iter().position(|(k, _)| *k == id)?;
        let info = self.ids[i].1.pop_front();
        if self.ids[i].1.is_empty() {
            self.ids.remove(i);
        }
        info
    }

    /// The oldest record of any id (the fast path's refill when no same-id query waits).
    fn pop_any(&mut self) -> Option<Info> {
        let id = self.ids.first()?.0;
        self.pop(id)
    }

    /// Queues a record; a full table or queue is written out first. Returns true when that
    /// happened (an overflow).
    fn push(&mut self, info: Info, emit: &mut dyn FnMut(Info)) -> bool {
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

    fn drain(&mut self, emit: &mut dyn FnMut(Info)) {
        for (_, q) in self.ids.drain(..) {
            q.into_iter().for_each(&mut *emit);
        }
    }
}

/// The pairing state of one connection (Zeek's `DNS::State`).
#[derive(Debug, Default)]
pub struct Sessions {
    /// One query waiting for its reply: the common case, kept out of the tables.
    pending_query: Option<Info>,
    pending_queries: Pending,
    pending_replies: Pending,
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
        let (mut info, then) = if conn.multicast() {
            (Info::new(conn, ts, h.id), Then::Write)
        } else if is_query {
            match self.pending_replies.pop(h.id) {
                Some(info) => (info, Then::Write),
                None if self.pending_query.is_none() => (Info::new(conn, ts, h.id), Then::FastPath),
                None => (Info::new(conn, ts, h.id), Then::Queries),
            }
        } else if self
            .pending_query
            .as_ref()
            .is_some_and(|q| q.trans_id == h.id)
        {
            let info = self.pending_query.take();
            // Refill the fast path so that the queues keep their order: a query with the same
            // id first, else any.
            self.pending_query = self
                .pending_queries
                .pop(h.id)
                .or_else(|| self.pending_queries.pop_any());
            (
                info.unwrap_or_else(|| Info::new(conn, ts, h.id)),
                Then::Write,
            )
        } else {
            match self.pending_queries.pop(h.id) {
                Some(info) => (info, Then::Write),
                None => (Info::new(conn, ts, h.id), Then::Replies),
            }
        };
        if conn.multicast() {
            info.saw_query = true;
            info.saw_reply = true;
        }
        if !is_query {
            info.rcode = Some(h.rcode);
            if h.rcode != 0 && h.qdcount == 0 {
                info.rejected = true;
            }
        }
        if p.questions > 0 {
            if is_query {
                request(&mut info, conn, p);
            } else if h.ancount == 0 && h.nscount == 0 && h.arcount == 0 {
                // A reply with nothing but its question: refused in some way.
                info.rejected = true;
            }
        }
        if !is_query {
            for r in &p.replies {
                reply(&mut info, ts, p, r, h.opcode);
            }
        }
        if is_query {
            info.saw_query = true;
        } else {
            info.saw_reply = true;
        }
        if info.saw_query && info.saw_reply {
            emit(info);
            return false;
        }
        match then {
            Then::Write => {
                emit(info);
                false
            }
            Then::FastPath => {
                self.pending_query = Some(info);
                false
            }
            Then::Queries => self.pending_queries.push(info, emit),
            Then::Replies => self.pending_replies.push(info, emit),
        }
    }

    /// The connection ended: everything still waiting is written.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Info)) {
        if let Some(q) = self.pending_query.take() {
            emit(q);
        }
        self.pending_queries.drain(emit);
        self.pending_replies.drain(emit);
    }
}

/// Zeek's `dns_request` handler (for the last question; earlier ones are overwritten).
fn request(info: &mut Info, conn: ConnCtx, p: &Parsed) {
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

/// Zeek's `DNS::do_reply` for one record of a reply.
fn reply(info: &mut Info, ts: Ts, p: &Parsed, r: &super::wire::Reply, opcode: u8) {
    debug_assert!(r.section != Section::Update || opcode == OPCODE_UPDATE);
    if info.query.is_none() {
        info.query = Some(clip(p.str(&r.owner)));
    }
    info.aa = p.header.aa;
    info.ra = p.header.ra;
    if info.rtt.is_none() {
        let rtt = ts.since(info.ts);
        // A zero rtt means the reply created the record: there is no query to measure from.
        info.rtt = (rtt.0 != 0).then_some(rtt);
    }
    let text = p.str(&r.text);
    if !text.is_empty() && info.answers.len() < MAX_ANSWERS {
        info.answers.push(text.into());
        info.ttls.push(r.ttl);
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

    fn run(s: &mut Sessions, c: ConnCtx, ts: i64, m: &[u8], out: &mut Vec<Info>) {
        let mut p = Parsed::default();
        assert!(parse(m, Options::default(), &mut p));
        s.message(c, Ts(ts), &p, &mut |i| out.push(i));
    }

    #[test]
    fn query_then_reply_is_one_record_with_rtt() {
        let (mut s, c, mut out) = (Sessions::default(), ctx("10.0.0.2", 53), vec![]);
        run(&mut s, c, 1_000_000, &msg(5, false, 0), &mut out);
        assert!(out.is_empty());
        run(&mut s, c, 1_000_400, &msg(5, true, 2), &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.rtt, Some(Span(400)));
        assert_eq!(r.query.as_deref(), Some(&b"a.example"[..]));
        assert_eq!((r.qtype, r.qclass, r.rcode), (Some(1), Some(1), Some(0)));
        assert_eq!(r.answers.len(), 2);
        assert_eq!(&*r.answers[1], b"192.0.2.1");
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
        s.finish(&mut |i| out.push(i));
        assert_eq!(out.len(), 4);
        let reply_only: Vec<_> = out.iter().filter(|i| i.qtype.is_none()).collect();
        assert_eq!(reply_only.len(), 2);
        assert!(reply_only.iter().all(|i| i.rtt.is_none()));
    }

    #[test]
    fn multicast_is_never_paired() {
        let (mut s, c, mut out) = (Sessions::default(), ctx("224.0.0.251", 5353), vec![]);
        run(&mut s, c, 1, &msg(0, false, 0), &mut out);
        run(&mut s, c, 2, &msg(0, true, 1), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[1].rtt.is_none() && out[1].qtype.is_none());
    }

    #[test]
    fn pending_tables_are_bounded() {
        let (mut s, c, mut out) = (Sessions::default(), ctx("10.0.0.2", 53), vec![]);
        let mut overflows = 0;
        let mut p = Parsed::default();
        for id in 0..1000u16 {
            assert!(parse(&msg(id, false, 0), Options::default(), &mut p));
            overflows += usize::from(s.message(c, Ts(1), &p, &mut |i| out.push(i)));
        }
        assert!(overflows > 0);
        assert!(s.pending_queries.ids.len() <= MAX_PENDING_IDS + 1);
        for _ in 0..1000 {
            assert!(parse(&msg(7, false, 0), Options::default(), &mut p));
            s.message(c, Ts(2), &p, &mut |i| out.push(i));
        }
        assert!(s
            .pending_queries
            .ids
            .iter()
            .all(|(_, q)| q.len() <= MAX_PENDING_PER_ID + 1));
        s.finish(&mut |i| out.push(i));
        assert_eq!(out.len(), 2000);
    }
}
