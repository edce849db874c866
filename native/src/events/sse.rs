//! An incremental `text/event-stream` parser, following the WHATWG HTML
//! standard's "interpreting an event stream" (section 9.2.6).
//!
//! It takes the body in whatever chunks the network gives and keeps just
//! enough state between them: the unfinished line, whether a CR was the
//! last byte (so that the LF of a CRLF split across chunks is not read as
//! a second, empty line), and the event being assembled. An event ended by
//! a lone CR is dispatched at once, without waiting for the next byte.
//!
//! UTF-8 is decoded per line: line breaks and the colon are ASCII, which
//! never occurs inside a multi-byte sequence, so decoding each line on its
//! own gives the same characters (invalid bytes become U+FFFD, maximal
//! subparts as the Encoding standard says) as decoding the whole stream.
//!
//! ```text
//! let mut p = Parser::new(1024);
//! let mut out = std::collections::VecDeque::new();
//! p.feed(b"event: greeting\ndata: hel", &mut out).unwrap();
//! p.feed(b"lo\n\n", &mut out).unwrap();
//! assert_eq!(out[0].data, b"hello");
//! assert_eq!(out[0].kind(), b"greeting");
//! ```

use std::collections::VecDeque;

use bytes::Bytes;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Event data above this size (or `max_line`, when larger) ends the
/// stream: without it a server could send `data:` lines for ever.
pub const MAX_EVENT_DATA: usize = 16 * 1024 * 1024;

