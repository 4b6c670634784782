//! Rule variables and the address and port groups of rule headers.
//!
//! Groups are kept as small expression trees (`[a,!b,[c,d]]`) with variables expanded at load
//! time; a packet is checked against the tree, which is cheap for the few entries real rules
//! use and keeps Suricata's set semantics: a group matches when one of its positive entries
//! matches (or it has none) and none of its negated entries does.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Prefix;

/// Address variables with the values of Suricata's own suricata.yaml.
pub const DEFAULT_ADDRESS_VARS: &[(&str, &str)] = &[
    ("HOME_NET", "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"),
    ("EXTERNAL_NET", "!$HOME_NET"),
    ("HTTP_SERVERS", "$HOME_NET"),
    ("SMTP_SERVERS", "$HOME_NET"),
    ("SQL_SERVERS", "$HOME_NET"),
    ("DNS_SERVERS", "$HOME_NET"),
    ("TELNET_SERVERS", "$HOME_NET"),
    ("AIM_SERVERS", "$EXTERNAL_NET"),
    ("DC_SERVERS", "$HOME_NET"),
    ("DNP3_SERVER", "$HOME_NET"),
    ("DNP3_CLIENT", "$HOME_NET"),
    ("MODBUS_CLIENT", "$HOME_NET"),
    ("MODBUS_SERVER", "$HOME_NET"),
    ("ENIP_CLIENT", "$HOME_NET"),
    ("ENIP_SERVER", "$HOME_NET"),
];

/// Port variables with the values of Suricata's own suricata.yaml.
pub const DEFAULT_PORT_VARS: &[(&str, &str)] = &[
    ("HTTP_PORTS", "80"),
    ("SHELLCODE_PORTS", "!80"),
    ("ORACLE_PORTS", "1521"),
    ("SSH_PORTS", "22"),
    ("DNP3_PORTS", "20000"),
    ("MODBUS_PORTS", "502"),
    ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
    ("FTP_PORTS", "21"),
    ("GENEVE_PORTS", "6081"),
    ("VXLAN_PORTS", "4789"),
    ("TEREDO_PORTS", "3544"),
];

/// Deepest variable-in-variable nesting accepted (loops are errors, not hangs).
const MAX_VAR_DEPTH: usize = 8;

/// The variables rules may use, as their unexpanded text.
#[derive(Clone, Debug)]
pub struct Vars {
    addr: HashMap<String, String>,
    port: HashMap<String, String>,
}

impl Default for Vars {
    fn default() -> Self {
        let mut v = Vars {
            addr: HashMap::new(),
            port: HashMap::new(),
        };
        for (k, val) in DEFAULT_ADDRESS_VARS {
            v.addr.insert(k.to_string(), val.to_string());
        }
        for (k, val) in DEFAULT_PORT_VARS {
            v.port.insert(k.to_string(), val.to_string());
        }
        v
    }
}

impl Vars {
    /// Sets a variable; a name ending in `_PORTS` (or already a port variable) is a port
    /// variable, like Suricata's `port-groups`.
    pub fn set(&mut self, name: &str, value: &str) {
        let name = name.trim_start_matches('$').to_string();
        if name.ends_with("_PORTS") || self.port.contains_key(&name) {
            self.port.insert(name, value.to_string());
        } else {
            self.addr.insert(name, value.to_string());
        }
    }

    pub fn address(&self, text: &str) -> Result<AddrExpr, String> {
        parse_addr(text.trim(), self, 0)
    }

    pub fn ports(&self, text: &str) -> Result<PortExpr, String> {
        parse_ports(text.trim(), self, 0)
    }
}

#[derive(Clone, Debug)]
pub enum AddrExpr {
    Any,
    Net(Prefix),
    /// An inclusive IPv4 range `a-b`.
    Range(u32, u32),
    Not(Box<AddrExpr>),
    Group(Vec<AddrExpr>),
}

impl AddrExpr {
    pub fn matches(&self, ip: &IpAddr) -> bool {
        match self {
            AddrExpr::Any => true,
            AddrExpr::Net(p) => p.contains(ip),
            AddrExpr::Range(a, b) => match ip {
                IpAddr::V4(v4) => (*a..=*b).contains(&u32::from(*v4)),
                IpAddr::V6(_) => false,
            },
            AddrExpr::Not(e) => !e.matches(ip),
            AddrExpr::Group(items) => group_matches(
                items,
                |e| e.matches(ip),
                |e| match e {
                    AddrExpr::Not(inner) => Some(inner),
                    _ => None,
                },
            ),
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, AddrExpr::Any)
    }
}

