//! Header groups: which rules a connection direction can match at all, so that its packets
//! run a prefilter over those rules only (Suricata's signature group heads, built lazily).
//!
//! Rules with the same header (protocol, addresses, ports, `<>`) form a group. For a packet's
//! endpoints the groups whose header admits them are found by evaluating each distinct
//! address and port expression once; the set of admitting groups at an inspection point
//! names a subset of rules ([`GroupCache`], bounded: past [`MAX_SUBSETS`] the point's full
//! prefilter serves). A subset's prefilter is built on first use for each [`FlowKey`] (the
//! direction and application protocol, which rule by rule rule out most of the subset), so
//! that a packet's scan looks only for patterns of rules that can still match it. A
//! direction no group admits skips inspection outright. Connections cache their packet
//! prefilter per direction.

use hashbrown::HashMap;
use std::net::IpAddr;

use super::engine::{self, Compiled, FlowKey, Point, PointIndex, POINTS};
use super::rule::{Proto, Rule};
use super::vars::{AddrExpr, AddrMatcher, PortExpr};

/// Header-group subsets told apart before the full prefilters take over.
pub const MAX_SUBSETS: usize = 256;
/// Prefilters built for (subset, flow key) pairs before the full ones take over.
pub const MAX_PREFILTERS: usize = 1024;

#[derive(Clone, Copy, Debug)]
struct GroupHdr {
    proto: Proto,
    src: u16,
    sport: u16,
    dst: u16,
    dport: u16,
    bidir: bool,
}

/// The rule set's distinct headers.
#[derive(Default)]
pub struct Groups {
    addrs: Vec<AddrMatcher>,
    ports: Vec<PortExpr>,
    groups: Vec<GroupHdr>,
    /// Group of each rule.
    rule_group: Vec<u32>,
    /// Groups present at each point.
    at_point: Vec<Vec<u32>>,
}

fn proto_admits(p: Proto, ip_proto: u8) -> bool {
    match p {
        Proto::Ip => true,
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => ip_proto == 6,
        Proto::Udp => ip_proto == 17,
        Proto::Icmp => ip_proto == 1 || ip_proto == 58,
        Proto::Icmpv4 => ip_proto == 1,
        Proto::Icmpv6 => ip_proto == 58,
    }
}

/// A packet's endpoints: what header matching depends on.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub ip_proto: u8,
}

