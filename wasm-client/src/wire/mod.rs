//! The compact byte format between the wasm module and its JavaScript driver, also
//! posted between tabs on the BroadcastChannel.
//!
//! Only a few value kinds exist, mirrored by `npm/src/wire.js`: a byte, an unsigned
//! integer (LEB128, at most 2^53 so JavaScript numbers hold it), a boolean byte, a
//! byte string and a UTF-8 string (each an integer length, then the bytes), and an
//! optional value (a presence byte, then the value). What is sent in that format:
//!
//! - [`bridge`]: the machine's inputs (from the driver) and actions (to the driver),
//!   and the client options;
//! - [`values`]: requests, outcomes, events, received messages, the pending list and
//!   the tab messages, shared by the two directions and by the tabs.

pub mod bridge;
#[cfg(test)]
mod round_trips;
pub mod values;

/// Why bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end in the middle of a value.
    #[error("truncated")]
    Truncated,
    /// A tag, flag or text no writer produces.
    #[error("invalid value")]
    Invalid,
}

/// Appends values to a buffer.
#[derive(Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// A writer whose buffer starts with `tag`.
    pub fn tagged(tag: u8) -> Self {
        Self(vec![tag])
    }

    /// One byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    /// A boolean as 0 or 1.
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.u8(value.into())
    }

    /// An unsigned integer, LEB128.
    pub fn n(&mut self, mut value: u64) -> &mut Self {
        while value > 0x7f {
            self.0.push((value & 0x7f) as u8 | 0x80);
            value >>= 7;
        }
        self.u8(value as u8)
    }

    /// A byte string: its length, then the bytes.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.n(value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    /// A UTF-8 string.
    pub fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// Bytes as they are, to the end (the last field of a message).
    pub fn rest(&mut self, value: &[u8]) -> &mut Self {
        self.0.extend_from_slice(value);
        self
    }

    /// An optional value: 0, or 1 and the value.
    pub fn opt<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) -> &mut Self {
        self.bool(value.is_some());
        if let Some(value) = value {
            write(self, value);
        }
        self
    }

    /// The bytes written.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Reads values from bytes, refusing anything truncated or malformed.
#[derive(Debug)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], WireError> {
        let (head, rest) = self.0.split_at_checked(count).ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    /// A boolean byte.
    pub fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Invalid),
        }
    }

    /// An unsigned integer.
    pub fn n(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::Invalid)
    }

    /// An unsigned integer that must fit `T`.
    pub fn int<T: TryFrom<u64>>(&mut self) -> Result<T, WireError> {
        T::try_from(self.n()?).map_err(|_| WireError::Invalid)
    }

    /// A byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let length = self.int()?;
        self.take(length)
    }

    /// A UTF-8 string.
    pub fn str(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| WireError::Invalid)
    }

    /// An optional value.
    pub fn opt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        if self.bool()? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    /// Checks that nothing is left.
    pub fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_round_trips() {
        let mut writer = Writer::default();
        writer
            .u8(7)
            .bool(true)
            .n(0)
            .n(127)
            .n(128)
            .n((1 << 53) - 1)
            .str("héllo")
            .bytes(&[0, 255])
            .opt(None::<u64>, |w, n| {
                w.n(n);
            })
            .opt(Some("x"), |w, s| {
                w.str(s);
            })
            .rest(&[9, 9]);
        let bytes = writer.finish();
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.u8(), Ok(7));
        assert_eq!(reader.bool(), Ok(true));
        assert_eq!(reader.n(), Ok(0));
        assert_eq!(reader.n(), Ok(127));
        assert_eq!(reader.n(), Ok(128));
        assert_eq!(reader.n(), Ok((1 << 53) - 1));
        assert_eq!(reader.str().as_deref(), Ok("héllo"));
        assert_eq!(reader.bytes(), Ok(&[0, 255][..]));
        assert_eq!(reader.opt(Reader::n), Ok(None));
        assert_eq!(reader.opt(Reader::str), Ok(Some("x".to_owned())));
        assert_eq!(reader.rest(), [9, 9]);
        assert_eq!(reader.end(), Ok(()));
    }

    #[test]
    fn malformed_values_are_refused() {
        assert_eq!(Reader::new(&[]).u8(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[2]).bool(), Err(WireError::Invalid));
        assert_eq!(Reader::new(&[0x80]).n(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[0xff; 11]).n(), Err(WireError::Invalid));
        assert_eq!(Reader::new(&[3, b'a']).str(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[1, 0xff]).str(), Err(WireError::Invalid));
        assert_eq!(Reader::new(&[0x80, 0x02]).int::<u8>(), Err(WireError::Invalid));
        assert_eq!(Reader::new(&[1]).end(), Err(WireError::Invalid));
    }
}
