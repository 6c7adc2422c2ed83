//! Reads the handshake message as one byte stream while it lies in record payloads that
//! record headers interrupt, without copying it together first.

use super::ClientHelloError;
use super::records::{HandshakeMessage, RECORD_HEADER_LEN, record_payload_len};
use super::wire_bytes::WireBytes;

/// A bounded window on the handshake stream. Copying a cursor is how nested TLS vectors are
/// read: [`Cursor::take`] hands out the inner window and moves this one past it.
#[derive(Clone, Copy)]
pub(super) struct Cursor<'a> {
    /// Complete records, as framing checked them.
    wire: &'a [u8],
    /// Index in `wire` of the next payload byte, or of the next record header when
    /// `left_in_record` is 0.
    pos: usize,
    left_in_record: usize,
    /// Handshake bytes this window may still read.
    limit: usize,
}

impl<'a> Cursor<'a> {
    /// A window on the whole handshake message, header included.
    pub(super) fn over(message: HandshakeMessage<'a>) -> Self {
        Self {
            wire: message.wire,
            pos: 0,
            left_in_record: 0,
            limit: message.message_len,
        }
    }

    pub(super) fn remaining(&self) -> usize {
        self.limit
    }

    pub(super) fn is_empty(&self) -> bool {
        self.limit == 0
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, ClientHelloError> {
        self.require(1, field)?;
        self.enter_record()?;
        let byte = self
            .wire
            .get(self.pos)
            .copied()
            .ok_or_else(|| framing_gap(field))?;
        self.pos += 1;
        self.left_in_record -= 1;
        self.limit -= 1;
        Ok(byte)
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, ClientHelloError> {
        self.require(2, field)?;
        Ok(u16::from_be_bytes([self.u8(field)?, self.u8(field)?]))
    }

    pub(super) fn skip(&mut self, len: usize, field: &'static str) -> Result<(), ClientHelloError> {
        self.require(len, field)?;
        let mut left = len;
        while left > 0 {
            self.enter_record()?;
            let step = left.min(self.left_in_record);
            self.pos += step;
            self.left_in_record -= step;
            left -= step;
        }
        self.limit -= len;
        Ok(())
    }

    /// The next `len` bytes as their own window; this one continues after them.
    pub(super) fn take(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<Self, ClientHelloError> {
        self.require(len, field)?;
        let inner = Self {
            limit: len,
            ..*self
        };
        self.skip(len, field)?;
        Ok(inner)
    }

    /// The next `len` bytes, borrowed when one record holds them all, else copied together.
    pub(super) fn bytes(
        &mut self,
        len: u8,
        field: &'static str,
    ) -> Result<WireBytes<'a>, ClientHelloError> {
        let len = usize::from(len);
        self.require(len, field)?;
        if len == 0 {
            return Ok(WireBytes::Borrowed(&[]));
        }
        self.enter_record()?;
        if len <= self.left_in_record {
            let borrowed = self
                .wire
                .get(self.pos..self.pos + len)
                .ok_or_else(|| framing_gap(field))?;
            self.pos += len;
            self.left_in_record -= len;
            self.limit -= len;
            return Ok(WireBytes::Borrowed(borrowed));
        }
        let mut joined = WireBytes::empty_reassembled();
        for _ in 0..len {
            joined.push(self.u8(field)?);
        }
        Ok(joined)
    }

    fn require(&self, len: usize, field: &'static str) -> Result<(), ClientHelloError> {
        if len > self.limit {
            return Err(ClientHelloError::Truncated {
                field,
                needed: len,
                available: self.limit,
            });
        }
        Ok(())
    }

    /// Steps over record headers until a payload byte is next. Framing rejected empty
    /// records, so this stops after one header.
    fn enter_record(&mut self) -> Result<(), ClientHelloError> {
        while self.left_in_record == 0 {
            let len = record_payload_len(self.wire, self.pos)
                .ok_or_else(|| framing_gap("record header"))?;
            self.pos += RECORD_HEADER_LEN;
            self.left_in_record = len;
        }
        Ok(())
    }
}

/// Framing hands over records that hold every byte of the message, and windows never
/// reach past the message, so this is a bug guard that reports rather than panics.
fn framing_gap(field: &'static str) -> ClientHelloError {
    ClientHelloError::Truncated {
        field,
        needed: 1,
        available: 0,
    }
}
