//! Finding a packet's signature in the database, with p0f's preferences: the first exact
//! specific match wins; failing that the first exact generic one; failing that the first fuzzy
//! one. Fuzzy means the TTL is off (above the signature's, or more than 35 hops below), or
//! the quirks differ only by `df`/`id+` having disappeared or `id-`/`ecn` having appeared.

use super::db::{Database, DbSig, Window};
use super::sig::{quirk, window_multiple, PacketSig, MAX_DIST};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Index into [`Database::labels`].
    pub label: usize,
    pub fuzzy: bool,
    pub generic: bool,
    /// Line of the matching signature in the database file.
    pub line: usize,
}

/// Matches a SYN (`response` false) or SYN+ACK; `syn_mss` is the MSS of the SYN a SYN+ACK
/// answers.
pub fn find(db: &Database, s: &PacketSig, response: bool, syn_mss: u16) -> Option<Match> {
    let sigs = if response { &db.response } else { &db.request };
    let multiple = window_multiple(s, syn_mss);
    let mut generic: Option<Match> = None;
    let mut fuzzy: Option<Match> = None;
    for r in sigs {
        let Some(is_fuzzy) = compare(r, s, multiple, fuzzy.is_some()) else {
            continue;
        };
        let label = &db.labels[r.label];
        let m = Match {
            label: r.label,
            fuzzy: is_fuzzy,
            generic: label.generic,
            line: r.line,
        };
        if !is_fuzzy {
            if !label.generic {
                return Some(m);
            }
            generic.get_or_insert(m);
        } else {
            fuzzy.get_or_insert(m);
        }
    }
    generic.or(fuzzy)
}

/// `None`: no match; `Some(fuzzy)`: a match. `have_fuzzy` skips the fuzzy quirk comparison
/// once a fuzzy match is known (it could not win any more).
fn compare(
    r: &DbSig,
    s: &PacketSig,
    multiple: Option<(u16, bool)>,
    have_fuzzy: bool,
) -> Option<bool> {
    if r.layout != s.layout || r.eol_pad != s.eol_pad {
        return None;
    }
    if r.ver.is_some_and(|v| v != s.ver) {
        return None;
    }
    let mut fuzzy = false;
    if r.bad_ttl {
        if r.ttl < s.ttl {
            return None;
        }
    } else if r.ttl < s.ttl || r.ttl - s.ttl > MAX_DIST {
        fuzzy = true;
    }
    if r.olen != s.olen {
        return None;
    }
    // Quirks of the other IP version never count against a packet.
    let want = if s.ver == 4 {
        r.quirks & !quirk::V6_ONLY
    } else {
        r.quirks & !quirk::V4_ONLY
    };
    if want != s.quirks {
        let gone = want & !s.quirks;
        let new = s.quirks & !want;
        if have_fuzzy
            || gone & !(quirk::DF | quirk::NZ_ID) != 0
            || new & !(quirk::ZERO_ID | quirk::ECN) != 0
        {
            return None;
        }
        fuzzy = true;
    }
    if r.mss.is_some_and(|m| m != s.mss)
        || r.scale.is_some_and(|w| w != s.wscale)
        || r.payload.is_some_and(|p| p != s.payload)
    {
        return None;
    }
    let win_ok = match r.win {
        Window::Any => true,
        Window::Exact(w) => w == s.win,
        Window::Modulo(m) => s.win.is_multiple_of(m),
        Window::Mss(n) => multiple == Some((n, false)),
        Window::Mtu(n) => multiple == Some((n, true)),
    };
    win_ok.then_some(fuzzy)
}
