//! A fingerprint database in p0f v3's `p0f.fp` format (README section 5).
//!
//! Only the `[tcp:request]` (SYN) and `[tcp:response]` (SYN+ACK) sections are used; the other
//! sections (`[mtu]`, `[http:*]`) are skipped without being interpreted. Every line of the TCP
//! sections is checked, and an error names the file, the line and what is wrong with it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::sig::{opt, quirk, Layout};

/// A database that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot read fingerprint database {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fingerprint database {path}, line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("fingerprint database {path}: no [tcp:request] or [tcp:response] signatures")]
    Empty { path: PathBuf },
}

/// Who a signature describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// `g`: a last-resort signature, used only when no specific one matches.
    pub generic: bool,
    /// The OS family, or `None` for `!` (an application such as NMap, not an OS).
    pub class: Option<String>,
    pub name: String,
    pub flavor: String,
}

impl Label {
    /// The `os` column: name, and the flavor after a space when there is one.
    pub fn os_text(&self) -> String {
        if self.flavor.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.flavor)
        }
    }
}

/// The window-size field of a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Any,
    Exact(u16),
    /// `%N`: any multiple of N.
    Modulo(u16),
    /// `mss*N`.
    Mss(u16),
    /// `mtu*N`.
    Mtu(u16),
}

/// One `sig = ...` line of a TCP section.
#[derive(Clone, Debug)]
pub struct DbSig {
    pub label: usize,
    /// `None` for `*` (both IP versions).
    pub ver: Option<u8>,
    pub ttl: u8,
    /// `-` suffix: the TTL is randomised below this maximum.
    pub bad_ttl: bool,
    pub olen: u8,
    pub mss: Option<u16>,
    pub win: Window,
    pub scale: Option<u8>,
    pub layout: Layout,
    pub eol_pad: u8,
    pub quirks: u32,
    /// `None` for `*`; `Some(true)` for `+` (payload).
    pub payload: Option<bool>,
    /// Line in the file, for diagnostics.
    pub line: usize,
}

/// The TCP part of a p0f database.
#[derive(Clone, Default)]
pub struct Database {
    pub labels: Vec<Label>,
    /// `[tcp:request]`: SYN signatures, in file order (order decides between equal matches).
    pub request: Vec<DbSig>,
    /// `[tcp:response]`: SYN+ACK signatures.
    pub response: Vec<DbSig>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Database({} labels, {} request, {} response signatures)",
            self.labels.len(),
            self.request.len(),
            self.response.len()
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    TcpRequest,
    TcpResponse,
    Other,
}

impl Database {
    pub fn load(path: &Path) -> Result<Database, DbError> {
        let text = std::fs::read(path).map_err(|source| DbError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // p0f.fp is ASCII; a stray byte elsewhere must not make the whole file unreadable.
        let text = String::from_utf8_lossy(&text);
        Database::parse(&text, path)
    }

    /// Parses database text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Database, DbError> {
        let mut db = Database::default();
        let mut section = Section::None;
        let mut label: Option<usize> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let err = |message: String| DbError::Syntax {
                path: path.to_path_buf(),
                line,
                message,
            };
            let l = raw.trim();
            if l.is_empty() || l.starts_with(';') {
                continue;
            }
            if let Some(inner) = l.strip_prefix('[') {
                let name = inner
                    .strip_suffix(']')
                    .ok_or_else(|| err(format!("section header {l:?} lacks ']'")))?;
                section = match name {
                    "tcp:request" => Section::TcpRequest,
                    "tcp:response" => Section::TcpResponse,
                    "" => return Err(err("empty section name".into())),
                    _ => Section::Other,
                };
                label = None;
                continue;
            }
            let (key, value) = l
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| err(format!("expected 'name = value', found {l:?}")))?;
            match section {
                Section::Other => continue,
                Section::None => {
                    // Only directives such as `classes` may precede the first section.
                    if key != "classes" {
                        return Err(err(format!("{key:?} outside any section")));
                    }
                    continue;
                }
                Section::TcpRequest | Section::TcpResponse => {}
            }
            match key {
                "label" => {
                    db.labels.push(parse_label(value).map_err(err)?);
                    label = Some(db.labels.len() - 1);
                }
                "sys" => {
                    if label.is_none() {
                        return Err(err("'sys' before any 'label'".into()));
                    }
                }
                "sig" => {
                    let Some(lab) = label else {
                        return Err(err("'sig' before any 'label'".into()));
                    };
                    let sig = parse_sig(value, lab, line).map_err(err)?;
                    if section == Section::TcpRequest {
                        db.request.push(sig);
                    } else {
                        db.response.push(sig);
                    }
                }
                other => return Err(err(format!("unknown directive {other:?} in a tcp section"))),
            }
        }
        if db.request.is_empty() && db.response.is_empty() {
            return Err(DbError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(db)
    }
}

