//! `events::lines::Splitter` (`format => lines | ndjson`) against the
//! plain definition: split the whole body at LF, drop one CR before each
//! LF, keep an unterminated last line, and (NDJSON) drop blank lines.

use std::collections::VecDeque;
use std::time::Instant;

use super::{cases, Rng};
use crate::events::lines::{Splitter, TooLong};

fn model(body: &[u8], skip_blank: bool) -> Vec<Vec<u8>> {
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !(skip_blank && l.iter().all(u8::is_ascii_whitespace)))
        .map(<[u8]>::to_vec)
        .collect()
}

/// The lines out of `chunks`, and whether one was too long.
fn run(chunks: &[&[u8]], max_line: usize, skip_blank: bool) -> (Vec<Vec<u8>>, Result<(), TooLong>) {
    let mut s = Splitter::new(max_line, skip_blank);
    let mut out = VecDeque::new();
    for c in chunks {
        if let Err(e) = s.feed(c, &mut out) {
            return (out.into(), Err(e));
        }
    }
    s.finish(&mut out);
    (out.into(), Ok(()))
}

const ALPHABET: &[u8] = b"\n\n\r\r  \t{}[]\"x1\x00\xff";

#[test]
fn lines_equal_the_reference_however_the_body_is_cut() {
    let mut rng = Rng::new(3);
    for case in 0..cases(4000) {
        let len = *rng.pick(&[0, 1, 2, 10, 100, 1000]);
        let body = rng.bytes(len, ALPHABET);
        let skip_blank = rng.below(2) == 0;
        let want = model(&body, skip_blank);
        let chunks = rng.chunks(&body, 6);
        assert_eq!(
            run(&[&body], 1 << 20, skip_blank),
            (want.clone(), Ok(())),
            "case {case}"
        );
        assert_eq!(
            run(&chunks, 1 << 20, skip_blank),
            (want, Ok(())),
            "case {case}: {chunks:?}"
        );
    }
}

#[test]
fn lines_a_long_line_is_refused_after_the_lines_before_it() {
    let mut rng = Rng::new(4);
    for case in 0..cases(4000) {
        let len = *rng.pick(&[1, 10, 100, 1000]);
        let body = rng.bytes(len, ALPHABET);
        let max_line = *rng.pick(&[0, 1, 3, 20]);
        let skip_blank = rng.below(2) == 0;
        // The lines before the first long one, counted before blanks are
        // dropped (a long blank line is still too long).
        let all = model(&body, false);
        let first_long = all.iter().position(|l| l.len() > max_line);
        let chunks = rng.chunks(&body, 4);
        let (got, r) = run(&chunks, max_line, skip_blank);
        match first_long {
            Some(n) => {
                assert_eq!(r, Err(TooLong), "case {case}: {body:?}");
                let before: Vec<Vec<u8>> = all[..n]
                    .iter()
                    .filter(|l| !(skip_blank && l.iter().all(u8::is_ascii_whitespace)))
                    .cloned()
                    .collect();
                assert_eq!(got, before, "case {case}: {chunks:?}");
            }
            None => assert_eq!((got, r), (model(&body, skip_blank), Ok(())), "case {case}"),
        }
    }
}

#[test]
fn lines_hostile_bodies_end_in_bounded_time() {
    let t = Instant::now();
    // A line that never ends fails once it passes the limit.
    let mut s = Splitter::new(1 << 20, false);
    let mut out = VecDeque::new();
    let chunk = vec![b'x'; 64 * 1024];
    let fed = (0..64)
        .take_while(|_| s.feed(&chunk, &mut out).is_ok())
        .count();
    assert_eq!(fed, 16);
    // CRs that never end a line (a CR is only dropped before an LF).
    let mut s = Splitter::new(1 << 20, false);
    let mut out = VecDeque::new();
    assert_eq!(s.feed(&b"\r".repeat(1 << 20), &mut out), Ok(()));
    assert_eq!(s.feed(b"\r", &mut out), Ok(()), "a last CR may be a CRLF's");
    assert_eq!(s.feed(b"x", &mut out), Err(TooLong));
    // A quarter of a million blank lines and as many others, kept or skipped.
    for skip_blank in [false, true] {
        let mut s = Splitter::new(16, skip_blank);
        let mut out = VecDeque::new();
        assert_eq!(
            s.feed(&b"\r\n \x00\n".repeat(1 << 18)[..], &mut out),
            Ok(())
        );
        assert_eq!(out.len(), if skip_blank { 1 << 18 } else { 2 << 18 });
    }
    let elapsed = t.elapsed();
    assert!(elapsed.as_secs() < 20, "{elapsed:?}");
}
