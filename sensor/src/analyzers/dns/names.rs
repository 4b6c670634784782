//! The names dns.log writes for numeric DNS fields, and NetBIOS name decoding.
//!
//! The tables are Zeek's (`DNS::query_types`, `DNS::classes`, `DNS::base_errors`), including
//! their spelling quirks (`NXRRSet`, `*` for ANY) and their fallbacks for numbers without a
//! name (`query-N`, `qclass-N`, `rcode-N`).

use std::borrow::Cow;

/// Name of an RR type / QTYPE.
pub fn qtype_name(t: u16) -> Cow<'static, str> {
    let s = match t {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP-PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        56 => "NINFO",
        57 => "RKEY",
        58 => "TALINK",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "*",
        256 => "URI",
        257 => "CAA",
        32768 => "TA",
        32769 => "DLV",
        65281 => "WINS",
        65282 => "WINS-R",
        65422 => "XPF",
        65521 => "INTEGRITY",
        _ => return Cow::Owned(format!("query-{t}")),
    };
    Cow::Borrowed(s)
}

/// Name of a QCLASS.
pub fn class_name(c: u16) -> Cow<'static, str> {
    let s = match c {
        1 => "C_INTERNET",
        2 => "C_CSNET",
        3 => "C_CHAOS",
        4 => "C_HESIOD",
        254 => "C_NONE",
        255 => "C_ANY",
        _ => return Cow::Owned(format!("qclass-{c}")),
    };
    Cow::Borrowed(s)
}

/// Name of a header RCODE (the 4-bit field; extended codes never reach dns.log).
pub fn rcode_name(r: u16) -> Cow<'static, str> {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSet",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "unassigned-11",
        12 => "unassigned-12",
        13 => "unassigned-13",
        14 => "unassigned-14",
        15 => "unassigned-15",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        3842 => "BADSIG",
        _ => return Cow::Owned(format!("rcode-{r}")),
    };
    Cow::Borrowed(s)
}

/// C's `ispunct` in the C locale: printable ASCII that is neither a letter, a digit nor space.
fn is_punct(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// Decodes a NetBIOS first-level encoded name (RFC 1001 §14.1: 32 letters `A`..`P`, two per
/// byte), as Zeek does for NBNS queries: case-insensitive, decoding stops at the first byte
/// that is not printable (bytes 0-2 pass, they start `\x01\x02__MSBROWSE__\x02`), the 16th
/// byte (the name's suffix type) is dropped, and trailing spaces and NULs are removed.
/// `None` when the text is not an encoded name or decodes to nothing.
pub fn decode_netbios_name(encoded: &[u8]) -> Option<Vec<u8>> {
    if encoded.len() != 32 {
        return None;
    }
    let mut buf = [0u8; 16];
    let mut length = 0;
    for (i, pair) in encoded.chunks_exact(2).enumerate() {
        let hi = pair[0].to_ascii_uppercase();
        let lo = pair[1].to_ascii_uppercase();
        if !(b'A'..=b'P').contains(&hi) || !(b'A'..=b'P').contains(&lo) {
            return None;
        }
        let b = ((hi - b'A') << 4) | (lo - b'A');
        buf[i] = b;
        if b.is_ascii_alphanumeric() || is_punct(b) || b == b' ' || b < 3 {
            length += 1;
        } else {
            break;
        }
    }
    if length == 16 {
        length = 15;
    }
    while length > 0 && matches!(buf[length - 1], b' ' | 0) {
        length -= 1;
    }
    (length > 0).then(|| buf[..length].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_fallbacks() {
        assert_eq!(qtype_name(255), "*");
        assert_eq!(qtype_name(32), "NIMLOC");
        assert_eq!(qtype_name(54), "query-54");
        assert_eq!(class_name(1), "C_INTERNET");
        assert_eq!(class_name(0x8001), "qclass-32769");
        assert_eq!(rcode_name(8), "NXRRSet");
        assert_eq!(rcode_name(99), "rcode-99");
    }

    #[test]
    fn netbios_names_decode_like_zeek() {
        let d = |s: &str| {
            decode_netbios_name(s.as_bytes()).map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        assert_eq!(
            d("ejfdebfeebfacacacacacacacacacaaa").as_deref(),
            Some("ISATAP")
        );
        assert_eq!(
            d("fhepfcelehfcepfffacacacacacacabl").as_deref(),
            Some("WORKGROUP")
        );
        assert_eq!(
            d("abacfpfpenfdecfcepfhfdeffpfpacab").as_deref(),
            Some("\u{1}\u{2}__MSBROWSE__\u{2}")
        );
        assert_eq!(
            d("ENEBFCFEEJEOCACACACACACACACACAAD").as_deref(),
            Some("MARTIN")
        );
        // Wrong length, letters outside A-P, all spaces.
        assert_eq!(d("ENEB"), None);
        assert_eq!(d("ZZEBFCFEEJEOCACACACACACACACACAAD"), None);
        assert_eq!(d("CACACACACACACACACACACACACACACACA"), None);
    }
}
