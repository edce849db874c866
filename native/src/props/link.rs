//! `link::Links` (RFC 8288 `Link` headers) against headers built from
//! known link-values, and fed random and very long hostile bytes.

use std::time::Instant;

use super::{cases, Rng};
use crate::link::{find_next, Links};

/// A link a reader must find: its target and its first `rel` value.
type Want = (Vec<u8>, Option<Vec<u8>>);

/// One link-value as written, and the link in it, or `None` if a reader
/// must skip it.
type Element = (Vec<u8>, Option<Want>);

const TCHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCXYZ0123456789!#$%&'*+-.^_`|~";
const RELS: &[&[u8]] = &[
    b"next",
    b"NEXT",
    b"prev",
    b"last",
    b"next prev",
    b" next",
    b"nextpage",
];

fn ows(rng: &mut Rng) -> &'static [u8] {
    let options: &[&'static [u8]] = &[b"", b"", b" ", b"\t", b" \t "];
    options[rng.below(options.len())]
}

fn token(rng: &mut Rng) -> Vec<u8> {
    let len = 1 + rng.below(6);
    (0..len).map(|_| *rng.pick(TCHARS)).collect()
}

/// A quoted-string for `value`, with `"` and `\` escaped and, now and
/// then, an ordinary byte escaped as well.
fn quoted(rng: &mut Rng, value: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in value {
        if b == b'"' || b == b'\\' || rng.below(8) == 0 {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

/// A value: a token or a quoted string (either may be a relation list).
fn param_value(rng: &mut Rng, value: &[u8]) -> Vec<u8> {
    let is_token = !value.is_empty() && value.iter().all(|b| TCHARS.contains(b));
    if is_token && rng.below(2) == 0 {
        value.to_vec()
    } else {
        quoted(rng, value)
    }
}

fn element(rng: &mut Rng) -> Element {
    match rng.below(10) {
        // Text that is not a link-value at all.
        0 => {
            let n = 1 + rng.below(12);
            let mut junk = rng.bytes(n, b"abc /:=;?&\t");
            // Without `<`, `"` or `,`, it ends at the next comma.
            junk.retain(|b| !b"<\",".contains(b));
            junk.push(b'x');
            (junk, None)
        }
        // A target followed by text where a parameter should be.
        1 => {
            let mut e = b"</t> ".to_vec();
            e.extend(token(rng));
            (e, None)
        }
        // A parameter with no name.
        2 => (b"</u>; =next".to_vec(), None),
        _ => {
            // The target: anything but `>`, commas and semicolons included.
            let n = rng.below(20);
            let target: Vec<u8> = rng
                .bytes(n, b"/?=&,;\"< \\a1\xc3\xa9")
                .into_iter()
                .filter(|&b| b != b'>')
                .collect();
            let mut e = vec![b'<'];
            e.extend(&target);
            e.push(b'>');
            let mut rel = None;
            for _ in 0..rng.below(4) {
                e.extend(ows(rng));
                e.push(b';');
                e.extend(ows(rng));
                let is_rel = rng.below(2) == 0;
                let name = if is_rel {
                    rng.pick(&[b"rel" as &[u8], b"REL", b"Rel"]).to_vec()
                } else {
                    token(rng)
                };
                e.extend(&name);
                let value: Option<Vec<u8>> = match rng.below(4) {
                    0 => None,
                    1 => {
                        let n = rng.below(10);
                        Some(rng.bytes(n, b",;\"\\<> =a"))
                    }
                    _ => Some(rng.pick(RELS).to_vec()),
                };
                if let Some(v) = &value {
                    e.extend(ows(rng));
                    e.push(b'=');
                    e.extend(ows(rng));
                    e.extend(param_value(rng, v));
                }
                if rel.is_none() && name.eq_ignore_ascii_case(b"rel") {
                    rel = Some(value.unwrap_or_default());
                }
            }
            e.extend(ows(rng));
            (e, Some((target, rel)))
        }
    }
}

/// What `has_rel(name)` must say for a first `rel` value.
fn model_has_rel(rel: &Option<Vec<u8>>, name: &str) -> bool {
    rel.as_deref().is_some_and(|r| {
        r.split(u8::is_ascii_whitespace)
            .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    })
}

fn header(rng: &mut Rng) -> (Vec<u8>, Vec<Want>) {
    let mut value = Vec::new();
    let mut want = Vec::new();
    for k in 0..rng.below(6) {
        if k > 0 {
            value.extend(*rng.pick(&[b"," as &[u8], b", ", b" ,\t", b",,", b" , , "]));
        }
        let (text, link) = element(rng);
        value.extend(text);
        want.extend(link);
    }
    (value, want)
}

#[test]
fn link_values_built_from_parts_parse_back() {
    let mut rng = Rng::new(5);
    for case in 0..cases(5000) {
        let (value, want) = header(&mut rng);
        let got: Vec<_> = Links::new(&value).collect();
        let targets: Vec<&[u8]> = got.iter().map(|l| l.target).collect();
        let want_targets: Vec<&[u8]> = want.iter().map(|(t, _)| t.as_slice()).collect();
        assert_eq!(
            targets,
            want_targets,
            "case {case}: {:?}",
            String::from_utf8_lossy(&value)
        );
        for (l, (_, rel)) in got.iter().zip(&want) {
            for name in ["next", "prev", "last", "nextpage"] {
                assert_eq!(
                    l.has_rel(name),
                    model_has_rel(rel, name),
                    "case {case}: {name}"
                );
            }
        }
    }
}

#[test]
fn link_find_next_is_the_first_next_over_all_values() {
    let mut rng = Rng::new(6);
    for case in 0..cases(2000) {
        let headers: Vec<_> = (0..rng.below(4)).map(|_| header(&mut rng)).collect();
        let want = headers
            .iter()
            .flat_map(|(_, w)| w)
            .find(|(_, rel)| model_has_rel(rel, "next"))
            .map(|(t, _)| t.as_slice());
        assert_eq!(
            find_next(headers.iter().map(|(v, _)| v.as_slice())),
            want,
            "case {case}"
        );
    }
}

#[test]
fn link_random_bytes_yield_only_targets_between_angle_brackets() {
    let mut rng = Rng::new(7);
    for case in 0..cases(5000) {
        let len = *rng.pick(&[0, 1, 5, 40, 300]);
        let value = rng.bytes(len, b"<<>>;;,,\"\"\\= \trel=next\x00\xff");
        for l in Links::new(&value) {
            // The target is a slice of the input, between `<` and `>`.
            let at = l.target.as_ptr() as usize - value.as_ptr() as usize;
            assert!(at >= 1 && value[at - 1] == b'<', "case {case}");
            assert_eq!(value.get(at + l.target.len()), Some(&b'>'), "case {case}");
            assert!(!l.target.contains(&b'>'), "case {case}");
        }
        let _ = find_next([value.as_slice(), value.as_slice()]);
    }
}

#[test]
fn link_very_long_headers_end_in_bounded_time() {
    let t = Instant::now();
    let mb = 1 << 20;
    let hostile: Vec<Vec<u8>> = vec![
        b"<".repeat(mb),
        b">".repeat(mb),
        b"\"".repeat(mb),
        b";".repeat(mb),
        b",".repeat(mb),
        b"\\".repeat(mb),
        b"<a>;".repeat(mb / 4),
        b"<a>; x=\"".repeat(mb / 8),
        b"</a>; rel=\"next"
            .iter()
            .chain(&b"\\\"".repeat(mb / 2))
            .copied()
            .collect(),
        b"x <".repeat(mb / 3),
        b"</a>; rel=prev, ".repeat(mb / 16),
        b"</a> junk, ".repeat(mb / 11),
        (0..=255u8).cycle().take(mb).collect(),
    ];
    for (k, h) in hostile.iter().enumerate() {
        let started = Instant::now();
        let n = Links::new(h).count();
        assert!(n <= h.len(), "{k}");
        let _ = find_next([h.as_slice()]);
        // A megabyte is read in milliseconds; quadratic work would take
        // minutes.
        assert!(
            started.elapsed().as_secs() < 5,
            "pattern {k}: {:?}",
            started.elapsed()
        );
    }
    // Many links, the next one last.
    let mut many = b"</a>; rel=prev, ".repeat(100_000);
    many.extend_from_slice(b"</z>; rel=next");
    assert_eq!(find_next([many.as_slice()]), Some(&b"/z"[..]));
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
}
