//! A short field of the ClientHello: borrowed from the caller's buffer, or, in the rare
//! hello whose records split the field, copied into an inline array (never the heap).

use std::ops::Deref;

/// Host names (at most 253 bytes) and ALPN names (at most 255) both fit.
const INLINE_CAPACITY: usize = 255;

// The inline variant is the point: a split field is copied there instead of to the heap.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy)]
pub(super) enum WireBytes<'a> {
    Borrowed(&'a [u8]),
    Reassembled {
        len: u8,
        bytes: [u8; INLINE_CAPACITY],
    },
}

impl WireBytes<'_> {
    pub(super) fn empty_reassembled() -> Self {
        Self::Reassembled {
            len: 0,
            bytes: [0; INLINE_CAPACITY],
        }
    }

    /// Appends to a reassembled field. Callers push at most `u8::MAX` bytes (the length
    /// they read is a `u8`), so the inline array never overflows; extra bytes would be
    /// dropped rather than panic.
    pub(super) fn push(&mut self, byte: u8) {
        if let Self::Reassembled { len, bytes } = self
            && let Some(slot) = bytes.get_mut(usize::from(*len))
        {
            *slot = byte;
            *len += 1;
        }
    }
}

impl Deref for WireBytes<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Borrowed(bytes) => bytes,
            Self::Reassembled { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
        }
    }
}

impl PartialEq for WireBytes<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for WireBytes<'_> {}
