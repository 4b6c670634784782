//! Inspection of one buffer against a rule's list of content/pcre/byte_* steps.
//!
//! Suricata's semantics: steps run in rule order; relative steps (`distance`, `within`, `/R`,
//! `relative`) start where the previous match ended, and when a later relative step fails the
//! engine retries the earlier content at its next occurrence. The retry search is bounded by a
//! step budget per inspection, so a payload built to make the backtracking explode costs a
//! fixed amount of work and simply does not match.

use std::borrow::Cow;

use super::rule::*;

/// Steps one inspection may take (Suricata bounds its recursion in the same spirit).
pub const MAX_STEPS: u32 = 3000;

/// Values of `byte_extract` variables during one rule evaluation.
pub type VarSlots = [i64; 8];

/// Inspects `buf`; with `new_from = Some(n)`, a match only counts when some positive step
/// ended beyond byte `n` (the stream window: bytes before `n` were inspected with an earlier
/// packet, and a match lying wholly in them has already alerted).
pub fn inspect(ms: &[Match], buf: &[u8], vars: &mut VarSlots, new_from: Option<usize>) -> bool {
    let mut budget = MAX_STEPS;
    let mut ctx = Ctx {
        ms,
        buf,
        vars,
        new_from,
        budget: &mut budget,
    };
    ctx.step(0, 0, 0)
}

struct Ctx<'a, 'b> {
    ms: &'a [Match],
    buf: &'a [u8],
    vars: &'b mut VarSlots,
    new_from: Option<usize>,
    budget: &'b mut u32,
}

fn resolve(n: Num, vars: &VarSlots) -> i64 {
    match n {
        Num::Lit(v) => v,
        Num::Var(i) => vars[i as usize],
    }
}

fn find(hay: &[u8], needle: &[u8], nocase: bool) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    if nocase {
        hay.windows(needle.len())
            .position(|w| w.eq_ignore_ascii_case(needle))
    } else {
        memchr::memmem::find(hay, needle)
    }
}

