//! Writers for MQTT's primitive data types.

use crate::error::EncodeError;

/// The largest value a variable byte integer can hold.
pub(crate) const MAX_VARINT: u32 = 268_435_455;

pub(crate) fn u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Writes a variable byte integer; `value` must not exceed [`MAX_VARINT`].
pub(crate) fn varint(out: &mut Vec<u8>, mut value: u32) {
    debug_assert!(value <= MAX_VARINT);
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

/// Puts the length of `out[start..]`, written as a body just before, in front of it as a
/// variable byte integer, with `first` (if any) before that: the body is written once,
/// straight into `out`, and moved by the header's few bytes instead of copied from a
/// buffer of its own. On error `out` is left as it was before the body.
pub(crate) fn prefix_length(out: &mut Vec<u8>, start: usize, first: Option<u8>) -> Result<(), EncodeError> {
    let body_len = out.len() - start;
    let Some(length) = u32::try_from(body_len).ok().filter(|len| *len <= MAX_VARINT) else {
        out.truncate(start);
        return Err(EncodeError::PacketTooLarge(body_len));
    };
    out.extend(first);
    varint(out, length);
    // The header (at most 5 bytes) was appended after the body: move it in front.
    let end = out.len();
    let header_len = usize::from(first.is_some()) + varint_len(length);
    let mut header = [0u8; 5];
    header[..header_len].copy_from_slice(&out[end - header_len..]);
    out.copy_within(start..end - header_len, start + header_len);
    out[start..start + header_len].copy_from_slice(&header[..header_len]);
    Ok(())
}

/// How many bytes [`varint`] writes for `value`.
pub(crate) fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Two-byte length-prefixed binary data.
pub(crate) fn binary(out: &mut Vec<u8>, data: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::FieldTooLong(data.len()))?;
    u16(out, len);
    out.extend_from_slice(data);
    Ok(())
}

/// A UTF-8 string, length-prefixed like binary data.
pub(crate) fn string(out: &mut Vec<u8>, text: &str) -> Result<(), EncodeError> {
    binary(out, text.as_bytes())
}
