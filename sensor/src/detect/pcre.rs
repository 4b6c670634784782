//! `pcre:"/.../flags"` → a `regex` crate byte regex.
//!
//! The `regex` crate guarantees linear-time matching, so no payload can make a rule blow up;
//! the price is that PCRE's backtracking-only features (backreferences, lookaround, atomic
//! groups, possessive quantifiers, recursion) cannot be expressed. Rules using them are skipped
//! with a named reason. Everything else is translated: PCRE-only escapes (`\h`, `\v`, `\Z`,
//! one-digit `\x`, octal `\0nn`, `\Q...\E`) and flags (`i s m x` as inline flags, `G` as
//! swapped greed, `A` as an anchor); Suricata's buffer flags pick the sticky buffer.

use super::parse::ParseError;
use super::rule::{Buf, Pcre};

pub struct Parsed {
    pub pcre: Pcre,
    /// The buffer a Suricata modifier (`/U`, `/H`, ...) names, if any.
    pub buffer: Option<Buf>,
}

fn unsupported<T>(what: &str) -> Result<T, ParseError> {
    Err(ParseError::Unsupported(format!("pcre {what}")))
}

/// Compiled program size limit per pattern: a bound on load memory for hostile rule files.
const SIZE_LIMIT: usize = 1 << 20;
/// Lazy DFA cache per pattern.
const DFA_LIMIT: usize = 1 << 18;

pub fn parse(value: &str) -> Result<Parsed, ParseError> {
    let v = value.trim();
    let (negated, v) = match v.strip_prefix('!') {
        Some(r) => (true, r.trim()),
        None => (false, v),
    };
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| ParseError::Invalid("pcre must be quoted".into()))?;
    let v = v
        .strip_prefix('/')
        .ok_or_else(|| ParseError::Invalid("pcre must start with '/'".into()))?;
    let end = v
        .rfind('/')
        .ok_or_else(|| ParseError::Invalid("pcre lacks its closing '/'".into()))?;
    let (pat, flags) = (&v[..end], &v[end + 1..]);
    let mut inline = String::new();
    let mut relative = false;
    let mut anchored = false;
    let mut buffer = None;
    for f in flags.chars() {
        match f {
            'i' | 's' | 'm' | 'x' => inline.push(f),
            'G' => inline.push('U'),
            'A' => anchored = true,
            'E' | 'B' | 'O' => {}
            'R' => relative = true,
            'U' => buffer = Some(Buf::HttpUri),
            'I' => buffer = Some(Buf::HttpUriRaw),
            'P' => buffer = Some(Buf::HttpRequestBody),
            'Q' => buffer = Some(Buf::FileData),
            'H' => buffer = Some(Buf::HttpHeader),
            'D' => buffer = Some(Buf::HttpHeaderRaw),
            'M' => buffer = Some(Buf::HttpMethod),
            'C' => buffer = Some(Buf::HttpCookie),
            'S' => buffer = Some(Buf::HttpStatCode),
            'Y' => buffer = Some(Buf::HttpStatMsg),
            'V' => buffer = Some(Buf::HttpUserAgent),
            'W' => buffer = Some(Buf::HttpHost),
            'Z' => buffer = Some(Buf::HttpHostRaw),
            o => return Err(ParseError::Invalid(format!("unknown pcre flag {o:?}"))),
        }
    }
    let body = translate(pat)?;
    let mut full = String::with_capacity(body.len() + 16);
    if !inline.is_empty() {
        full.push_str("(?");
        full.push_str(&inline);
        full.push(')');
    }
    if anchored {
        full.push_str("\\A(?:");
        full.push_str(&body);
        full.push(')');
    } else {
        full.push_str(&body);
    }
    let re = regex::bytes::RegexBuilder::new(&full)
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_LIMIT)
        .build()
        .or_else(|_| unsupported("not translatable"))?;
    Ok(Parsed {
        pcre: Pcre {
            re,
            negated,
            relative,
        },
        buffer,
    })
}

fn is_quantifier(c: char) -> bool {
    matches!(c, '*' | '+' | '?' | '}')
}