fn eq(a: &[u8], b: &[u8], nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

impl Ctx<'_, '_> {
    /// Whether any step after `i` depends on the position of step `i`'s match.
    fn later_relative(&self, i: usize) -> bool {
        self.ms[i + 1..].iter().any(Match::relative)
    }

    fn done(&self, max_end: usize) -> bool {
        match self.new_from {
            Some(n) => max_end > n,
            None => true,
        }
    }

    fn step(&mut self, i: usize, prev_end: usize, max_end: usize) -> bool {
        if *self.budget == 0 {
            return false;
        }
        *self.budget -= 1;
        let Some(m) = self.ms.get(i) else {
            return self.done(max_end);
        };
        let len = self.buf.len();
        match m {
            Match::Content(c) => self.content(c, i, prev_end, max_end),
            Match::Pcre(p) => {
                if p.relative {
                    // `^` anchors where the previous match ended, so the subject is the
                    // rest of the buffer; one attempt, like a relative content's window.
                    let from = prev_end.min(len);
                    let found = p.re.find(&self.buf[from..]);
                    if p.negated {
                        return found.is_none() && self.step(i + 1, prev_end, max_end);
                    }
                    let Some(mt) = found else { return false };
                    let end = from + mt.end();
                    return self.step(i + 1, end, max_end.max(end));
                }
                if p.negated {
                    return !p.re.is_match(self.buf) && self.step(i + 1, prev_end, max_end);
                }
                let mut from = 0;
                loop {
                    let Some(mt) = p.re.find_at(self.buf, from) else {
                        return false;
                    };
                    let end = mt.end();
                    if self.step(i + 1, end, max_end.max(end)) {
                        return true;
                    }
                    let retry = self.later_relative(i) || !self.done(max_end.max(end));
                    if !retry || mt.start() >= len || *self.budget == 0 {
                        return false;
                    }
                    *self.budget -= 1;
                    from = mt.start() + 1;
                }
            }
            Match::IsDataAt {
                n,
                relative,
                negated,
            } => {
                let n = resolve(*n, self.vars);
                let at = if *relative { prev_end as i64 + n } else { n };
                let has = at >= 0 && (at as usize) < len;
                has != *negated && self.step(i + 1, prev_end, max_end)
            }
            Match::Bsize(cmp) => cmp.test(len as u64) && self.step(i + 1, prev_end, max_end),
            Match::Value(cmp) => {
                let n = self
                    .buf
                    .iter()
                    .take(8)
                    .fold(0u64, |n, &b| n << 8 | u64::from(b));
                !self.buf.is_empty() && cmp.test(n) && self.step(i + 1, prev_end, max_end)
            }
            Match::ByteTest(b) => {
                let base = if b.relative { prev_end as i64 } else { 0 };
                let at = base + resolve(b.offset, self.vars);
                let Some(mut v) = read_value(self.buf, at, b.nbytes, b.format) else {
                    return false;
                };
                if let Some(mask) = b.bitmask {
                    v &= mask;
                    if v != 0 && mask != 0 {
                        v >>= mask.trailing_zeros();
                    }
                }
                let want = resolve(b.value, self.vars) as u64;
                let r = match b.op {
                    ByteOp::Lt => v < want,
                    ByteOp::Gt => v > want,
                    ByteOp::Le => v <= want,
                    ByteOp::Ge => v >= want,
                    ByteOp::Eq => v == want,
                    ByteOp::And => v & want != 0,
                    ByteOp::Xor => v ^ want != 0,
                };
                r != b.negated && self.step(i + 1, prev_end, max_end)
            }
            Match::ByteJump(b) => {
                let base = if b.relative { prev_end as i64 } else { 0 };
                let at = base + resolve(b.offset, self.vars);
                let value = if b.nbytes == 0 && at >= 0 && at as usize <= len {
                    Some(0)
                } else {
                    read_value(self.buf, at, b.nbytes, b.format)
                };
                let Some(mut v) = value else {
                    return false;
                };
                if let Some(mask) = b.bitmask {
                    v &= mask;
                    if v != 0 && mask != 0 {
                        v >>= mask.trailing_zeros();
                    }
                }
                let mut jump = v.saturating_mul(b.multiplier) as i64;
                if b.align && jump % 4 != 0 {
                    jump += 4 - jump % 4;
                }
                let from = if b.from_beginning {
                    0
                } else if b.from_end {
                    len as i64
                } else {
                    at + b.nbytes as i64
                };
                // A jump before the buffer lands on its start (as Suricata does); past its
                // end is no match.
                let to = from
                    .saturating_add(jump)
                    .saturating_add(b.post_offset)
                    .max(0);
                if to as usize >= len {
                    return false;
                }
                self.step(i + 1, to as usize, max_end)
            }
            Match::ByteExtract(b) => {
                let base = if b.relative { prev_end as i64 } else { 0 };
                let at = base + b.offset;
                let Some(mut v) = read_value(self.buf, at, b.nbytes, b.format) else {
                    return false;
                };
                if let Some(mask) = b.bitmask {
                    v &= mask;
                    if v != 0 && mask != 0 {
                        v >>= mask.trailing_zeros();
                    }
                }
                let mut v = v.saturating_mul(b.multiplier);
                if b.align > 1 && v % b.align != 0 {
                    v += b.align - v % b.align;
                }
                self.vars[b.var as usize] = v.min(i64::MAX as u64) as i64;
                let end = (at + b.nbytes as i64) as usize;
                self.step(i + 1, end, max_end)
            }
        }
    }

    fn content(&mut self, c: &Content, i: usize, prev_end: usize, max_end: usize) -> bool {
        let len = self.buf.len();
        let plen = c.pattern.len();
        let (start, end) = if c.startswith {
            (0i64, plen as i64)
        } else if c.relative() {
            let dist = c.distance.map(|d| resolve(d, self.vars)).unwrap_or(0);
            let start = prev_end as i64 + dist;
            let end = match c.within {
                Some(w) => prev_end as i64 + dist + resolve(w, self.vars),
                None => len as i64,
            };
            (start.max(0), end)
        } else {
            let off = c.offset.map(|o| resolve(o, self.vars)).unwrap_or(0).max(0);
            let end = match c.depth {
                Some(d) => off + resolve(d, self.vars),
                None => len as i64,
            };
            (off, end)
        };
        let end = end.min(len as i64);
        let window_ok = end - start >= plen as i64;
        if c.negated {
            let found = window_ok && {
                let (s, e) = (start as usize, end as usize);
                if c.endswith {
                    e == len && eq(&self.buf[len - plen..], &c.pattern, c.nocase)
                } else {
                    find(&self.buf[s..e], &c.pattern, c.nocase).is_some()
                }
            };
            return !found && self.step(i + 1, prev_end, max_end);
        }
        if !window_ok {
            return false;
        }
        let (mut s, e) = (start as usize, end as usize);
        if c.endswith {
            // Only the occurrence that ends the buffer counts.
            if e != len || !eq(&self.buf[len - plen..], &c.pattern, c.nocase) {
                return false;
            }
            return self.step(i + 1, len, max_end.max(len));
        }
        let retry_helps = self.later_relative(i) || self.new_from.is_some();
        loop {
            if e - s < plen {
                return false;
            }
            let Some(p) = find(&self.buf[s..e], &c.pattern, c.nocase) else {
                return false;
            };
            let mend = s + p + plen;
            if self.step(i + 1, mend, max_end.max(mend)) {
                return true;
            }
            if !retry_helps || *self.budget == 0 {
                return false;
            }
            s += p + 1;
        }
    }
}

/// Reads `n` bytes at `at` as a number (binary big/little endian or ASCII digits).
pub fn read_value(buf: &[u8], at: i64, n: usize, format: NumFormat) -> Option<u64> {
    if at < 0 {
        return None;
    }
    let at = at as usize;
    // A string of length 0 means "the digits that are there" (up to 20).
    let n = if n == 0 && !matches!(format, NumFormat::Big | NumFormat::Little) {
        buf.len().saturating_sub(at).min(20)
    } else {
        n
    };
    if n == 0 {
        return None;
    }
    let bytes = buf.get(at..at.checked_add(n)?)?;
    match format {
        NumFormat::Big => Some(bytes.iter().fold(0u64, |v, &b| (v << 8) | b as u64)),
        NumFormat::Little => Some(bytes.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64)),
        NumFormat::Dec | NumFormat::Hex | NumFormat::Oct => {
            let radix = match format {
                NumFormat::Dec => 10,
                NumFormat::Hex => 16,
                _ => 8,
            };
            // Leading digits only, like strtoul: "13When" reads 13.
            let digits: &[u8] = {
                let k = bytes
                    .iter()
                    .position(|b| !(*b as char).is_digit(radix))
                    .unwrap_or(bytes.len());
                &bytes[..k]
            };
            if digits.is_empty() {
                return None;
            }
            u64::from_str_radix(std::str::from_utf8(digits).ok()?, radix).ok()
        }
    }
}

