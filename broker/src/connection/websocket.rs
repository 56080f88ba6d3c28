//! WebSocket framing (RFC 6455), server side, without holding messages.
//!
//! MQTT over WebSocket is a byte stream carried in binary frames whose boundaries mean
//! nothing to MQTT, so a decoder need not gather messages: it unmasks each data frame's
//! payload where it was read and hands it on at once. What a connection keeps between
//! reads is the decoder's few words of state (a header cut in two, the mask and what is
//! left of the frame), never a buffer. Pings are answered, and a close frame is echoed,
//! by frames the connection writes with its next output.

use thiserror::Error;

/// Close codes this module reports (RFC 6455, section 7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A frame of a type the endpoint cannot take (text, for MQTT).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A message larger than the endpoint takes.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// Longest control frame payload.
const MAX_CONTROL_PAYLOAD: usize = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A framing error: the connection is closed with [`FrameError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A frame from the client without a mask.
    #[error("unmasked frame from the client")]
    Unmasked,
    /// Reserved bits set, though no extension was agreed.
    #[error("reserved bits set")]
    ReservedBits,
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A control frame fragmented or over 125 bytes.
    #[error("malformed control frame")]
    BadControlFrame,
    /// A continuation without a message, or a new message inside another.
    #[error("fragments out of order")]
    BadFragmentation,
    /// A text frame: MQTT over WebSocket uses binary frames only.
    #[error("text frame received; MQTT needs binary frames")]
    TextFrame,
    /// A payload length with its top bit set.
    #[error("frame length out of range")]
    Length,
    /// A message larger than the limit (the broker's largest MQTT packet).
    #[error("message larger than {0} bytes")]
    TooBig(u64),
}

impl FrameError {
    /// The close code that tells the client.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TextFrame => close_code::UNSUPPORTED_DATA,
            FrameError::TooBig(_) => close_code::MESSAGE_TOO_BIG,
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

/// What is being read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// A frame header (`header_len` bytes of it so far).
    #[default]
    Header,
    /// The payload of a data frame.
    Data,
    /// The payload of a control frame, gathered (at most 125 bytes).
    Control(u8),
}

/// The decoder's state between reads.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Largest message taken.
    max_message: u64,
    /// Payload bytes of the current message so far, frames announced included.
    message_len: u64,
    reading: Reading,
    header: [u8; 14],
    header_len: u8,
    remaining: u64,
    mask: [u8; 4],
    mask_offset: u8,
    /// Inside a fragmented data message.
    in_message: bool,
    /// The control frame being gathered.
    control: Vec<u8>,
    /// The client's close frame arrived: nothing after it is read.
    closed: Option<u16>,
    /// Frames to send back: pongs and the close echo, encoded.
    replies: Vec<u8>,
}

/// How long a frame header is, once its first two bytes are known.
fn header_len(second: u8) -> usize {
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + mask
        + match second & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        }
}

impl FrameDecoder {
    /// A decoder taking messages of at most `max_message` bytes.
    pub fn new(max_message: u64) -> Self {
        Self {
            max_message,
            ..Self::default()
        }
    }

    /// Decodes `input` (unmasking it in place), passing each piece of data frame payload
    /// to `data` in order.
    pub fn decode(&mut self, input: &mut [u8], data: &mut impl FnMut(&[u8])) -> Result<(), FrameError> {
        let mut at = 0;
        while at < input.len() && self.closed.is_none() {
            match self.reading {
                Reading::Header => at += self.read_header(&input[at..])?,
                Reading::Data => {
                    let take = (input.len() - at).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    let payload = &mut input[at..at + take];
                    unmask(self.mask, &mut self.mask_offset, payload);
                    data(payload);
                    at += take;
                    self.payload_read(take);
                }
                Reading::Control(opcode) => {
                    let take = (input.len() - at).min(self.remaining as usize);
                    let start = self.control.len();
                    self.control.extend_from_slice(&input[at..at + take]);
                    unmask(self.mask, &mut self.mask_offset, &mut self.control[start..]);
                    at += take;
                    self.payload_read(take);
                    if self.reading == Reading::Header {
                        self.control_frame(opcode);
                    }
                }
            }
        }
        // A frame with an empty payload ends as soon as its header does.
        if let Reading::Control(opcode) = self.reading
            && self.remaining == 0
        {
            self.reading = Reading::Header;
            self.control_frame(opcode);
        } else if self.reading == Reading::Data && self.remaining == 0 {
            self.reading = Reading::Header;
        }
        Ok(())
    }

    /// The close code the client sent, once its close frame has arrived.
    pub fn closed(&self) -> Option<u16> {
        self.closed
    }

    /// Takes the frames to send back (pongs, the close echo).
    pub fn take_replies(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.replies)
    }

    /// Whether frames wait to be sent back.
    pub fn has_replies(&self) -> bool {
        !self.replies.is_empty()
    }

    fn payload_read(&mut self, taken: usize) {
        self.remaining -= taken as u64;
        if self.remaining == 0 {
            self.reading = Reading::Header;
        }
    }

    /// Reads header bytes from `input`; returns how many it took.
    fn read_header(&mut self, input: &[u8]) -> Result<usize, FrameError> {
        let mut taken = 0;
        loop {
            let have = usize::from(self.header_len);
            let want = if have >= 2 { header_len(self.header[1]) } else { 2 };
            if have == want {
                self.start_frame()?;
                return Ok(taken);
            }
            let take = (want - have).min(input.len() - taken);
            if take == 0 {
                return Ok(taken);
            }
            self.header[have..have + take].copy_from_slice(&input[taken..taken + take]);
            self.header_len += take as u8;
            taken += take;
        }
    }

    fn start_frame(&mut self) -> Result<(), FrameError> {
        let header = &self.header[..usize::from(self.header_len)];
        let (first, second) = (header[0], header[1]);
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        if first & 0x70 != 0 {
            return Err(FrameError::ReservedBits);
        }
        if second & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        let (length, mask_at) = match second & 0x7F {
            126 => (u64::from(u16::from_be_bytes([header[2], header[3]])), 4),
            127 => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&header[2..10]);
                let length = u64::from_be_bytes(bytes);
                if length >> 63 != 0 {
                    return Err(FrameError::Length);
                }
                (length, 10)
            }
            short => (u64::from(short), 2),
        };
        self.mask.copy_from_slice(&header[mask_at..mask_at + 4]);
        self.mask_offset = 0;
        self.header_len = 0;
        self.remaining = length;
        self.reading = match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || length > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(FrameError::BadControlFrame);
                }
                self.control.clear();
                Reading::Control(opcode)
            }
            OP_TEXT => return Err(FrameError::TextFrame),
            OP_BINARY | OP_CONTINUATION => {
                if (opcode == OP_CONTINUATION) != self.in_message {
                    return Err(FrameError::BadFragmentation);
                }
                if opcode == OP_BINARY {
                    self.message_len = 0;
                }
                self.message_len += length;
                if self.message_len > self.max_message {
                    return Err(FrameError::TooBig(self.max_message));
                }
                self.in_message = !fin;
                Reading::Data
            }
            other => return Err(FrameError::UnknownOpcode(other)),
        };
        Ok(())
    }

    fn control_frame(&mut self, opcode: u8) {
        let payload = std::mem::take(&mut self.control);
        match opcode {
            OP_PING => encode_frame(&mut self.replies, OP_PONG, &payload),
            OP_CLOSE => {
                let code = match payload.as_slice() {
                    [high, low, ..] => u16::from_be_bytes([*high, *low]),
                    _ => close_code::NORMAL,
                };
                self.closed = Some(code);
                encode_close(&mut self.replies, code, "");
            }
            _ => {}
        }
        self.control = payload;
        self.control.clear();
    }
}

/// Unmasks `payload`, which starts `offset` bytes into the frame's masked payload (mod 4):
/// eight bytes at a time, the mask rotated to where the payload starts.
fn unmask(mask: [u8; 4], offset: &mut u8, payload: &mut [u8]) {
    let start = usize::from(*offset);
    let rotated: [u8; 4] = std::array::from_fn(|index| mask[(start + index) % 4]);
    let wide = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2], rotated[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (index, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[index % 4];
    }
    *offset = ((start + payload.len()) % 4) as u8;
}

/// Appends an unmasked frame (the server's) with `opcode` and `payload` to `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        length @ 0..=125 => out.push(length as u8),
        length @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        length => {
            out.push(127);
            out.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends a binary frame carrying `payload` to `out`.
pub fn encode_binary(out: &mut Vec<u8>, payload: &[u8]) {
    encode_frame(out, OP_BINARY, payload);
}

/// Appends a close frame with `code` and `reason` (cut to fit a control frame) to `out`.
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(out, OP_CLOSE, &payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

    /// A client frame: masked, `fin` as given.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            length @ 0..=125 => out.push(0x80 | length as u8),
            length @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(length as u16).to_be_bytes());
            }
            length => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(length as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        out
    }

    /// Decodes `input` cut into pieces of `piece` bytes; returns the data and the result.
    fn decode_in_pieces(
        decoder: &mut FrameDecoder,
        input: &[u8],
        piece: usize,
    ) -> (Vec<u8>, Result<(), FrameError>) {
        let mut data = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            let mut chunk = chunk.to_vec();
            if let Err(error) = decoder.decode(&mut chunk, &mut |bytes| data.extend_from_slice(bytes)) {
                return (data, Err(error));
            }
        }
        (data, Ok(()))
    }

    #[test]
    fn data_frames_of_every_length_arrive_whole_however_the_bytes_are_cut() {
        let long: Vec<u8> = (0..70_000u32).map(|n| n as u8).collect();
        let mut input = client_frame(true, OP_BINARY, b"mqtt");
        input.extend(client_frame(true, OP_BINARY, &long[..300]));
        input.extend(client_frame(true, OP_BINARY, &long));
        input.extend(client_frame(true, OP_BINARY, b""));
        let mut expected = b"mqtt".to_vec();
        expected.extend_from_slice(&long[..300]);
        expected.extend_from_slice(&long);
        for piece in [1, 2, 3, 7, 13, 1000, input.len()] {
            let mut decoder = FrameDecoder::new(1 << 20);
            let (data, result) = decode_in_pieces(&mut decoder, &input, piece);
            assert_eq!(result, Ok(()));
            assert!(data == expected, "cut every {piece} bytes");
        }
    }

    #[test]
    fn fragments_continue_one_message_and_control_frames_may_come_between() {
        let mut input = client_frame(false, OP_BINARY, b"ab");
        input.extend(client_frame(true, OP_PING, b"hi"));
        input.extend(client_frame(false, OP_CONTINUATION, b"cd"));
        input.extend(client_frame(true, OP_CONTINUATION, b"ef"));
        let mut decoder = FrameDecoder::new(1 << 20);
        let (data, result) = decode_in_pieces(&mut decoder, &input, 5);
        assert_eq!((data.as_slice(), result), (&b"abcdef"[..], Ok(())));
        let mut pong = Vec::new();
        encode_frame(&mut pong, OP_PONG, b"hi");
        assert_eq!(decoder.take_replies(), pong, "the ping answered");
        assert!(!decoder.has_replies());
    }

    #[test]
    fn a_close_frame_is_echoed_and_nothing_after_it_is_read() {
        let mut input = client_frame(true, OP_BINARY, b"last");
        input.extend(client_frame(true, OP_CLOSE, &[0x03, 0xE8, b'b', b'y', b'e']));
        input.extend(client_frame(true, OP_BINARY, b"ignored"));
        let mut decoder = FrameDecoder::new(1 << 20);
        let (data, result) = decode_in_pieces(&mut decoder, &input, 4);
        assert_eq!((data.as_slice(), result), (&b"last"[..], Ok(())));
        assert_eq!(decoder.closed(), Some(1000));
        let mut echo = Vec::new();
        encode_close(&mut echo, 1000, "");
        assert_eq!(decoder.take_replies(), echo);
    }

    #[test]
    fn an_empty_close_frame_means_a_normal_closure() {
        let mut decoder = FrameDecoder::new(1 << 20);
        let (_, result) = decode_in_pieces(&mut decoder, &client_frame(true, OP_CLOSE, b""), 1);
        assert_eq!((result, decoder.closed()), (Ok(()), Some(close_code::NORMAL)));
    }

    #[test]
    fn protocol_violations_are_refused_with_the_right_close_code() {
        let unmasked = vec![0x82, 0x01, b'x'];
        let mut reserved = client_frame(true, OP_BINARY, b"x");
        reserved[0] |= 0x40;
        let long_ping = client_frame(true, OP_PING, &[0; 126]);
        let fragmented_ping = client_frame(false, OP_PING, b"x");
        let stray_continuation = client_frame(true, OP_CONTINUATION, b"x");
        let mut interleaved = client_frame(false, OP_BINARY, b"x");
        interleaved.extend(client_frame(true, OP_BINARY, b"y"));
        let cases: [(&[u8], FrameError, u16); 7] = [
            (&unmasked, FrameError::Unmasked, 1002),
            (&reserved, FrameError::ReservedBits, 1002),
            (&long_ping, FrameError::BadControlFrame, 1002),
            (&fragmented_ping, FrameError::BadControlFrame, 1002),
            (&stray_continuation, FrameError::BadFragmentation, 1002),
            (&interleaved, FrameError::BadFragmentation, 1002),
            (&client_frame(true, OP_TEXT, b"{}"), FrameError::TextFrame, 1003),
        ];
        for (input, error, code) in cases {
            let mut decoder = FrameDecoder::new(1 << 20);
            let (_, result) = decode_in_pieces(&mut decoder, input, 3);
            assert_eq!(result, Err(error.clone()));
            assert_eq!(error.close_code(), code);
        }
        let mut decoder = FrameDecoder::new(1 << 20);
        let (_, result) = decode_in_pieces(&mut decoder, &client_frame(true, 0x3, b""), 8);
        assert_eq!(result, Err(FrameError::UnknownOpcode(3)));
        let mut decoder = FrameDecoder::new(100);
        let mut too_big = client_frame(false, OP_BINARY, &[0; 60]);
        too_big.extend(client_frame(true, OP_CONTINUATION, &[0; 60]));
        let (data, result) = decode_in_pieces(&mut decoder, &too_big, 1000);
        assert_eq!(
            (data.len(), result),
            (60, Err(FrameError::TooBig(100))),
            "refused at the frame that crosses it"
        );
        assert_eq!(FrameError::TooBig(100).close_code(), 1009);
    }

    #[test]
    fn server_frames_carry_their_length_in_the_shortest_form() {
        for (length, header) in [(5usize, 2usize), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let mut out = Vec::new();
            encode_binary(&mut out, &vec![1; length]);
            assert_eq!(out.len(), header + length);
            assert_eq!(out[0], 0x82);
        }
        let mut close = Vec::new();
        encode_close(&mut close, 4000, &"é".repeat(100));
        assert!(close.len() <= 2 + 125, "cut to a control frame's payload");
        assert_eq!(&close[2..4], &4000u16.to_be_bytes());
    }
}
