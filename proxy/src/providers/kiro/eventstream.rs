//! AWS event-stream framing (`application/vnd.amazon.eventstream`), decoded incrementally.
//!
//! Frame layout, all integers big-endian:
//! `total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload | message_crc u32`,
//! where `prelude_crc` is the CRC-32 (IEEE) of bytes 0..8 and `message_crc` the CRC-32 of every
//! byte before it. Header = `name_len u8, name, type u8, value` with types 0–9 (bool true/false,
//! i8, i16, i32, i64, bytes (u16 len), string (u16 len), timestamp (i64 ms), UUID (16 bytes)).
//!
//! Own implementation on `crc32fast` rather than `aws-smithy-eventstream` 0.61: that crate needs
//! Rust 1.94 (the workspace targets 1.91), pulls in `aws-smithy-types`, and has no bound on a
//! frame's declared total length, which we need to cap buffering per upstream connection.
//!
//! Unlike the reference (which regex-scans the bytes as text), every frame is length-delimited
//! and CRC-checked; bytes of a partial frame are kept across `push` calls, so a frame split at
//! any chunk boundary decodes the same.

use bytes::{Buf, Bytes, BytesMut};

/// Smallest valid frame: 12-byte prelude and 4-byte message CRC.
pub const MIN_FRAME_LEN: usize = 16;
/// Default cap on a frame's declared total length.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;

/// A typed header value (types 0–9 of the event-stream format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Bytes),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Frame {
    /// The first header `name` if it is a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| match v {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// `:event-type`, e.g. `assistantResponseEvent`.
    pub fn event_type(&self) -> Option<&str> {
        self.header_str(":event-type")
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&str> {
        self.header_str(":message-type")
    }

    /// `:exception-type` of an exception frame, e.g. `ThrottlingException`.
    pub fn exception_type(&self) -> Option<&str> {
        self.header_str(":exception-type")
    }
}

/// Why the byte stream is not a valid event stream. The framing cannot be resynchronised after
/// any of these, so the decoder stays failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event-stream frame declares {0} bytes, below the minimum of 16")]
    TooShort(u32),
    #[error("event-stream frame declares {len} bytes, above the limit of {max}")]
    TooLong { len: u32, max: usize },
    #[error("event-stream prelude CRC mismatch (expected {expected:#010x}, computed {actual:#010x})")]
    PreludeCrc { expected: u32, actual: u32 },
    #[error("event-stream message CRC mismatch (expected {expected:#010x}, computed {actual:#010x})")]
    MessageCrc { expected: u32, actual: u32 },
    #[error("event-stream headers length {headers} does not fit a frame of {total} bytes")]
    HeadersTooLong { headers: u32, total: u32 },
    #[error("malformed event-stream header: {0}")]
    BadHeader(&'static str),
    #[error("event stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
}

/// Incremental frame decoder with bounded buffering: it holds at most one partial frame, whose
/// declared length is checked against the cap as soon as its 12-byte prelude has arrived.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_frame_len: usize,
    /// A failure seen after some frames of the same `push` were returned; reported next call.
    failed: Option<FrameError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A decoder refusing frames that declare more than `max` bytes (at least 16).
    pub fn with_max_frame_len(max: usize) -> Self {
        Self { buf: BytesMut::new(), max_frame_len: max.max(MIN_FRAME_LEN), failed: None }
    }

    /// Feeds bytes; returns the frames they complete. If the bytes hold good frames and then a
    /// bad one, the good frames are returned and the error comes from the next `push`/`finish`,
    /// so no decoded content is lost and no error is missed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(chunk);
        let mut frames = Vec::new();
        loop {
            match self.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return Ok(frames),
                Err(e) => {
                    self.failed = Some(e.clone());
                    self.buf.clear();
                    return if frames.is_empty() { Err(e) } else { Ok(frames) };
                }
            }
        }
    }

    /// The upstream closed: an error if it failed or stopped inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated { buffered: self.buf.len() })
        }
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let (total, headers_len) = check_prelude(&self.buf[..PRELUDE_LEN], self.max_frame_len)?;
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut raw = self.buf.split_to(total).freeze();
        check_message_crc(&raw)?;
        raw.truncate(total - CRC_LEN);
        raw.advance(PRELUDE_LEN);
        let payload = raw.split_off(headers_len);
        Ok(Some(Frame { headers: parse_headers(raw)?, payload }))
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Validates the prelude; returns (total length, headers length).
fn check_prelude(prelude: &[u8], max: usize) -> Result<(usize, usize), FrameError> {
    let expected = be_u32(&prelude[8..12]);
    let actual = crc32fast::hash(&prelude[..8]);
    if expected != actual {
        return Err(FrameError::PreludeCrc { expected, actual });
    }
    let total = be_u32(&prelude[0..4]);
    let headers = be_u32(&prelude[4..8]);
    let len = total as usize;
    if len < MIN_FRAME_LEN {
        return Err(FrameError::TooShort(total));
    }
    if len > max {
        return Err(FrameError::TooLong { len: total, max });
    }
    if headers as usize > len - MIN_FRAME_LEN {
        return Err(FrameError::HeadersTooLong { headers, total });
    }
    Ok((len, headers as usize))
}