impl Groups {
    pub fn build(rules: &[Rule], members: &[Vec<u32>]) -> Groups {
        let mut g = Groups::default();
        let mut addr_ids: HashMap<String, u16> = HashMap::new();
        let mut port_ids: HashMap<String, u16> = HashMap::new();
        let mut group_ids: HashMap<(String, u16, u16, u16, u16, bool), u32> = HashMap::new();
        for r in rules {
            let h = &r.header;
            let mut addr = |e: &AddrExpr| {
                *addr_ids.entry(format!("{e:?}")).or_insert_with(|| {
                    g.addrs.push(AddrMatcher::new(e));
                    (g.addrs.len() - 1) as u16
                })
            };
            let (src, dst) = (addr(&h.src), addr(&h.dst));
            let mut port = |e: &PortExpr| {
                *port_ids.entry(format!("{e:?}")).or_insert_with(|| {
                    g.ports.push(e.clone());
                    (g.ports.len() - 1) as u16
                })
            };
            let (sport, dport) = (port(&h.sport), port(&h.dport));
            let key = (format!("{:?}", h.proto), src, sport, dst, dport, h.bidir);
            let id = *group_ids.entry(key).or_insert_with(|| {
                g.groups.push(GroupHdr {
                    proto: h.proto,
                    src,
                    sport,
                    dst,
                    dport,
                    bidir: h.bidir,
                });
                (g.groups.len() - 1) as u32
            });
            g.rule_group.push(id);
        }
        g.at_point = members
            .iter()
            .map(|m| {
                let mut v: Vec<u32> = m.iter().map(|&ri| g.rule_group[ri as usize]).collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        g
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Distinct address and port expressions, and groups at `p`.
    pub fn sizes(&self, p: Point) -> (usize, usize, usize) {
        (
            self.addrs.len(),
            self.ports.len(),
            self.at_point[p as usize].len(),
        )
    }

    /// Bit `i` set: group `at_point[p][i]` admits these endpoints.
    fn admitting(&self, p: Point, e: &Endpoints, key: &mut Vec<u64>, memo: &mut Memo) {
        let at = &self.at_point[p as usize];
        key.clear();
        key.resize(at.len().div_ceil(64), 0);
        // Each distinct expression is evaluated once for each endpoint.
        let Memo {
            addr: addr_memo,
            port: port_memo,
        } = memo;
        for m in addr_memo.iter_mut() {
            m.clear();
            m.resize(self.addrs.len(), 2);
        }
        for m in port_memo.iter_mut() {
            m.clear();
            m.resize(self.ports.len(), 2);
        }
        let mut addr = |side: usize, id: u16| {
            let m = &mut addr_memo[side][id as usize];
            if *m == 2 {
                let ip = if side == 0 { &e.src } else { &e.dst };
                *m = u8::from(self.addrs[id as usize].matches(ip));
            }
            *m == 1
        };
        let mut port = |side: usize, id: u16| {
            let m = &mut port_memo[side][id as usize];
            if *m == 2 {
                let p = if side == 0 { e.sport } else { e.dport };
                *m = u8::from(self.ports[id as usize].matches(p));
            }
            *m == 1
        };
        for (i, &gi) in at.iter().enumerate() {
            let h = &self.groups[gi as usize];
            if !proto_admits(h.proto, e.ip_proto) {
                continue;
            }
            let fwd = addr(0, h.src) && addr(1, h.dst) && port(0, h.sport) && port(1, h.dport);
            let ok = fwd
                || (h.bidir
                    && addr(1, h.src)
                    && addr(0, h.dst)
                    && port(1, h.sport)
                    && port(0, h.dport));
            if ok {
                key[i / 64] |= 1 << (i % 64);
            }
        }
    }
}

/// Expression results for one packet's endpoints (2 = not evaluated yet).
#[derive(Default)]
struct Memo {
    addr: [Vec<u8>; 2],
    port: [Vec<u8>; 2],
}

/// Entries of each endpoint-class memo before it starts over.
const MAX_CLASS_ENTRIES: usize = 1 << 16;

/// Address classes (one bit per distinct address expression), port classes (interned sets
/// of matching port expressions), and the subset each combination names.
#[derive(Default)]
struct Classes {
    ip_bits: HashMap<IpAddr, u32>,
    port_class: HashMap<u16, u32>,
    port_ids: HashMap<Vec<u64>, u32>,
    subsets: HashMap<(u8, u8, u32, u32, u32, u32), Subset>,
}

impl Classes {
    fn ip(&mut self, g: &Groups, ip: IpAddr) -> u32 {
        if self.ip_bits.len() >= MAX_CLASS_ENTRIES {
            self.ip_bits.clear();
        }
        *self.ip_bits.entry(ip).or_insert_with(|| {
            g.addrs
                .iter()
                .enumerate()
                .filter(|(_, a)| a.matches(&ip))
                .fold(0, |bits, (i, _)| bits | 1 << i)
        })
    }

    fn port(&mut self, g: &Groups, port: u16) -> u32 {
        if let Some(&c) = self.port_class.get(&port) {
            return c;
        }
        let mut bits = vec![0u64; g.ports.len().div_ceil(64)];
        for (i, e) in g.ports.iter().enumerate() {
            if e.matches(port) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        let next = self.port_ids.len() as u32;
        let c = *self.port_ids.entry(bits).or_insert(next);
        self.port_class.insert(port, c);
        c
    }
}

/// Group subsets, the prefilters built for them, and which subset each key names.
#[derive(Default)]
pub struct GroupCache {
    ids: HashMap<(u8, Vec<u64>), u32>,
    classes: Classes,
    /// Each subset's admitted groups (a bit per group id).
    subsets: Vec<Vec<u64>>,
    prefilter_ids: HashMap<(u32, u8, FlowKey), u32>,
    prefilters: Vec<PointIndex>,
    /// Each point's prefilter over all its rules, once the cache is full.
    full: Vec<Option<PointIndex>>,
    key: Vec<u64>,
    memo: Memo,
    /// Subsets refused because the cache was full.
    pub overflows: u64,
}

/// A rule subset: cached, or the point's every rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    Cached(u32),
    Full,
}

/// A prefilter choice: one built for a subset and flow key, or the point's full prefilter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefilter {
    Built(u32),
    Full,
}

impl GroupCache {
    /// The prefilter for packets or transactions with these endpoints at `p`.
    pub fn subset(&mut self, c: &Compiled, p: Point, e: &Endpoints) -> Subset {
        // Endpoints in the same address and port classes admit the same groups: most
        // lookups end here.
        if c.groups.addrs.len() > 32 {
            return self.subset_of(c, p, e);
        }
        let g = &c.groups;
        let key = (
            p as u8,
            e.ip_proto,
            self.classes.ip(g, e.src),
            self.classes.ip(g, e.dst),
            self.classes.port(g, e.sport),
            self.classes.port(g, e.dport),
        );
        if let Some(&s) = self.classes.subsets.get(&key) {
            return s;
        }
        let s = self.subset_of(c, p, e);
        if self.classes.subsets.len() >= MAX_CLASS_ENTRIES {
            self.classes.subsets.clear();
        }
        self.classes.subsets.insert(key, s);
        s
    }

    fn subset_of(&mut self, c: &Compiled, p: Point, e: &Endpoints) -> Subset {
        let mut key = std::mem::take(&mut self.key);
        c.groups.admitting(p, e, &mut key, &mut self.memo);
        let ck = (p as u8, key);
        let found = self.ids.get(&ck).copied();
        let out = match found {
            Some(id) => Subset::Cached(id),
            None if self.subsets.len() >= MAX_SUBSETS => {
                self.overflows += 1;
                self.full_at(c, p);
                Subset::Full
            }
            None => {
                let at = &c.groups.at_point[p as usize];
                let mut admitted = vec![0u64; c.groups.groups.len().div_ceil(64)];
                for (i, &g) in at.iter().enumerate() {
                    if ck.1[i / 64] & (1 << (i % 64)) != 0 {
                        admitted[g as usize / 64] |= 1 << (g % 64);
                    }
                }
                self.subsets.push(admitted);
                let id = (self.subsets.len() - 1) as u32;
                self.ids.insert(ck.clone(), id);
                Subset::Cached(id)
            }
        };
        self.key = ck.1;
        out
    }

    /// The point's prefilter over all its rules, built on first need.
    fn full_at(&mut self, c: &Compiled, p: Point) {
        self.full.resize_with(POINTS, || None);
        self.full[p as usize].get_or_insert_with(|| c.full_index(p));
    }

    /// The prefilter over the rules of subset `s` that a packet or transaction with flow
    /// key `k` can match at `p`.
    pub fn prefilter(&mut self, c: &Compiled, p: Point, s: Subset, k: FlowKey) -> Prefilter {
        let Subset::Cached(sid) = s else {
            return Prefilter::Full;
        };
        let key = (sid, p as u8, k);
        if let Some(&id) = self.prefilter_ids.get(&key) {
            return Prefilter::Built(id);
        }
        if self.prefilters.len() >= MAX_PREFILTERS {
            self.overflows += 1;
            self.full_at(c, p);
            return Prefilter::Full;
        }
        let admitted = &self.subsets[sid as usize];
        let idx = c.index_of(p, |ri| {
            let g = c.groups.rule_group[ri as usize];
            admitted[g as usize / 64] & (1 << (g % 64)) != 0
                && engine::flow_key_admits(&c.rules[ri as usize], &k)
        });
        self.prefilters.push(idx);
        let id = (self.prefilters.len() - 1) as u32;
        self.prefilter_ids.insert(key, id);
        Prefilter::Built(id)
    }

    pub fn index(&self, p: Point, pf: Prefilter) -> &PointIndex {
        match pf {
            Prefilter::Built(id) => &self.prefilters[id as usize],
            // Built by `subset` or `prefilter` when they first answered `Full` for this point.
            Prefilter::Full => self.full[p as usize]
                .as_ref()
                .expect("full prefilter built"),
        }
    }

    pub fn built(&self) -> usize {
        self.prefilters.len()
    }
}