/// An address expression compiled for lookups on every new connection: a large group of
/// plain IPv4 networks and ranges (the reputation lists) becomes sorted, merged intervals
/// searched by bisection instead of item by item.
#[derive(Clone, Debug)]
pub enum AddrMatcher {
    V4Set(Vec<(u32, u32)>),
    /// Any other expression: the IPv4 addresses it admits as intervals, the expression
    /// itself for IPv6.
    V4Intervals(Vec<(u32, u32)>, AddrExpr),
    Expr(AddrExpr),
}

/// Sorted, merged inclusive intervals.
fn merge(mut iv: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    iv.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(iv.len());
    for (lo, hi) in iv {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// The IPv4 addresses outside merged intervals `iv`.
fn complement(iv: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(iv.len() + 1);
    let mut next: Option<u32> = Some(0);
    for &(lo, hi) in iv {
        if let Some(n) = next {
            if lo > n {
                out.push((n, lo - 1));
            }
        }
        next = hi.checked_add(1);
    }
    if let Some(n) = next {
        out.push((n, u32::MAX));
    }
    out
}

/// The IPv4 addresses `e` matches (see [`AddrExpr::matches`]), as merged intervals.
fn v4_intervals(e: &AddrExpr) -> Vec<(u32, u32)> {
    match e {
        AddrExpr::Any => vec![(0, u32::MAX)],
        AddrExpr::Net(p) => match p.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(p.len)).unwrap_or(0);
                let lo = u32::from(a) & mask;
                vec![(lo, lo | !mask)]
            }
            // An IPv6 network holds no IPv4 address.
            IpAddr::V6(_) => Vec::new(),
        },
        AddrExpr::Range(a, b) if a <= b => vec![(*a, *b)],
        AddrExpr::Range(..) => Vec::new(),
        AddrExpr::Not(inner) => complement(&v4_intervals(inner)),
        AddrExpr::Group(items) => {
            // Positives OR-ed (none = any), negatives subtracted.
            let (mut pos, mut neg, mut any_pos) = (Vec::new(), Vec::new(), false);
            for it in items {
                match it {
                    AddrExpr::Not(inner) => neg.extend(v4_intervals(inner)),
                    _ => {
                        any_pos = true;
                        pos.extend(v4_intervals(it));
                    }
                }
            }
            let pos = if any_pos {
                merge(pos)
            } else {
                vec![(0, u32::MAX)]
            };
            let allowed = complement(&merge(neg));
            // Intersection of two merged lists.
            let (mut i, mut j, mut out) = (0, 0, Vec::new());
            while i < pos.len() && j < allowed.len() {
                let lo = pos[i].0.max(allowed[j].0);
                let hi = pos[i].1.min(allowed[j].1);
                if lo <= hi {
                    out.push((lo, hi));
                }
                if pos[i].1 < allowed[j].1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
            out
        }
    }
}

/// Group items from which a bisected interval list pays off.
const MIN_SET_ITEMS: usize = 8;

impl AddrMatcher {
    pub fn new(e: &AddrExpr) -> AddrMatcher {
        let AddrExpr::Group(items) = e else {
            return AddrMatcher::V4Intervals(v4_intervals(e), e.clone());
        };
        if items.len() < MIN_SET_ITEMS {
            return AddrMatcher::V4Intervals(v4_intervals(e), e.clone());
        }
        let mut iv: Vec<(u32, u32)> = Vec::with_capacity(items.len());
        for it in items {
            match it {
                AddrExpr::Net(p) => match p.addr {
                    IpAddr::V4(a) => {
                        let mask = u32::MAX.checked_shl(32 - u32::from(p.len)).unwrap_or(0);
                        let lo = u32::from(a) & mask;
                        iv.push((lo, lo | !mask));
                    }
                    IpAddr::V6(_) => return AddrMatcher::V4Intervals(v4_intervals(e), e.clone()),
                },
                AddrExpr::Range(a, b) if a <= b => iv.push((*a, *b)),
                // An empty range matches nothing.
                AddrExpr::Range(..) => {}
                _ => return AddrMatcher::V4Intervals(v4_intervals(e), e.clone()),
            }
        }
        AddrMatcher::V4Set(merge(iv))
    }