fn check_message_crc(raw: &[u8]) -> Result<(), FrameError> {
    let (body, crc) = raw.split_at(raw.len() - CRC_LEN);
    let expected = be_u32(crc);
    let actual = crc32fast::hash(body);
    if expected == actual {
        Ok(())
    } else {
        Err(FrameError::MessageCrc { expected, actual })
    }
}

fn take(b: &mut Bytes, n: usize) -> Result<Bytes, FrameError> {
    if b.len() < n {
        return Err(FrameError::BadHeader("header runs past the headers section"));
    }
    Ok(b.split_to(n))
}

fn take_array<const N: usize>(b: &mut Bytes) -> Result<[u8; N], FrameError> {
    let bytes = take(b, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes);
    Ok(out)
}

fn parse_headers(mut b: Bytes) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let mut headers = Vec::new();
    while !b.is_empty() {
        let [name_len] = take_array::<1>(&mut b)?;
        let name = take(&mut b, usize::from(name_len))?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| FrameError::BadHeader("name is not UTF-8"))?;
        let [kind] = take_array::<1>(&mut b)?;
        headers.push((name, parse_value(kind, &mut b)?));
    }
    Ok(headers)
}

fn parse_value(kind: u8, b: &mut Bytes) -> Result<HeaderValue, FrameError> {
    Ok(match kind {
        0 => HeaderValue::Bool(true),
        1 => HeaderValue::Bool(false),
        2 => HeaderValue::Byte(i8::from_be_bytes(take_array(b)?)),
        3 => HeaderValue::Short(i16::from_be_bytes(take_array(b)?)),
        4 => HeaderValue::Int(i32::from_be_bytes(take_array(b)?)),
        5 => HeaderValue::Long(i64::from_be_bytes(take_array(b)?)),
        6 => HeaderValue::Bytes(take_sized(b)?),
        7 => {
            let s = take_sized(b)?;
            HeaderValue::String(String::from_utf8(s.to_vec()).map_err(|_| FrameError::BadHeader("value is not UTF-8"))?)
        }
        8 => HeaderValue::Timestamp(i64::from_be_bytes(take_array(b)?)),
        9 => HeaderValue::Uuid(take_array(b)?),
        _ => return Err(FrameError::BadHeader("unknown value type")),
    })
}

fn take_sized(b: &mut Bytes) -> Result<Bytes, FrameError> {
    let len = u16::from_be_bytes(take_array(b)?);
    take(b, usize::from(len))
}

/// Encodes a frame with string headers (tests, benches, mocks).
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let headers: Vec<(String, HeaderValue)> =
        headers.iter().map(|(n, v)| (n.to_string(), HeaderValue::String(v.to_string()))).collect();
    encode(&headers, payload)
}

