//! Secrets out of the support bundle.
//!
//! Two layers, because a config may be invalid and logs may quote it:
//! 1. the config is redacted by key: any value under a key whose name says it is secret
//!    (password, passphrase, secret, token, psk, pin, private key) is replaced, inline PEM
//!    private keys anywhere are replaced, and credentials inside URLs are removed; the values
//!    taken out are remembered;
//! 2. every collected text is scrubbed: those values, wherever they appear, and any PEM
//!    private-key block are replaced.

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Words in a key name that mark its value secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "psk",
    "pin",
    "private",
    "credential",
    "apikey",
    "api_key",
];

/// Shortest value worth scrubbing from other texts (shorter ones would hit innocent bytes).
const MIN_SCRUB_LEN: usize = 4;

/// A redacted config and the secret values taken out of it.
#[derive(Debug)]
pub struct Redacted {
    pub text: String,
    pub secrets: Vec<String>,
}

fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| k.contains(w))
}

/// Redacts a config given as text. Works line by line on TOML syntax without needing the file
/// to parse, so a broken config is still redacted.
pub fn redact_config(text: &str) -> Redacted {
    let mut secrets = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut in_pem = false;
    let mut in_multiline: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let eol = &line[body.len()..];
        if let Some(delim) = in_multiline {
            // Inside a multi-line string whose key is secret: drop its content.
            secrets.push(body.to_string());
            if body.contains(delim) {
                in_multiline = None;
            }
            continue;
        }
        if in_pem {
            secrets.push(body.trim().to_string());
            if body.contains("-----END") {
                in_pem = false;
            }
            continue;
        }
        if body.contains("-----BEGIN") && body.contains("PRIVATE KEY") {
            out.push_str(REDACTED);
            out.push_str(eol);
            in_pem = !body.contains("-----END");
            continue;
        }
        let Some(eq) = body.find('=') else {
            out.push_str(line);
            continue;
        };
        let key = body[..eq].trim().trim_matches(['"', '\'']);
        let value = body[eq + 1..].trim();
        if secret_key(key) && !value.is_empty() {
            out.push_str(&body[..eq + 1]);
            out.push_str(&format!(" \"{REDACTED}\""));
            out.push_str(eol);
            for delim in ["\"\"\"", "'''"] {
                if let Some(rest) = value.strip_prefix(delim) {
                    if !rest.contains(delim) {
                        in_multiline = Some(delim);
                    }
                }
            }
            let v = value.trim_matches(['"', '\'']).to_string();
            if !v.is_empty() {
                secrets.push(v);
            }
            continue;
        }
        if let Some(clean) = strip_url_credentials(value, &mut secrets) {
            out.push_str(&body[..eq + 1]);
            out.push(' ');
            out.push_str(&clean);
            out.push_str(eol);
            continue;
        }
        out.push_str(line);
    }
    secrets.retain(|s| s.len() >= MIN_SCRUB_LEN);
    secrets.sort();
    secrets.dedup();
    Redacted { text: out, secrets }
}

/// `"https://user:pass@host/..."` → `"https://<redacted>@host/..."`; `None` when the value
/// holds no URL credentials.
fn strip_url_credentials(value: &str, secrets: &mut Vec<String>) -> Option<String> {
    let scheme = value.find("://")?;
    let rest = &value[scheme + 3..];
    let auth_end = rest.find(['/', '"', '\'']).unwrap_or(rest.len());
    let at = rest[..auth_end].rfind('@')?;
    let userinfo = &rest[..at];
    if let Some((_, pass)) = userinfo.split_once(':') {
        secrets.push(pass.to_string());
    }
    secrets.push(userinfo.to_string());
    Some(format!("{}://{REDACTED}{}", &value[..scheme], &rest[at..]))
}

/// Removes known secret values and private-key blocks from any collected text.
#[derive(Debug)]
pub struct Scrubber {
    secrets: Vec<Vec<u8>>,
}

impl Scrubber {
    pub fn new(secrets: Vec<String>) -> Scrubber {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SCRUB_LEN)
            .map(String::into_bytes)
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Scrubber { secrets }
    }

    pub fn scrub(&self, data: &[u8]) -> Vec<u8> {
        let mut out = cut_private_keys(data);
        for s in &self.secrets {
            out = replace_all(&out, s, REDACTED.as_bytes());
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

fn replace_all(data: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    while let Some(i) = find(data, needle, at) {
        out.extend_from_slice(&data[at..i]);
        out.extend_from_slice(with);
        at = i + needle.len();
    }
    out.extend_from_slice(&data[at..]);
    out
}

/// Replaces every `-----BEGIN ... PRIVATE KEY-----` ... `-----END ...-----` block (an
/// unterminated one runs to the end).
pub fn cut_private_keys(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    while let Some(b) = find(data, b"-----BEGIN ", at) {
        let line_end = find(data, b"-----", b + 11).map(|e| e + 5);
        let is_key = line_end.is_some_and(|e| {
            data[b..e]
                .windows(b"PRIVATE KEY".len())
                .any(|w| w == b"PRIVATE KEY")
        });
        let Some(hdr_end) = line_end.filter(|_| is_key) else {
            out.extend_from_slice(&data[at..b + 11]);
            at = b + 11;
            continue;
        };
        out.extend_from_slice(&data[at..b]);
        out.extend_from_slice(REDACTED.as_bytes());
        at = match find(data, b"-----END ", hdr_end) {
            Some(e) => find(data, b"-----", e + 9).map_or(data.len(), |x| x + 5),
            None => data.len(),
        };
    }
    out.extend_from_slice(&data[at..]);
    out
}