/// Applies a list's transforms in order.
pub fn transform<'a>(data: &'a [u8], ts: &[Transform]) -> Cow<'a, [u8]> {
    let mut cur: Cow<'a, [u8]> = Cow::Borrowed(data);
    for t in ts {
        cur = Cow::Owned(match t {
            Transform::ToLowercase | Transform::HeaderLowercase => cur.to_ascii_lowercase(),
            Transform::ToUppercase => cur.to_ascii_uppercase(),
            Transform::StripWhitespace => cur
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace() && *b != 0x0b)
                .collect(),
            Transform::CompressWhitespace => {
                let mut out = Vec::with_capacity(cur.len());
                let mut prev_ws = false;
                for &b in cur.iter() {
                    let ws = b.is_ascii_whitespace() || b == 0x0b;
                    if ws {
                        if !prev_ws {
                            out.push(b' ');
                        }
                    } else {
                        out.push(b);
                    }
                    prev_ws = ws;
                }
                out
            }
            Transform::UrlDecode => url_decode(&cur),
            Transform::DotPrefix => {
                let mut out = Vec::with_capacity(cur.len() + 1);
                out.push(b'.');
                out.extend_from_slice(&cur);
                out
            }
            Transform::Xor => cur.to_vec(),
        });
    }
    cur
}