/// Encodes a frame with typed headers. Names over 255 bytes and values over 65,535 bytes are
/// cut to fit (this is a test and mock helper, never fed client input).
pub fn encode(headers: &[(String, HeaderValue)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(usize::from(u8::MAX))];
        h.push(name.len() as u8);
        h.extend_from_slice(name);
        encode_value(value, &mut h);
    }
    let total = PRELUDE_LEN + h.len() + payload.len() + CRC_LEN;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn encode_value(v: &HeaderValue, out: &mut Vec<u8>) {
    match v {
        HeaderValue::Bool(true) => out.push(0),
        HeaderValue::Bool(false) => out.push(1),
        HeaderValue::Byte(x) => tagged(out, 2, &x.to_be_bytes()),
        HeaderValue::Short(x) => tagged(out, 3, &x.to_be_bytes()),
        HeaderValue::Int(x) => tagged(out, 4, &x.to_be_bytes()),
        HeaderValue::Long(x) => tagged(out, 5, &x.to_be_bytes()),
        HeaderValue::Bytes(b) => sized(out, 6, b),
        HeaderValue::String(s) => sized(out, 7, s.as_bytes()),
        HeaderValue::Timestamp(x) => tagged(out, 8, &x.to_be_bytes()),
        HeaderValue::Uuid(u) => tagged(out, 9, u),
    }
}

fn tagged(out: &mut Vec<u8>, kind: u8, bytes: &[u8]) {
    out.push(kind);
    out.extend_from_slice(bytes);
}