    pub fn matches(&self, ip: &IpAddr) -> bool {
        match self {
            AddrMatcher::V4Set(iv) => match ip {
                IpAddr::V4(v4) => {
                    let x = u32::from(*v4);
                    let i = iv.partition_point(|&(lo, _)| lo <= x);
                    i > 0 && iv[i - 1].1 >= x
                }
                IpAddr::V6(_) => false,
            },
            AddrMatcher::V4Intervals(iv, e) => match ip {
                IpAddr::V4(v4) => {
                    let x = u32::from(*v4);
                    let i = iv.partition_point(|&(lo, _)| lo <= x);
                    i > 0 && iv[i - 1].1 >= x
                }
                IpAddr::V6(_) => e.matches(ip),
            },
            AddrMatcher::Expr(e) => e.matches(ip),
        }
    }
}

/// Suricata's group semantics: positives OR-ed (none = any), negatives subtracted.
fn group_matches<T>(
    items: &[T],
    matches: impl Fn(&T) -> bool,
    negated: impl Fn(&T) -> Option<&Box<T>>,
) -> bool {
    let mut any_pos = false;
    let mut pos_hit = false;
    for it in items {
        match negated(it) {
            Some(inner) => {
                if matches(inner) {
                    return false;
                }
            }
            None => {
                any_pos = true;
                if !pos_hit && matches(it) {
                    pos_hit = true;
                }
            }
        }
    }
    !any_pos || pos_hit
}

#[derive(Clone, Debug)]
pub enum PortExpr {
    Any,
    Range(u16, u16),
    Not(Box<PortExpr>),
    Group(Vec<PortExpr>),
}

impl PortExpr {
    pub fn matches(&self, port: u16) -> bool {
        match self {
            PortExpr::Any => true,
            PortExpr::Range(a, b) => (*a..=*b).contains(&port),
            PortExpr::Not(e) => !e.matches(port),
            PortExpr::Group(items) => group_matches(
                items,
                |e| e.matches(port),
                |e| match e {
                    PortExpr::Not(inner) => Some(inner),
                    _ => None,
                },
            ),
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, PortExpr::Any)
    }
}