fn parse_label(v: &str) -> Result<Label, String> {
    let mut parts = v.splitn(4, ':');
    let (Some(ty), Some(class), Some(name), Some(flavor)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "label {v:?} is not 'type:class:name:flavor' (four ':'-separated parts)"
        ));
    };
    let generic = match ty {
        "s" => false,
        "g" => true,
        _ => return Err(format!("label type {ty:?} is neither 's' nor 'g'")),
    };
    if class.is_empty() {
        return Err("label class is empty (use '!' for applications)".into());
    }
    if name.is_empty() {
        return Err("label name is empty".into());
    }
    Ok(Label {
        generic,
        class: (class != "!").then(|| class.to_string()),
        name: name.to_string(),
        flavor: flavor.to_string(),
    })
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse()
        .map_err(|_| format!("{what} {s:?} is out of range"))
}

fn parse_sig(v: &str, label: usize, line: usize) -> Result<DbSig, String> {
    let f: Vec<&str> = v.split(':').collect();
    if f.len() != 8 {
        return Err(format!(
            "signature {v:?} has {} ':'-separated fields, expected 8 \
             (ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass)",
            f.len()
        ));
    }
    let ver = match f[0] {
        "4" => Some(4),
        "6" => Some(6),
        "*" => None,
        other => return Err(format!("ver {other:?} is not 4, 6 or *")),
    };
    let (ttl, bad_ttl) = parse_ttl(f[1])?;
    let olen: u8 = num(f[2], "olen")?;
    let mss = match f[3] {
        "*" => None,
        s => Some(num::<u16>(s, "mss")?),
    };
    let (wsize, scale) = f[4]
        .split_once(',')
        .ok_or_else(|| format!("wsize,scale {:?} lacks the ','", f[4]))?;
    let win = parse_window(wsize)?;
    let scale = match scale {
        "*" => None,
        s => Some(num::<u8>(s, "scale")?),
    };
    let (layout, eol_pad) = parse_layout(f[5])?;
    let mut quirks = 0;
    if !f[6].is_empty() {
        for q in f[6].split(',') {
            quirks |= quirk::by_name(q).ok_or_else(|| format!("unknown quirk {q:?}"))?;
        }
    }
    match ver {
        Some(4) if quirks & quirk::V6_ONLY != 0 => {
            return Err("quirk 'flow' in an IPv4-only signature".into())
        }
        Some(6) if quirks & quirk::V4_ONLY != 0 => {
            return Err("IPv4 quirk (df, id+, id-, 0+) in an IPv6-only signature".into())
        }
        _ => {}
    }
    let payload = match f[7] {
        "*" => None,
        "0" => Some(false),
        "+" => Some(true),
        other => return Err(format!("pclass {other:?} is not 0, + or *")),
    };
    Ok(DbSig {
        label,
        ver,
        ttl,
        bad_ttl,
        olen,
        mss,
        win,
        scale,
        layout,
        eol_pad,
        quirks,
        payload,
        line,
    })
}

/// `64`, `64-` (randomised, at most 64), or p0f's suggestion form `54+10` / `54+?`.
fn parse_ttl(s: &str) -> Result<(u8, bool), String> {
    let bad = |m: &str| Err(format!("ittl {s:?} {m}"));
    let (ttl, bad_ttl) = if let Some(t) = s.strip_suffix('-') {
        (num::<u16>(t, "ittl")?, true)
    } else if let Some((a, b)) = s.split_once('+') {
        let a = num::<u16>(a, "ittl")?;
        if b == "?" {
            (a, false)
        } else {
            (a + num::<u16>(b, "ittl distance")?, false)
        }
    } else {
        (num::<u16>(s, "ittl")?, false)
    };
    if ttl == 0 || ttl > 255 {
        return bad("is outside 1..=255");
    }
    Ok((ttl as u8, bad_ttl))
}

fn parse_window(s: &str) -> Result<Window, String> {
    Ok(if s == "*" {
        Window::Any
    } else if let Some(n) = s.strip_prefix("mss*") {
        Window::Mss(num(n, "wsize multiplier")?)
    } else if let Some(n) = s.strip_prefix("mtu*") {
        Window::Mtu(num(n, "wsize multiplier")?)
    } else if let Some(n) = s.strip_prefix('%') {
        let n: u16 = num(n, "wsize modulus")?;
        if n == 0 {
            return Err("wsize modulus %0".into());
        }
        Window::Modulo(n)
    } else {
        Window::Exact(num(s, "wsize")?)
    })
}