fn sized(out: &mut Vec<u8>, kind: u8, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(usize::from(u16::MAX))];
    out.push(kind);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn event(kind: &str, payload: &str) -> Vec<u8> {
        encode_frame(
            &[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
            payload.as_bytes(),
        )
    }

    fn crcs(frame: &[u8]) -> (u32, u32, u32, u32) {
        let n = frame.len();
        (be_u32(&frame[0..4]), be_u32(&frame[4..8]), be_u32(&frame[8..12]), be_u32(&frame[n - 4..]))
    }

    /// A frame with a correct prelude CRC declaring `total` bytes.
    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = total.to_be_bytes().to_vec();
        p.extend_from_slice(&headers.to_be_bytes());
        let crc = crc32fast::hash(&p);
        p.extend_from_slice(&crc.to_be_bytes());
        p
    }

    #[test]
    fn spec_hi_frame_bytes_and_round_trip() {
        let f = event("assistantResponseEvent", r#"{"content":"Hi"}"#);
        assert_eq!(f.len(), 124);
        assert_eq!(crcs(&f), (124, 92, 0x3bdd_cf78, 0xb02b_abdc));
        assert_eq!(&f[12..24], b"\x0b:event-type");
        let frames = Decoder::new().push(&f).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].event_type(), Some("assistantResponseEvent"));
        assert_eq!(frames[0].message_type(), Some("event"));
        assert_eq!(frames[0].header_str(":content-type"), Some("application/json"));
        assert_eq!(frames[0].exception_type(), None);
        assert_eq!(&frames[0].payload[..], br#"{"content":"Hi"}"#);
    }

    #[test]
    fn spec_context_usage_and_tool_stop_frames() {
        let f = event("contextUsageEvent", r#"{"contextUsagePercentage":1.25}"#);
        assert_eq!(crcs(&f), (134, 87, 0xae8b_5e0c, 0x78a7_22ec));
        let f = event("toolUseEvent", r#"{"name":"get_weather","toolUseId":"tooluse_abc123","stop":true}"#);
        assert_eq!(crcs(&f), (161, 82, 0xad00_5997, 0x8eae_221e));
    }

    #[test]
    fn all_header_types_round_trip() {
        let headers = vec![
            ("t".to_string(), HeaderValue::Bool(true)),
            ("f".to_string(), HeaderValue::Bool(false)),
            ("b".to_string(), HeaderValue::Byte(-3)),
            ("s".to_string(), HeaderValue::Short(-300)),
            ("i".to_string(), HeaderValue::Int(70_000)),
            ("l".to_string(), HeaderValue::Long(-1 << 40)),
            ("y".to_string(), HeaderValue::Bytes(Bytes::from_static(b"\x00\xff"))),
            ("str".to_string(), HeaderValue::String("é".into())),
            ("ts".to_string(), HeaderValue::Timestamp(1_767_225_600_000)),
            ("u".to_string(), HeaderValue::Uuid([7; 16])),
        ];
        let frames = Decoder::new().push(&encode(&headers, b"x")).unwrap();
        assert_eq!(frames, vec![Frame { headers, payload: Bytes::from_static(b"x") }]);
        assert_eq!(frames[0].header_str("i"), None, "non-string headers are not strings");
    }

    #[test]
    fn byte_by_byte_keeps_partial_frames() {
        let stream = [event("a", "1"), event("b", "22")].concat();
        let mut d = Decoder::new();
        let mut frames = Vec::new();
        for b in &stream {
            frames.extend(d.push(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].event_type(), Some("b"));
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn bad_prelude_crc() {
        let mut f = event("a", "{}");
        f[9] ^= 1;
        assert!(matches!(Decoder::new().push(&f), Err(FrameError::PreludeCrc { .. })));
    }

    #[test]
    fn bad_message_crc() {
        let mut f = event("a", "{}");
        let n = f.len();
        f[n - 6] ^= 1;
        assert!(matches!(Decoder::new().push(&f), Err(FrameError::MessageCrc { .. })));
    }

    #[test]
    fn declared_lengths_are_bounded() {
        assert_eq!(Decoder::new().push(&prelude(15, 0)), Err(FrameError::TooShort(15)));
        let mut d = Decoder::with_max_frame_len(1024);
        assert_eq!(d.push(&prelude(1025, 0)), Err(FrameError::TooLong { len: 1025, max: 1024 }));
        assert!(matches!(Decoder::new().push(&prelude(u32::MAX, 0)), Err(FrameError::TooLong { .. })));
        assert_eq!(Decoder::new().push(&prelude(20, 5)), Err(FrameError::HeadersTooLong { headers: 5, total: 20 }));
    }

    #[test]
    fn malformed_headers() {
        for (headers, why) in [
            (&b"\x05ab"[..], "header runs past the headers section"),
            (b"\x01a\x0a", "unknown value type"),
            (b"\x01a\x07\x00\x09xy", "header runs past the headers section"),
            (b"\x01\xff\x00", "name is not UTF-8"),
            (b"\x01a\x07\x00\x01\xff", "value is not UTF-8"),
        ] {
            let mut f = prelude((PRELUDE_LEN + headers.len() + CRC_LEN) as u32, headers.len() as u32);
            f.extend_from_slice(headers);
            let crc = crc32fast::hash(&f);
            f.extend_from_slice(&crc.to_be_bytes());
            assert_eq!(Decoder::new().push(&f), Err(FrameError::BadHeader(why)));
        }
    }

    #[test]
    fn truncated_frame_is_reported_by_finish() {
        let f = event("a", "{}");
        let mut d = Decoder::new();
        assert_eq!(d.push(&f[..f.len() - 1]), Ok(vec![]));
        assert_eq!(d.finish(), Err(FrameError::Truncated { buffered: f.len() - 1 }));
        let mut d = Decoder::new();
        assert_eq!(d.push(&f[..5]), Ok(vec![]));
        assert_eq!(d.finish(), Err(FrameError::Truncated { buffered: 5 }));
    }

    #[test]
    fn good_frames_before_a_bad_one_are_kept_and_the_error_follows() {
        let mut bad = event("b", "{}");
        bad[10] ^= 1;
        let mut d = Decoder::new();
        let frames = d.push(&[event("a", "{}"), bad].concat()).unwrap();
        assert_eq!(frames.len(), 1);
        assert!(matches!(d.finish(), Err(FrameError::PreludeCrc { .. })));
        assert!(matches!(d.push(&event("c", "{}")), Err(FrameError::PreludeCrc { .. })));
    }

    fn stream_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(("[a-zA-Z]{1,20}", prop::collection::vec(any::<u8>(), 0..200)), 1..6)
            .prop_map(|v| v.into_iter().map(|(t, p)| encode_frame(&[(":event-type", &t)], &p)).collect())
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same(frames in stream_strategy(), cuts in prop::collection::vec(any::<usize>(), 0..10)) {
            let stream = frames.concat();
            let whole = Decoder::new().push(&stream).unwrap();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([stream.len()]) {
                got.extend(d.push(&stream[at..c]).unwrap());
                at = c;
            }
            prop_assert_eq!(d.finish(), Ok(()));
            prop_assert_eq!(got, whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut d = Decoder::with_max_frame_len(4096);
            for c in &chunks {
                let _ = d.push(c);
            }
            let _ = d.finish();
            prop_assert!(d.buffered() <= 4096 + 64);
        }
    }
}