/// PCRE pattern text → `regex` syntax, or the name of what cannot be translated.
pub fn translate(p: &str) -> Result<String, ParseError> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // The previous token was a quantifier (for possessive `++`, `*+`, `?+`, `}+`).
    let mut after_quant = false;
    while i < chars.len() {
        let c = chars[i];
        let was_quant = after_quant;
        after_quant = false;
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err(ParseError::Invalid("pcre ends with '\\'".into()));
                };
                i += 2;
                match n {
                    '1'..='9' => return unsupported("backreference"),
                    '0' => {
                        let mut v = 0u32;
                        let mut k = 0;
                        while k < 2 && i < chars.len() && chars[i].is_digit(8) {
                            v = v * 8 + chars[i].to_digit(8).unwrap_or(0);
                            i += 1;
                            k += 1;
                        }
                        out.push_str(&byte_escape(v));
                    }
                    'x' => {
                        if chars.get(i) == Some(&'{') {
                            let close = chars[i..].iter().position(|&c| c == '}');
                            let Some(close) = close else {
                                return Err(ParseError::Invalid("pcre: bad \\x{".into()));
                            };
                            let hex: String = chars[i + 1..i + close].iter().collect();
                            i += close + 1;
                            let v = u32::from_str_radix(&hex, 16)
                                .map_err(|_| ParseError::Invalid("pcre: bad \\x{".into()))?;
                            if v > 0xff {
                                return unsupported("code point escape");
                            }
                            out.push_str(&byte_escape(v));
                        } else {
                            let mut hex = String::new();
                            while hex.len() < 2 && i < chars.len() && chars[i].is_ascii_hexdigit() {
                                hex.push(chars[i]);
                                i += 1;
                            }
                            let v = u32::from_str_radix(&hex, 16).unwrap_or(0);
                            out.push_str(&byte_escape(v));
                        }
                    }
                    'Q' => {
                        let mut lit = String::new();
                        while i < chars.len() {
                            if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                                i += 2;
                                break;
                            }
                            lit.push(chars[i]);
                            i += 1;
                        }
                        out.push_str(&regex::escape(&lit));
                    }
                    'E' => {}
                    'Z' if !in_class => out.push_str("(?:\\n?\\z)"),
                    'z' | 'A' | 'b' | 'B' if !in_class => {
                        out.push('\\');
                        out.push(n);
                    }
                    'h' => out.push_str(if in_class { "\\t\\x20" } else { "[\\t\\x20]" }),
                    'H' if !in_class => out.push_str("[^\\t\\x20]"),
                    'v' => out.push_str(if in_class {
                        "\\n\\x0B\\x0C\\r"
                    } else {
                        "[\\n\\x0B\\x0C\\r]"
                    }),
                    'V' if !in_class => out.push_str("[^\\n\\x0B\\x0C\\r]"),
                    'R' if !in_class => out.push_str("(?:\\r\\n|[\\n\\x0B\\x0C\\r])"),
                    'e' => out.push_str("\\x1B"),
                    'a' => out.push_str("\\x07"),
                    'd' | 'D' | 'w' | 'W' | 's' | 'S' | 'n' | 'r' | 't' | 'f' => {
                        out.push('\\');
                        out.push(n);
                    }
                    n if n.is_ascii_alphanumeric() => {
                        return unsupported(&format!("escape \\{n}"));
                    }
                    n => {
                        let mut b = [0u8; 4];
                        out.push_str(&regex::escape(n.encode_utf8(&mut b)));
                    }
                }
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                i += 1;
                // A leading `]` (or `^]`) is a literal in PCRE.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '[' if in_class => {
                // POSIX class `[:alpha:]` inside a class; any other `[` is a literal.
                if chars.get(i + 1) == Some(&':') {
                    if let Some(end) = p[char_offset(&chars, i)..].find(":]") {
                        let s = &p[char_offset(&chars, i)..char_offset(&chars, i) + end + 2];
                        out.push_str(s);
                        i += s.chars().count();
                        continue;
                    }
                }
                out.push_str("\\[");
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '(' if !in_class && chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i + 2..chars.len().min(i + 5)].iter().collect();
                if rest.starts_with('=')
                    || rest.starts_with('!')
                    || rest.starts_with("<=")
                    || rest.starts_with("<!")
                {
                    return unsupported("lookaround");
                }
                if rest.starts_with('>') {
                    return unsupported("atomic group");
                }
                if rest.starts_with('(') {
                    return unsupported("conditional");
                }
                if rest.starts_with('|') {
                    return unsupported("branch reset");
                }
                if rest.starts_with('R')
                    || rest.starts_with('&')
                    || rest.starts_with(|c: char| c.is_ascii_digit())
                    || rest.starts_with("P>")
                {
                    return unsupported("recursion");
                }
                if rest.starts_with("P=") {
                    return unsupported("backreference");
                }
                if rest.starts_with('#') {
                    // A comment group: dropped.
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                out.push('(');
            }
            '+' if !in_class && was_quant && !out.ends_with('?') => {
                return unsupported("possessive quantifier");
            }
            '+' if !in_class && was_quant => {
                return unsupported("possessive quantifier");
            }
            '{' if !in_class => {
                // A counted repetition `{n}`, `{n,}`, `{n,m}`; PCRE takes any other `{`
                // literally.
                let close = chars[i..].iter().position(|&c| c == '}');
                let body: String = close
                    .map(|e| chars[i + 1..i + e].iter().collect())
                    .unwrap_or_default();
                let valid = close.is_some() && {
                    let (a, b) = body.split_once(',').unwrap_or((&body, "0"));
                    !a.is_empty()
                        && a.chars().all(|c| c.is_ascii_digit())
                        && b.chars().all(|c| c.is_ascii_digit())
                };
                if valid {
                    let e = close.unwrap_or(0);
                    out.extend(chars[i..=i + e].iter());
                    i += e + 1;
                    after_quant = true;
                    continue;
                }
                out.push_str("\\{");
            }
            '}' if !in_class => out.push_str("\\}"),
            c if !in_class && is_quantifier(c) => {
                out.push(c);
                // `a+?` is lazy, not possessive: only a `+` directly after counts.
                after_quant = c != '?' || !was_quant;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// A byte escape: `\xHH` (two digits) is a raw byte when Unicode is off, `\x{..}` would be
/// a code point.
fn byte_escape(v: u32) -> String {
    format!("\\x{v:02X}")
}

fn char_offset(chars: &[char], i: usize) -> usize {
    chars[..i].iter().map(|c| c.len_utf8()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(s: &str) -> Parsed {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn flags_and_buffers() {
        let p = re(r#""/^GET\s+\/foo/Ui""#);
        assert_eq!(p.buffer, Some(Buf::HttpUri));
        assert!(p.pcre.re.is_match(b"get  /FOO"));
        let p = re(r#"!"/a.b/sR""#);
        assert!(p.pcre.negated && p.pcre.relative);
        assert!(p.pcre.re.is_match(b"a\nb"));
    }

    #[test]
    fn bytes_and_pcre_escapes() {
        let p = re(r#""/\x00\xff\x9\h\Z/""#);
        assert!(p.pcre.re.is_match(b"\x00\xff\x09 "));
        assert!(p.pcre.re.is_match(b"\x00\xff\x09\t\n"));
        let p = re(r#""/\Qa.b\E+/""#);
        assert!(p.pcre.re.is_match(b"a.bbb") && !p.pcre.re.is_match(b"axb"));
        let p = re(r#""/[\]\-a]+\;/""#);
        assert!(p.pcre.re.is_match(b"]-a;"));
        let p = re(r#""/a+?b/""#);
        assert!(p.pcre.re.is_match(b"aab"));
        // `{` that starts no counted repetition is a literal in PCRE.
        let p = re(r#""/x{?a}{2}/""#);
        assert!(p.pcre.re.is_match(b"x{a}}") && p.pcre.re.is_match(b"xa}}"));
    }

    #[test]
    fn untranslatable_is_named() {
        for (pat, why) in [
            (r#""/(a)\1/""#, "pcre backreference"),
            (r#""/a(?=b)/""#, "pcre lookaround"),
            (r#""/(?<!a)b/""#, "pcre lookaround"),
            (r#""/(?>a)/""#, "pcre atomic group"),
            (r#""/a++/""#, "pcre possessive quantifier"),
        ] {
            match parse(pat) {
                Err(ParseError::Unsupported(r)) => assert_eq!(r, why, "{pat}"),
                _ => panic!("{pat} should be unsupported"),
            }
        }
    }
}
