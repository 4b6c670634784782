//! Byte strings of log records, kept inside the record when short.
//!
//! An http.log record carries a few strings (method, URI, host, user agent, status
//! message). Most are a few dozen bytes: held inline they spare the packet path an
//! allocation and a free per string. Longer ones go to the heap. (dns.log keeps its boxes:
//! its pending transactions sit in every DNS connection's state, which must stay small.)

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Bytes held inline (the whole value is 40 bytes, like three pointers and a bit).
pub const INLINE: usize = 38;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// An immutable byte string: inline up to [`INLINE`] bytes, boxed beyond.
#[derive(Clone)]
pub struct SmallBytes(Repr);

impl SmallBytes {
    /// A string of exactly `len` bytes written by `fill` (which gets them zeroed).
    pub fn build(len: usize, fill: impl FnOnce(&mut [u8])) -> SmallBytes {
        if len <= INLINE {
            let mut bytes = [0u8; INLINE];
            fill(&mut bytes[..len]);
            // `len` fits in a byte: INLINE is below 256.
            SmallBytes(Repr::Inline {
                len: len as u8,
                bytes,
            })
        } else {
            let mut v = vec![0u8; len];
            fill(&mut v);
            SmallBytes(Repr::Heap(v.into_boxed_slice()))
        }
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(b: &[u8]) -> SmallBytes {
        SmallBytes::build(b.len(), |out| out.copy_from_slice(b))
    }
}

impl Deref for SmallBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &SmallBytes) -> bool {
        **self == **other
    }
}

impl Eq for SmallBytes {}

impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self).hash(h);
    }
}

impl fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_strings_read_back_and_compare_by_content() {
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, 300] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let s = SmallBytes::from(&data[..]);
            assert_eq!(&*s, &data[..]);
            assert_eq!(s, SmallBytes::build(len, |o| o.copy_from_slice(&data)));
        }
        assert_eq!(std::mem::size_of::<Option<SmallBytes>>(), 40);
    }
}
