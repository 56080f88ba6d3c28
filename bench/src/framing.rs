//! MQTT packet boundaries in a byte buffer, read from each fixed header's remaining length.

/// Splits a frame into whole MQTT packets (fixed header, remaining length, body).
pub fn split_packets(mut frame: &[u8]) -> Vec<&[u8]> {
    let mut packets = Vec::new();
    while frame.len() >= 2 {
        let (mut length, mut shift, mut at) = (0usize, 0, 1);
        while at < frame.len() && at < 5 {
            length |= usize::from(frame[at] & 0x7f) << shift;
            shift += 7;
            at += 1;
            if frame[at - 1] & 0x80 == 0 {
                break;
            }
        }
        let end = (at + length).min(frame.len());
        packets.push(&frame[..end]);
        frame = &frame[end..];
    }
    packets
}