fn parse_layout(s: &str) -> Result<(Layout, u8), String> {
    let mut layout = Layout::default();
    let mut eol_pad = 0u8;
    if s.is_empty() {
        return Ok((layout, 0));
    }
    let items: Vec<&str> = s.split(',').collect();
    for (i, item) in items.iter().enumerate() {
        let kind = match *item {
            "nop" => opt::NOP,
            "mss" => opt::MSS,
            "ws" => opt::WS,
            "sok" => opt::SOK,
            "sack" => opt::SACK,
            "ts" => opt::TS,
            other => {
                if let Some(n) = other.strip_prefix("eol+") {
                    if i + 1 != items.len() {
                        return Err(format!("'{other}' must be the last option"));
                    }
                    eol_pad = num(n, "eol padding")?;
                    if eol_pad > 40 {
                        return Err(format!("'{other}': padding beyond 40 bytes"));
                    }
                    opt::EOL
                } else if let Some(n) = other.strip_prefix('?') {
                    num::<u8>(n, "option kind")?
                } else {
                    return Err(format!("unknown TCP option {other:?} in olayout"));
                }
            }
        };
        if !layout.push(kind) {
            return Err("more than 40 options in olayout".into());
        }
    }
    Ok((layout, eol_pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Database, DbError> {
        Database::parse(t, Path::new("t.fp"))
    }

    #[test]
    fn parses_labels_and_signatures() {
        let db = parse(
            "; comment\nclasses = win,unix,other\n[mtu]\nlabel = Ethernet\nsig = 1500\n\
             [tcp:request]\nlabel = s:unix:Linux:3.11 and newer\n\
             sig   = *:64:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0\n\
             label = s:!:NMap:SYN scan\nsys = @unix,@win\nsig = *:64-:0:1460:%1024,0:mss,eol+3::*\n\
             [tcp:response]\nlabel = g:unix:Mac OS X:\nsig = 6:54+10:0:1460:mtu*2,*:::+\n",
        )
        .unwrap();
        assert_eq!(db.labels.len(), 3);
        assert_eq!(db.request.len(), 2);
        assert_eq!(db.response.len(), 1);
        let s = &db.request[0];
        assert_eq!((s.ver, s.ttl, s.bad_ttl, s.mss), (None, 64, false, None));
        assert_eq!(s.win, Window::Mss(20));
        assert_eq!(s.scale, Some(10));
        assert_eq!(s.quirks, quirk::DF | quirk::NZ_ID);
        assert_eq!(s.line, 8);
        let n = &db.request[1];
        assert!(n.bad_ttl);
        assert_eq!(n.win, Window::Modulo(1024));
        assert_eq!(n.eol_pad, 3);
        assert_eq!(n.payload, None);
        assert_eq!(db.labels[n.label].class, None);
        let r = &db.response[0];
        assert_eq!((r.ver, r.ttl, r.win), (Some(6), 64, Window::Mtu(2)));
        assert_eq!(r.payload, Some(true));
        assert_eq!(db.labels[1].os_text(), "NMap SYN scan");
        assert_eq!(db.labels[2].os_text(), "Mac OS X");
        assert!(db.labels[2].generic);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            (
                "[tcp:request]\nsig = *:64:0:*:*,*:::0\n",
                2,
                "before any 'label'",
            ),
            (
                "[tcp:request]\nlabel = s:unix:X:\nsig = *:64:0:*:*,*::\n",
                3,
                "fields",
            ),
            (
                "[tcp:request]\nlabel = s:unix:X:\nsig = *:64:0:*:*,*::zz:0\n",
                3,
                "quirk",
            ),
            ("[tcp:request]\nlabel = x:unix:X:\n", 2, "label type"),
            ("[tcp:request]\nlabel = s:unix:X\n", 2, "four"),
            (
                "[tcp:request]\nlabel = s:unix:X:\nsig = *:300:0:*:*,*:::0\n",
                3,
                "ittl",
            ),
            (
                "[tcp:request]\nlabel = s:unix:X:\nsig = *:64:0:*:mss*x,*:::0\n",
                3,
                "multiplier",
            ),
            (
                "[tcp:request]\nlabel = s:unix:X:\nsig = *:64:0:*:*,*:eol+1,nop::0\n",
                3,
                "last",
            ),
            (
                "[tcp:request]\nlabel = s:unix:X:\nsig = *:64:0:*:*,*:foo::0\n",
                3,
                "option",
            ),
            (
                "[tcp:request]\nlabel = s:unix:X:\nsig = 4:64:0:*:*,*::flow:0\n",
                3,
                "flow",
            ),
            ("[tcp:request\n", 1, "lacks"),
            ("bogus line\n", 1, "name = value"),
            (
                "[tcp:request]\nlabel = s:unix:X:\nfoo = 1\n",
                3,
                "unknown directive",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains(&format!("t.fp, line {line}:")) && e.contains(what),
                "{text:?}: {e}"
            );
        }
        assert!(parse("[mtu]\nlabel = x\nsig = 1\n")
            .unwrap_err()
            .to_string()
            .contains("no [tcp:request]"));
    }

    #[test]
    fn debian_database_loads_when_installed() {
        let p = Path::new("/etc/p0f/p0f.fp");
        if p.exists() {
            let db = Database::load(p).unwrap();
            assert!(db.request.len() > 50 && db.response.len() > 50, "{db:?}");
        }
    }
}
