//! `events::sse::Parser` against the WHATWG "interpreting an event
//! stream" algorithm, written here the plain way: decode the whole stream
//! as UTF-8 first, split it into lines, run the fields.

use std::collections::VecDeque;
use std::time::Instant;

use super::{cases, raw_lines, Rng};
use crate::events::sse::{Limit, Parser, MAX_EVENT_DATA};

/// (type, data, id) of an event.
type Seen = (String, String, Option<String>);

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Seen>,
    last_id: String,
    retry: Option<u64>,
}

/// The reference: what a browser would dispatch for `input`, a whole
/// connection, before its end.
fn model(input: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = Vec::new();
    let mut rest = text;
    // Only lines that are ended count; what follows the last end is not
    // a line yet.
    while let Some(i) = rest.find(['\r', '\n']) {
        lines.push(&rest[..i]);
        rest = if rest[i..].starts_with("\r\n") {
            &rest[i + 2..]
        } else {
            &rest[i + 1..]
        };
    }
    let (mut data, mut kind, mut id) = (String::new(), String::new(), String::new());
    let mut out = Outcome {
        events: Vec::new(),
        last_id: String::new(),
        retry: None,
    };
    for line in lines {
        if line.is_empty() {
            out.last_id = id.clone();
            if data.is_empty() {
                kind.clear();
                continue;
            }
            data.pop(); // the LF after the last data line
            let k = if kind.is_empty() {
                "message".into()
            } else {
                std::mem::take(&mut kind)
            };
            let i = (!out.last_id.is_empty()).then(|| out.last_id.clone());
            out.events.push((k, std::mem::take(&mut data), i));
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "event" => kind = value.into(),
            "id" if !value.contains('\0') => id = value.into(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                out.retry = Some(value.bytes().fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                }));
            }
            _ => {}
        }
    }
    out
}

/// The parser's outcome for `chunks`, and whether it hit a limit.
fn run(chunks: &[&[u8]], max_line: usize) -> (Outcome, Result<(), Limit>) {
    let mut p = Parser::new(max_line);
    let mut out = VecDeque::new();
    let mut result = Ok(());
    for c in chunks {
        result = p.feed(c, &mut out);
        if result.is_err() {
            break;
        }
    }
    let events = out
        .into_iter()
        .map(|e| {
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("events are UTF-8");
            (text(e.kind()), text(&e.data), e.id.as_deref().map(text))
        })
        .collect();
    let last_id = String::from_utf8(p.last_event_id().to_vec()).expect("the id is UTF-8");
    let outcome = Outcome {
        events,
        last_id,
        retry: p.retry(),
    };
    (outcome, result)
}

/// Bytes that make event streams: field names, colons, every line end,
/// a BOM's bytes, NUL, digits, invalid UTF-8.
const ALPHABET: &[u8] = b"\r\n\r\n:: data:event:id:retry:x9\x00\xef\xbb\xbf\xff\xc3\xa9\xe2\x82";

fn stream(rng: &mut Rng) -> Vec<u8> {
    let len = *rng.pick(&[0, 1, 8, 64, 300, 2000]);
    let mut s = rng.bytes(len, ALPHABET);
    // Whole field lines now and then, so that events are common.
    for _ in 0..rng.below(8) {
        let at = rng.below(s.len() + 1);
        let lines: &[&[u8]] = &[
            b"data: x\n\n",
            b"\ndata:\xe2\x82\xac\r\n",
            b"id: 1\r",
            b"event: e\n",
            b"retry: 99\n",
            b"\xef\xbb\xbfdata\n\n",
        ];
        let line = lines[rng.below(lines.len())];
        s.splice(at..at, line.iter().copied());
    }
    s
}

#[test]
fn sse_events_equal_the_reference_however_the_stream_is_cut() {
    let mut rng = Rng::new(1);
    for case in 0..cases(3000) {
        let input = stream(&mut rng);
        let want = model(&input);
        let (whole, r) = run(&[&input], 1 << 20);
        assert_eq!(r, Ok(()), "case {case}");
        assert_eq!(whole, want, "case {case}: {input:?}");
        let chunks = rng.chunks(&input, 6);
        let (cut, r) = run(&chunks, 1 << 20);
        assert_eq!(r, Ok(()), "case {case}");
        assert_eq!(cut, want, "case {case}: {chunks:?}");
    }
    // Byte by byte too, on a few.
    for case in 0..cases(100) {
        let input = stream(&mut rng);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            run(&bytes, 1 << 20).0,
            model(&input),
            "bytewise case {case}"
        );
    }
}

#[test]
fn sse_a_long_line_stops_the_stream_after_the_events_before_it() {
    let mut rng = Rng::new(2);
    for case in 0..cases(3000) {
        let input = stream(&mut rng);
        let max_line = *rng.pick(&[0, 1, 5, 16, 100]);
        let long = raw_lines(&input)
            .into_iter()
            .find(|(_, l)| l.len() > max_line);
        let chunks = rng.chunks(&input, 4);
        let (got, r) = run(&chunks, max_line);
        match long {
            Some((start, _)) => {
                assert_eq!(r, Err(Limit::Line), "case {case}: {input:?}");
                // Every event before the long line, and nothing after.
                assert_eq!(got.events, model(&input[..start]).events, "case {case}");
            }
            None => {
                assert_eq!(r, Ok(()), "case {case}");
                assert_eq!(got, model(&input), "case {case}");
            }
        }
    }
}

#[test]
fn sse_hostile_streams_end_in_bounded_time() {
    let t = Instant::now();
    // A line that never ends: refused as soon as it is too long.
    let mut p = Parser::new(1 << 20);
    let mut out = VecDeque::new();
    let chunk = vec![b'x'; 64 * 1024];
    let fed = (0..64)
        .take_while(|_| p.feed(&chunk, &mut out).is_ok())
        .count();
    assert_eq!(fed, 16);
    // Lone CRs, NULs and invalid bytes in data lines, 2 MB of them.
    let mut p = Parser::new(1 << 20);
    let crs = b"data:\x00\xff\r\r".repeat(1 << 18);
    let mut out = VecDeque::new();
    assert_eq!(p.feed(&crs, &mut out), Ok(()));
    assert_eq!(out.len(), 1 << 18);
    assert_eq!(out[0].data, "\0\u{fffd}".as_bytes());
    // Data lines that never dispatch: the event limit, not the memory.
    let mut p = Parser::new(1 << 20);
    let mut line = b"data:".to_vec();
    line.extend_from_slice(&[b'x'; 4096]);
    line.push(b'\n');
    let lines = line.repeat(MAX_EVENT_DATA / 4096 + 1);
    let mut out = VecDeque::new();
    assert_eq!(p.feed(&lines, &mut out), Err(Limit::Event));
    assert!(out.is_empty());
    // Ids and comments only, 8 MB of them.
    let mut p = Parser::new(1 << 20);
    let ids = b"id: \xff\xfe\n:\n".repeat(1 << 20);
    let mut out = VecDeque::new();
    assert_eq!(p.feed(&ids, &mut out), Ok(()));
    assert!(out.is_empty());
    let elapsed = t.elapsed();
    // Linear work is well under a second here; quadratic would be hours.
    assert!(elapsed.as_secs() < 20, "{elapsed:?}");
}
