//! A JSON number with a fraction or an exponent as an `f64`, correctly
//! rounded however many digits it has.
//!
//! The standard library's reader rounds correctly, but stops adding an
//! exponent's digits once the exponent passes 65,535 (Rust 1.95): harmless
//! while the mantissa is short (the value is far out of range either way),
//! wrong when a mantissa of hundreds of thousands of digits brings it back
//! (`0.` 700,000 zeros `1e700001` is 1.0 and read as 0.0). A long number is
//! therefore rewritten first as `0.DIGITSeE`: its significant digits (at
//! most [`KEPT_DIGITS`], plus one that stands for the rest) and an
//! exponent computed here, small whenever the value is in range.

/// Up to this length the standard library reads the text itself: the
/// mantissa then has too few digits to bring an exponent beyond 65,535
/// back into range, so the result is out of range in the same direction.
const DIRECT_MAX: usize = 4096;

/// Significant digits kept. The exact midpoint between two adjacent
/// doubles has at most 767 significant digits, so digits beyond 800 only
/// matter as "some nonzero digit follows", which one sticky `1` says.
const KEPT_DIGITS: usize = 800;

/// Exponents are saturated here while read: far beyond any in-range value
/// plus the longest mantissa the input could hold, and no overflow.
const EXP_LIMIT: i64 = 1 << 60;

/// The value of `text` (the JSON number grammar, with a fraction or an
/// exponent); `None` if it is out of the range of finite floats.
#[inline]
pub fn from_text(text: &[u8]) -> Option<f64> {
    let f = if text.len() <= DIRECT_MAX {
        std::str::from_utf8(text).ok()?.parse::<f64>().ok()?
    } else {
        long(text)?
    };
    f.is_finite().then_some(f)
}

/// `text` rewritten with a small exponent, then read.
#[cold]
#[inline(never)]
fn long(text: &[u8]) -> Option<f64> {
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &mantissa[mantissa.len()..]),
    };
    let zero = if negative { -0.0 } else { 0.0 };
    let digits = || int.iter().chain(frac);
    let Some(first) = digits().position(|&b| b != b'0') else {
        return Some(zero);
    };
    // The value is 0.D × 10^(point), D the digits from the first nonzero.
    let point = to_i64(int.len())? - to_i64(first)?;
    let e = point.checked_add(exponent.map_or(Some(0), read_exponent)?)?;
    // 0.D is in [0.1, 1): at 10^310 the value is at least 1e309, beyond
    // the largest double; at 10^-330 it is below half the smallest one.
    if e >= 310 {
        return None;
    }
    if e <= -330 {
        return Some(zero);
    }
    let mut out = String::with_capacity(KEPT_DIGITS + 16);
    if negative {
        out.push('-');
    }
    out.push_str("0.");
    let mut significant = digits().skip(first);
    out.extend(
        significant
            .by_ref()
            .take(KEPT_DIGITS)
            .map(|&b| char::from(b)),
    );
    if significant.any(|&b| b != b'0') {
        out.push('1');
    }
    out.push('e');
    out.push_str(itoa::Buffer::new().format(e));
    out.parse().ok()
}

/// An exponent's sign and digits, saturated at [`EXP_LIMIT`].
fn read_exponent(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, s),
    };
    let mut e: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        e = (e * 10 + i64::from(d - b'0')).min(EXP_LIMIT);
    }
    Some(if negative { -e } else { e })
}

fn to_i64(n: usize) -> Option<i64> {
    i64::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(n: usize) -> String {
        "0".repeat(n)
    }

    fn read(s: &str) -> Option<f64> {
        from_text(s.as_bytes())
    }

    #[test]
    fn long_numbers_from_the_issue() {
        for z in [600_000, 655_359, 655_360, 700_000] {
            assert_eq!(
                read(&format!("0.{}1e{}", zeros(z), z + 1)),
                Some(1.0),
                "{z}"
            );
        }
        assert_eq!(read(&format!("1{}e-700000", zeros(700_000))), Some(1.0));
        assert_eq!(read(&format!("-1{}e-700001", zeros(700_000))), Some(-0.1));
        assert_eq!(read(&format!("1e-{}5", zeros(700_000))), Some(1e-5));
        assert_eq!(read(&format!("1{}e-699690", zeros(700_000))), None);
        assert_eq!(read(&format!("1{}e-699692", zeros(700_000))), Some(1e308));
        assert_eq!(read(&format!("0.{}5e699677", zeros(700_000))), Some(5e-324));
        assert_eq!(read(&format!("0.{}2e699677", zeros(700_000))), Some(0.0));
        let neg_zero = read(&format!("-0.{}e9", zeros(700_000))).map(f64::to_bits);
        assert_eq!(neg_zero, Some((-0.0f64).to_bits()));
        assert_eq!(read(&format!("1e{}", "9".repeat(5000))), None);
        assert_eq!(read(&format!("1e-{}", "9".repeat(5000))), Some(0.0));
    }

    #[test]
    fn a_sticky_digit_decides_ties() {
        // 2^53 + 1 lies halfway between two doubles; ties go to even.
        let tie = "9007199254740993";
        assert_eq!(
            read(&format!("{tie}.{}", zeros(5000))),
            Some(9007199254740992.0)
        );
        assert_eq!(
            read(&format!("{tie}.{}1", zeros(5000))),
            Some(9007199254740994.0)
        );
        assert_eq!(
            read(&format!("9007199254740992.{}", "9".repeat(5000))),
            Some(9007199254740992.0)
        );
    }

    /// The rewriting path agrees with the standard library wherever the
    /// latter is right: numbers short enough for it, with every shape of
    /// mantissa (leading and trailing zeros, long fractions, midpoints).
    #[test]
    fn the_long_path_agrees_with_the_standard_library() {
        let mut rng = crate::props::Rng::new(8);
        for case in 0..crate::props::cases(20_000) {
            let mut s = String::new();
            if rng.below(2) == 0 {
                s.push('-');
            }
            let int_len = rng.below(30);
            if int_len == 0 {
                s.push('0');
            } else {
                s.push(char::from(b'1' + rng.below(9) as u8));
                for _ in 1..int_len {
                    s.push(char::from(b'0' + rng.below(10) as u8));
                }
            }
            let frac_len = [0, 1, 5, 20, 900, 2000][rng.below(6)];
            if frac_len > 0 {
                s.push('.');
                let lead = rng.below(frac_len + 1);
                s.push_str(&zeros(lead));
                for _ in lead..frac_len {
                    s.push(char::from(b'0' + rng.below(10) as u8));
                }
            }
            if frac_len == 0 || rng.below(2) == 0 {
                s.push(['e', 'E'][rng.below(2)]);
                s.push_str(["", "+", "-"][rng.below(3)]);
                s.push_str(&zeros(rng.below(3)));
                s.push_str(&rng.below(400).to_string());
            }
            let expected = s.parse::<f64>().ok().filter(|f| f.is_finite());
            let got = long(s.as_bytes()).filter(|f| f.is_finite());
            assert_eq!(
                got.map(f64::to_bits),
                expected.map(f64::to_bits),
                "case {case}: {s}"
            );
        }
    }
}