/// Splits a `[...]` group body at top-level commas.
fn split_group(body: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ']'".into());
                }
            }
            ',' if depth == 0 => {
                out.push(body[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '['".into());
    }
    out.push(body[start..].trim());
    Ok(out.into_iter().filter(|s| !s.is_empty()).collect())
}

fn parse_addr(s: &str, vars: &Vars, depth: usize) -> Result<AddrExpr, String> {
    if depth > MAX_VAR_DEPTH {
        return Err("address variables nest too deep".into());
    }
    if let Some(rest) = s.strip_prefix('!') {
        return Ok(AddrExpr::Not(Box::new(parse_addr(
            rest.trim(),
            vars,
            depth,
        )?)));
    }
    if let Some(body) = s.strip_prefix('[') {
        let body = body
            .strip_suffix(']')
            .ok_or_else(|| format!("address group {s:?} lacks ']'"))?;
        let items = split_group(body)?
            .into_iter()
            .map(|it| parse_addr(it, vars, depth))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(AddrExpr::Group(items));
    }
    if let Some(name) = s.strip_prefix('$') {
        let val = vars
            .addr
            .get(name)
            .ok_or_else(|| format!("undefined address variable ${name}"))?;
        return parse_addr(val.trim(), vars, depth + 1);
    }
    if s.eq_ignore_ascii_case("any") {
        return Ok(AddrExpr::Any);
    }
    if let Some((a, b)) = s.split_once('-') {
        let a: std::net::Ipv4Addr = a.trim().parse().map_err(|_| format!("bad address {s:?}"))?;
        let b: std::net::Ipv4Addr = b.trim().parse().map_err(|_| format!("bad address {s:?}"))?;
        return Ok(AddrExpr::Range(u32::from(a), u32::from(b)));
    }
    // Dotted netmasks (`10.0.0.0/255.0.0.0`) occur in old rules.
    if let Some((a, m)) = s.split_once('/') {
        if let Ok(mask) = m.trim().parse::<std::net::Ipv4Addr>() {
            let len = u32::from(mask).leading_ones() as u8;
            let addr: IpAddr = a.trim().parse().map_err(|_| format!("bad address {s:?}"))?;
            return Ok(AddrExpr::Net(Prefix { addr, len }));
        }
    }
    Prefix::parse(s)
        .map(AddrExpr::Net)
        .ok_or_else(|| format!("bad address {s:?}"))
}

fn parse_ports(s: &str, vars: &Vars, depth: usize) -> Result<PortExpr, String> {
    if depth > MAX_VAR_DEPTH {
        return Err("port variables nest too deep".into());
    }
    if let Some(rest) = s.strip_prefix('!') {
        return Ok(PortExpr::Not(Box::new(parse_ports(
            rest.trim(),
            vars,
            depth,
        )?)));
    }
    if let Some(body) = s.strip_prefix('[') {
        let body = body
            .strip_suffix(']')
            .ok_or_else(|| format!("port group {s:?} lacks ']'"))?;
        let items = split_group(body)?
            .into_iter()
            .map(|it| parse_ports(it, vars, depth))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(PortExpr::Group(items));
    }
    if let Some(name) = s.strip_prefix('$') {
        let val = vars
            .port
            .get(name)
            .ok_or_else(|| format!("undefined port variable ${name}"))?;
        return parse_ports(val.trim(), vars, depth + 1);
    }
    if s.eq_ignore_ascii_case("any") {
        return Ok(PortExpr::Any);
    }
    let num = |t: &str| -> Result<u16, String> {
        t.trim()
            .parse::<u16>()
            .map_err(|_| format!("bad port {s:?}"))
    };
    if let Some((a, b)) = s.split_once(':') {
        let lo = if a.trim().is_empty() { 0 } else { num(a)? };
        let hi = if b.trim().is_empty() { 65535 } else { num(b)? };
        if lo > hi {
            return Err(format!("bad port range {s:?}"));
        }
        return Ok(PortExpr::Range(lo, hi));
    }
    let p = num(s)?;
    Ok(PortExpr::Range(p, p))
}

/// One `classification.config` entry.
#[derive(Clone, Debug)]
pub struct Classtype {
    pub description: String,
    pub priority: u8,
}

/// Parses `config classification: name,description,priority` lines; bad lines are returned
/// with their line numbers, the rest still load.
pub fn parse_classification(text: &str) -> (HashMap<String, Classtype>, Vec<String>) {
    let mut map = HashMap::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix("config classification:") else {
            errors.push(format!("line {}: not a classification line", n + 1));
            continue;
        };
        let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
        match parts.as_slice() {
            [name, desc, prio] => match prio.parse::<u8>() {
                Ok(p) => {
                    map.insert(
                        name.to_string(),
                        Classtype {
                            description: desc.to_string(),
                            priority: p,
                        },
                    );
                }
                Err(_) => errors.push(format!("line {}: bad priority {prio:?}", n + 1)),
            },
            _ => errors.push(format!(
                "line {}: expected name,description,priority",
                n + 1
            )),
        }
    }
    (map, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_set_agrees_with_the_expression() {
        let v = Vars::default();
        let list = "[1.2.3.4,10.0.0.0/8,10.1.0.0/16,0.0.0.1-0.0.0.9,5.5.5.5/32,\
                    9.9.9.0/24,9.9.10.0/24,200.1.1.1,8.8.8.8/31,255.255.255.255]";
        let e = v.address(list).unwrap();
        let m = AddrMatcher::new(&e);
        assert!(matches!(m, AddrMatcher::V4Set(_)));
        let probes = [
            "1.2.3.4",
            "1.2.3.5",
            "10.200.1.1",
            "11.0.0.0",
            "0.0.0.0",
            "0.0.0.1",
            "0.0.0.9",
            "0.0.0.10",
            "9.9.10.255",
            "9.9.11.0",
            "8.8.8.9",
            "8.8.8.10",
            "255.255.255.255",
            "200.1.1.0",
            "2001:db8::1",
        ];
        for p in probes {
            assert_eq!(m.matches(&ip(p)), e.matches(&ip(p)), "{p}");
        }
        let neg = v.address("[1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6,7.7.7.7,!8.8.8.8]");
        assert!(matches!(
            AddrMatcher::new(&neg.unwrap()),
            AddrMatcher::V4Intervals(..)
        ));
    }

    #[test]
    fn interval_matchers_agree_with_their_expressions() {
        let v = Vars::default();
        let exprs = [
            "any",
            "$HOME_NET",
            "$EXTERNAL_NET",
            "!$HOME_NET",
            "[10.0.0.0/8,!10.1.0.0/16]",
            "[!1.2.3.4,!10.0.0.0/8]",
            "[!$HOME_NET,1.2.3.4]",
            "[2001:db8::/32,1.2.3.0/24]",
            "[2001:db8::/32]",
            "[!2001:db8::/32]",
            "![1.0.0.0-1.0.0.255,!1.0.0.7]",
            "[0.0.0.0/0,!255.255.255.255]",
            "[1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6,7.7.7.7,!8.8.8.8,[9.9.9.9,!9.9.9.9]]",
            "1.2.3.9-1.2.3.0",
        ];
        let probes = [
            "0.0.0.0",
            "1.0.0.6",
            "1.0.0.7",
            "1.0.1.0",
            "1.2.3.4",
            "1.2.3.5",
            "2.2.2.2",
            "8.8.8.8",
            "9.9.9.9",
            "10.1.2.3",
            "10.2.3.4",
            "172.16.0.1",
            "192.168.1.1",
            "255.255.255.254",
            "255.255.255.255",
            "2001:db8::1",
            "2001:db9::1",
        ];
        for t in exprs {
            let e = v.address(t).unwrap();
            let m = AddrMatcher::new(&e);
            for p in probes {
                assert_eq!(m.matches(&ip(p)), e.matches(&ip(p)), "{t} {p}");
            }
        }
    }

    #[test]
    fn home_and_external_net() {
        let v = Vars::default();
        let home = v.address("$HOME_NET").unwrap();
        let ext = v.address("$EXTERNAL_NET").unwrap();
        assert!(home.matches(&ip("192.168.1.1")) && !ext.matches(&ip("192.168.1.1")));
        assert!(!home.matches(&ip("8.8.8.8")) && ext.matches(&ip("8.8.8.8")));
        assert!(ext.matches(&ip("2001:db8::1")));
    }

    #[test]
    fn groups_and_negation() {
        let v = Vars::default();
        let g = v.address("[10.0.0.0/8,!10.1.0.0/16]").unwrap();
        assert!(g.matches(&ip("10.2.3.4")));
        assert!(!g.matches(&ip("10.1.3.4")));
        assert!(!g.matches(&ip("11.1.3.4")));
        let g = v.address("[!1.2.3.4]").unwrap();
        assert!(g.matches(&ip("1.2.3.5")) && !g.matches(&ip("1.2.3.4")));
        let g = v.address("1.2.3.0-1.2.3.9").unwrap();
        assert!(g.matches(&ip("1.2.3.9")) && !g.matches(&ip("1.2.3.10")));
        assert!(v.address("$NOPE").is_err());
        assert!(v.address("[1.2.3.4").is_err());
    }

    #[test]
    fn ports() {
        let v = Vars::default();
        let p = v.ports("[80,8000:8080,!8008]").unwrap();
        assert!(p.matches(80) && p.matches(8001) && !p.matches(8008) && !p.matches(81));
        let p = v.ports("$SHELLCODE_PORTS").unwrap();
        assert!(!p.matches(80) && p.matches(81));
        let p = v.ports("1024:").unwrap();
        assert!(p.matches(65535) && !p.matches(1023));
        let p = v.ports("$FILE_DATA_PORTS").unwrap();
        assert!(p.matches(80) && p.matches(143) && !p.matches(8080));
        assert!(v.ports("70000").is_err());
    }

    #[test]
    fn classification_lines() {
        let (m, e) = parse_classification(
            "# c\nconfig classification: bad-unknown,Potentially Bad Traffic, 2\nbogus\n",
        );
        assert_eq!(m["bad-unknown"].priority, 2);
        assert_eq!(m["bad-unknown"].description, "Potentially Bad Traffic");
        assert_eq!(e.len(), 1);
    }
}