/// At most this much room is made ahead for an event's data.
const NEXT_DATA_CAPACITY: usize = 4096;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event` field, empty for the default type `message`.
    kind: Vec<u8>,
    /// The `data` lines joined with LF (valid UTF-8).
    pub data: Vec<u8>,
    /// The last event ID when the event was dispatched; `None` when empty.
    pub id: Option<Bytes>,
}

impl Event {
    /// The event type: the `event` field, or `message`.
    pub fn kind(&self) -> &[u8] {
        if self.kind.is_empty() {
            b"message"
        } else {
            &self.kind
        }
    }

    /// Whether the `event` field set a type (else it is `message`).
    pub fn has_own_kind(&self) -> bool {
        !self.kind.is_empty()
    }
}

/// Why the stream cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A line grew past `max_line` bytes.
    Line,
    /// An event's data grew past [`MAX_EVENT_DATA`] (or `max_line`).
    Event,
}

/// The parser of one event source, across its connections.
#[derive(Debug)]
pub struct Parser {
    max_line: usize,
    /// Bytes of a line whose end has not arrived yet.
    line: Vec<u8>,
    /// The last byte seen was a CR: an LF right after it is not a line.
    skip_lf: bool,
    /// No line of this connection was processed yet (a BOM may lead).
    first_line: bool,
    data: Vec<u8>,
    kind: Vec<u8>,
    /// The last event ID buffer (set by `id` lines).
    id_buffer: Vec<u8>,
    /// The last event ID string (set when an event is dispatched).
    last_id: Bytes,
    /// The reconnection time the server asked for, in ms.
    retry: Option<u64>,
}

impl Parser {
    pub fn new(max_line: usize) -> Self {
        Parser {
            max_line,
            line: Vec::new(),
            skip_lf: false,
            first_line: true,
            data: Vec::new(),
            kind: Vec::new(),
            id_buffer: Vec::new(),
            last_id: Bytes::new(),
            retry: None,
        }
    }

    /// A new connection: whatever was partial is dropped, and the last
    /// event ID carries over (as browsers keep it across reconnects).
    pub fn restart(&mut self) {
        self.line.clear();
        self.skip_lf = false;
        self.first_line = true;
        self.data.clear();
        self.kind.clear();
        self.id_buffer.clear();
        self.id_buffer.extend_from_slice(&self.last_id);
    }

    /// The last event ID string: what `Last-Event-ID` carries on reconnect.
    pub fn last_event_id(&self) -> &Bytes {
        &self.last_id
    }

    /// The reconnection time set by the last valid `retry` field, if any.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Parses the next chunk of the body, appending dispatched events.
    pub fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<Event>) -> Result<(), Limit> {
        let mut rest = chunk;
        if self.skip_lf && !rest.is_empty() {
            self.skip_lf = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
            if self.line.is_empty() {
                self.check_line(i)?;
                self.line_done(&rest[..i], out)?;
            } else {
                self.check_line(self.line.len() + i)?;
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..i]);
                let done = self.line_done(&line, out);
                line.clear();
                self.line = line;
                done?;
            }
            let cr = rest[i] == b'\r';
            rest = &rest[i + 1..];
            if cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        self.check_line(self.line.len() + rest.len())?;
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn check_line(&self, len: usize) -> Result<(), Limit> {
        if len > self.max_line {
            Err(Limit::Line)
        } else {
            Ok(())
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut VecDeque<Event>) -> Result<(), Limit> {
        let mut line = line;
        if self.first_line {
            self.first_line = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                push_utf8(&mut self.data, value);
                self.data.push(b'\n');
                if self.data.len() > MAX_EVENT_DATA.max(self.max_line) {
                    return Err(Limit::Event);
                }
            }
            b"event" => {
                self.kind.clear();
                push_utf8(&mut self.kind, value);
            }
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                push_utf8(&mut self.id_buffer, value);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = Some(value.iter().fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                }));
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut VecDeque<Event>) {
        // Lengths first: most streams have no IDs, and comparing bytes is a call.
        if self.last_id.len() != self.id_buffer.len()
            || (!self.id_buffer.is_empty() && self.last_id != self.id_buffer[..])
        {
            self.last_id = Bytes::copy_from_slice(&self.id_buffer);
        }
        if self.data.is_empty() {
            self.kind.clear();
            return;
        }
        if self.data.last() == Some(&b'\n') {
            self.data.pop();
        }
        // The next event's data is likely as long: one allocation for it
        // instead of growing. Sized by this event's length (and its LF),
        // not its buffer's capacity, so that one large event does not
        // leave every later one, queued by the thousand, holding 4 KB.
        let next = Vec::with_capacity((self.data.len() + 1).min(NEXT_DATA_CAPACITY));
        out.push_back(Event {
            kind: std::mem::take(&mut self.kind),
            data: std::mem::replace(&mut self.data, next),
            id: (!self.last_id.is_empty()).then(|| self.last_id.clone()),
        });
    }
}

/// Appends bytes as UTF-8, with U+FFFD for what is not.
fn push_utf8(buf: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(_) => buf.extend_from_slice(bytes),
        Err(_) => buf.extend_from_slice(String::from_utf8_lossy(bytes).as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (type, data, id) of each event.
    type Seen = Vec<(String, String, Option<String>)>;

    fn parse_chunks(chunks: &[&[u8]]) -> Seen {
        let mut p = Parser::new(1 << 20);
        let mut out = VecDeque::new();
        for c in chunks {
            p.feed(c, &mut out).expect("within limits");
        }
        out.into_iter().map(seen).collect()
    }

    fn seen(e: Event) -> (String, String, Option<String>) {
        (
            String::from_utf8(e.kind().to_vec()).expect("utf8"),
            String::from_utf8(e.data).expect("utf8"),
            e.id.map(|i| String::from_utf8(i.to_vec()).expect("utf8")),
        )
    }

    fn parse(s: &[u8]) -> Seen {
        parse_chunks(&[s])
    }

    fn ev(t: &str, d: &str, id: Option<&str>) -> (String, String, Option<String>) {
        (t.into(), d.into(), id.map(Into::into))
    }

    #[test]
    fn a_large_event_does_not_make_later_ones_hold_large_buffers() {
        let mut p = Parser::new(1 << 20);
        let mut out = VecDeque::new();
        let big = format!("data: {}\n\n", "x".repeat(100_000));
        p.feed(big.as_bytes(), &mut out).expect("within limits");
        for _ in 0..3 {
            p.feed(b"data: small\n\n", &mut out).expect("within limits");
        }
        assert_eq!(out.len(), 4);
        assert_eq!(out[3].data, b"small");
        assert!(out[3].data.capacity() < 64, "{}", out[3].data.capacity());
    }

    #[test]
    fn data_lines_are_joined_with_lf_and_the_last_removed() {
        assert_eq!(
            parse(b"data: a\ndata: b\ndata\n\n"),
            vec![ev("message", "a\nb\n", None)]
        );
    }

    #[test]
    fn cr_lf_and_crlf_all_end_lines() {
        assert_eq!(
            parse(b"data: a\r\rdata: b\n\ndata: c\r\n\r\n"),
            vec![
                ev("message", "a", None),
                ev("message", "b", None),
                ev("message", "c", None)
            ]
        );
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end() {
        assert_eq!(
            parse_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
            vec![ev("message", "a\nb", None)]
        );
    }

    #[test]
    fn a_lone_cr_dispatches_without_the_next_byte() {
        let mut p = Parser::new(100);
        let mut out = VecDeque::new();
        p.feed(b"data: x\r\r", &mut out).expect("ok");
        assert_eq!(out.len(), 1);
        // The LF that may follow is swallowed, not read as a blank line.
        p.feed(b"\ndata: y\n\n", &mut out).expect("ok");
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn one_leading_bom_is_dropped() {
        assert_eq!(
            parse(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n"),
            vec![ev("message", "a", None)]
        );
        assert_eq!(
            parse_chunks(&[b"\xEF", b"\xBB", b"\xBF\xEF\xBB\xBFdata: a\n\n"]),
            vec![]
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(
            parse(b"data: a\xFFb\xE2\x82\n\n"),
            vec![ev("message", "a\u{FFFD}b\u{FFFD}", None)]
        );
    }

    #[test]
    fn event_sets_the_type_and_it_resets_after_dispatch() {
        assert_eq!(
            parse(b"event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"),
            vec![
                ev("add", "1", None),
                ev("message", "2", None),
                ev("message", "3", None)
            ]
        );
    }

    #[test]
    fn no_data_no_event_but_a_bare_data_line_is_an_empty_one() {
        assert_eq!(
            parse(b"event: x\n\nid: 1\n\ndata\n\n"),
            vec![ev("message", "", Some("1"))]
        );
    }

    #[test]
    fn id_persists_resets_when_empty_and_ignores_nul() {
        assert_eq!(
            parse(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\0\ndata: c\n\nid\ndata: d\n\n"),
            vec![
                ev("message", "a", Some("1")),
                ev("message", "b", Some("1")),
                ev("message", "c", Some("1")),
                ev("message", "d", None)
            ]
        );
    }

    #[test]
    fn the_last_event_id_is_set_at_dispatch_only() {
        let mut p = Parser::new(100);
        let mut out = VecDeque::new();
        p.feed(b"id: 1\ndata: a\n\nid: 2\ndata: partial\n", &mut out)
            .expect("ok");
        assert_eq!(p.last_event_id().as_ref(), b"1");
        p.restart();
        p.feed(b"data: b\n\n", &mut out).expect("ok");
        assert_eq!(out[1].id.as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn retry_only_when_all_digits() {
        let mut p = Parser::new(100);
        let mut out = VecDeque::new();
        p.feed(b"retry: 12x\nretry: -5\nretry:\n", &mut out)
            .expect("ok");
        assert_eq!(p.retry(), None);
        p.feed(b"retry: 250\nretry: 1.5\n", &mut out).expect("ok");
        assert_eq!(p.retry(), Some(250));
        p.feed(b"retry: 99999999999999999999999\n", &mut out)
            .expect("ok");
        assert_eq!(p.retry(), Some(u64::MAX));
    }

    #[test]
    fn comments_unknown_fields_and_colon_rules() {
        assert_eq!(
            parse(b": comment\nfoo: bar\ndata:no space\ndata:  two\ndata\n\n"),
            vec![ev("message", "no space\n two\n", None)]
        );
        // A field name without a colon is the whole line.
        assert_eq!(
            parse(b"data: x\ndata y\n\n"),
            vec![ev("message", "x", None)]
        );
    }

    #[test]
    fn a_partial_event_at_the_end_is_not_dispatched() {
        assert_eq!(
            parse(b"data: a\n\ndata: b\n"),
            vec![ev("message", "a", None)]
        );
    }

    #[test]
    fn a_line_over_max_line_fails_before_its_end_arrives() {
        let mut p = Parser::new(8);
        let mut out = VecDeque::new();
        p.feed(b"data: 12", &mut out).expect("at the limit");
        assert_eq!(p.feed(b"3", &mut out), Err(Limit::Line));
        let mut p = Parser::new(8);
        assert_eq!(p.feed(b"data: 123\n", &mut out), Err(Limit::Line));
    }

    #[test]
    fn endless_data_lines_hit_the_event_limit() {
        let mut p = Parser::new(2000);
        let mut out = VecDeque::new();
        let mut line = b"data: ".to_vec();
        line.extend_from_slice(&[b'x'; 1000]);
        line.push(b'\n');
        let chunk = line.repeat(64);
        let mut r = Ok(());
        for _ in 0..=(MAX_EVENT_DATA / chunk.len() + 1) {
            r = p.feed(&chunk, &mut out);
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(Limit::Event));
        assert!(out.is_empty());
    }

    const STREAM: &[u8] = b"\xEF\xBB\xBF: hi\r\nretry: 10\nevent: a\r\ndata: 1\r\rid: 7\ndata:x\xFF\n\ndata\r\n\r\nfoo\ndata: \xE2\x82\xAC\r\nid\n\n: end\r";

    #[test]
    fn every_split_gives_the_same_events() {
        let whole = parse(STREAM);
        assert_eq!(whole.len(), 4);
        for i in 0..=STREAM.len() {
            assert_eq!(
                parse_chunks(&[&STREAM[..i], &STREAM[i..]]),
                whole,
                "split {i}"
            );
            for j in i..=STREAM.len() {
                let three = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
                assert_eq!(parse_chunks(&three), whole, "splits {i} {j}");
            }
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), whole);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // A small deterministic generator: every byte value, every split.
        let mut x: u32 = 12345;
        let alphabet = b"\r\n:data idevntry\0\xFF\xEF\xBB\xBF9 ";
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..64 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                buf.push(alphabet[(x >> 16) as usize % alphabet.len()]);
            }
            let split = (x as usize >> 3) % buf.len();
            let whole = parse(&buf);
            assert_eq!(parse_chunks(&[&buf[..split], &buf[split..]]), whole);
        }
    }
}