/// `%XX` and `+` decoding; malformed escapes stay as they are.
pub fn url_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => {
                let h = |b: u8| (b as char).to_digit(16);
                match (h(s[i + 1]), h(s[i + 2])) {
                    (Some(a), Some(b)) => {
                        out.push((a * 16 + b) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse_rule, Names};
    use super::super::vars::Vars;
    use super::*;

    /// The payload list of a rule written with tcp header boilerplate.
    fn list(opts: &str) -> Vec<Match> {
        let r = parse_rule(
            &format!("alert tcp any any -> any any ({opts} sid:1;)"),
            &Vars::default(),
            &mut Names::default(),
        )
        .unwrap();
        r.lists[0].matches.clone()
    }

    fn hit(opts: &str, buf: &[u8]) -> bool {
        inspect(&list(opts), buf, &mut [0; 8], None)
    }

    #[test]
    fn content_and_modifiers() {
        assert!(hit(r#"content:"abc";"#, b"xxabcxx"));
        assert!(!hit(r#"content:"ABC";"#, b"xxabcxx"));
        assert!(hit(r#"content:"ABC"; nocase;"#, b"xxabcxx"));
        assert!(hit(r#"content:"abc"; depth:5;"#, b"xxabcxx"));
        assert!(!hit(r#"content:"abc"; depth:4;"#, b"xxabcxx"));
        assert!(hit(r#"content:"abc"; offset:2; depth:3;"#, b"xxabcxx"));
        assert!(!hit(r#"content:"abc"; offset:3;"#, b"xxabcxx"));
        assert!(hit(r#"content:"xx"; startswith;"#, b"xxabc"));
        assert!(!hit(r#"content:"ab"; startswith;"#, b"xxabc"));
        assert!(hit(r#"content:"bc"; endswith;"#, b"xxabc"));
        assert!(!hit(r#"content:"ab"; endswith;"#, b"xxabc"));
        assert!(hit(r#"content:!"zz";"#, b"xxabc"));
        assert!(!hit(r#"content:!"ab";"#, b"xxabc"));
    }

    #[test]
    fn relative_content_backtracks() {
        // The first "a" is followed by "c" only at its second occurrence.
        assert!(hit(
            r#"content:"a"; content:"c"; distance:0; within:1;"#,
            b"abac"
        ));
        assert!(!hit(
            r#"content:"a"; content:"c"; distance:0; within:1;"#,
            b"abab"
        ));
        assert!(hit(
            r#"content:"a"; content:"c"; distance:1; within:1;"#,
            b"abc"
        ));
        assert!(!hit(r#"content:"a"; content:"c"; distance:2;"#, b"abc"));
        // Negative distance looks back.
        assert!(hit(
            r#"content:"c"; content:"a"; distance:-3; within:1;"#,
            b"abc"
        ));
        // A match in the already-inspected part of a stream window does not count.
        let l = list(r#"content:"ab";"#);
        assert!(!inspect(&l, b"abxx", &mut [0; 8], Some(2)));
        assert!(inspect(&l, b"xxab", &mut [0; 8], Some(2)));
    }

    #[test]
    fn isdataat_and_bsize() {
        assert!(hit(r#"content:"a"; isdataat:1,relative;"#, b"abc"));
        assert!(!hit(r#"content:"c"; isdataat:1,relative;"#, b"abc"));
        assert!(hit(r#"content:"c"; isdataat:!1,relative;"#, b"abc"));
        assert!(hit(r#"isdataat:2;"#, b"abc"));
        assert!(!hit(r#"isdataat:3;"#, b"abc"));
        assert!(hit(r#"content:"a"; bsize:3;"#, b"abc"));
        assert!(!hit(r#"content:"a"; bsize:>3;"#, b"abc"));
    }

    #[test]
    fn pcre_steps() {
        assert!(hit(r#"content:"a"; pcre:"/^b+c/R";"#, b"abbc"));
        assert!(!hit(r#"content:"a"; pcre:"/^c/R";"#, b"abbc"));
        assert!(hit(r#"pcre:!"/zz/";"#, b"abbc"));
        assert!(hit(r#"pcre:"/B{2}/i"; content:"c"; distance:0;"#, b"abbc"));
    }

    #[test]
    fn byte_ops() {
        // byte_test with bitmask, as the suricata-verify bytetest case does.
        assert!(hit(
            r#"content:"HTTP"; byte_test:1,=,0x9,0,bitmask 0xf8;"#,
            b"HTTP"
        ));
        assert!(hit(
            r#"content:"HTTP"; byte_test:2,=,0x90a,0,bitmask 0xf8f8;"#,
            b"HTTP"
        ));
        assert!(hit(
            r#"content:"x"; byte_test:2,>,255,0,relative;"#,
            b"x\x01\x00"
        ));
        assert!(!hit(
            r#"content:"x"; byte_test:2,>,255,0,relative,little;"#,
            b"x\x01\x00"
        ));
        assert!(hit(
            r#"content:"x"; byte_test:3,=,123,0,relative,string,dec;"#,
            b"x123"
        ));
        assert!(hit(
            r#"content:"x"; byte_test:1,!&,0x80,0,relative;"#,
            b"x\x7f"
        ));
        // byte_jump: length 2 then "end".
        assert!(hit(
            r#"content:"x"; byte_jump:1,0,relative; content:"end"; within:3;"#,
            b"x\x02..end"
        ));
        assert!(!hit(
            r#"content:"x"; byte_jump:1,0,relative; content:"end"; within:3;"#,
            b"x\x03..end"
        ));
        // The suricata-verify byte_jump from_end case.
        let q = b"Question?13When will the pandemic end?";
        assert!(hit(
            r#"content:"Question?"; byte_jump:2,0,relative,string,from_end,post_offset -26; content:"pandemic"; distance:0;"#,
            q
        ));
        // byte_extract feeds a later distance.
        assert!(hit(
            r#"content:"x"; byte_extract:1,0,n,relative; content:"z"; distance:n; within:1;"#,
            b"x\x02abz"
        ));
        assert!(!hit(
            r#"content:"x"; byte_extract:1,0,n,relative; content:"z"; distance:n; within:1;"#,
            b"x\x01abz"
        ));
    }

    #[test]
    fn backtracking_is_bounded() {
        let ms = list(
            r#"content:"a"; content:"a"; distance:0; content:"a"; distance:0; content:"b"; distance:0;"#,
        );
        let buf = vec![b'a'; 4096];
        // Returns (false) quickly instead of exploring every combination.
        assert!(!inspect(&ms, &buf, &mut [0; 8], None));
    }

    #[test]
    fn transforms() {
        assert_eq!(
            &*transform(b"Evil.COM", &[Transform::ToLowercase]),
            b"evil.com"
        );
        assert_eq!(&*transform(b"a.b", &[Transform::DotPrefix]), b".a.b");
        assert_eq!(
            &*transform(b"a \t b", &[Transform::CompressWhitespace]),
            b"a b"
        );
        assert_eq!(&*transform(b"a \t b", &[Transform::StripWhitespace]), b"ab");
        assert_eq!(
            &*transform(b"%2e%2E/+%zz%4", &[Transform::UrlDecode]),
            b"../ %zz%4"
        );
    }
}
