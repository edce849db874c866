//! Integers beyond 64 bits, between decimal digits and the external term
//! format (the one way a NIF can make or read a bignum of any size).

/// `SMALL_BIG_EXT` and `LARGE_BIG_EXT` in the external term format.
const VERSION: u8 = 131;
const SMALL_BIG: u8 = 110;
const LARGE_BIG: u8 = 111;

/// Nine decimal digits fit a `u32` limb's multiplier.
const CHUNK: usize = 9;
const CHUNK_BASE: u64 = 1_000_000_000;

/// The external term format of the integer with these decimal digits.
pub fn etf_from_digits(negative: bool, digits: &[u8]) -> Vec<u8> {
    // Little-endian base-2^32 limbs, multiplied by 10^9 and added to, nine
    // digits at a time.
    let mut limbs: Vec<u32> = Vec::with_capacity(digits.len() / 9 + 1);
    let first = digits.len() % CHUNK;
    let mut chunks: Vec<&[u8]> = Vec::new();
    if first > 0 {
        chunks.push(&digits[..first]);
    }
    chunks.extend(digits[first..].chunks(CHUNK));
    for chunk in chunks {
        let mul = 10u64.pow(chunk.len() as u32);
        let mut carry = chunk
            .iter()
            .fold(0u64, |v, d| v * 10 + u64::from(d.wrapping_sub(b'0')));
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * mul + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    let mut out = Vec::with_capacity(bytes.len() + 7);
    out.push(VERSION);
    if let Ok(n) = u8::try_from(bytes.len()) {
        out.extend([SMALL_BIG, n]);
    } else {
        out.push(LARGE_BIG);
        out.extend((bytes.len() as u32).to_be_bytes());
    }
    out.push(u8::from(negative));
    out.extend(bytes);
    out
}

/// The decimal form of an integer in the external term format (as
/// `term_to_binary` writes any integer), or `None` if it is not one.
pub fn decimal_from_etf(etf: &[u8]) -> Option<String> {
    let (sign, magnitude) = match etf {
        [VERSION, SMALL_BIG, n, sign, rest @ ..] if rest.len() == usize::from(*n) => (*sign, rest),
        [VERSION, LARGE_BIG, a, b, c, d, sign, rest @ ..]
            if rest.len() == u32::from_be_bytes([*a, *b, *c, *d]) as usize =>
        {
            (*sign, rest)
        }
        _ => return None,
    };
    let mut limbs: Vec<u32> = magnitude
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(b)
        })
        .collect();
    // Repeated division by 10^9, most significant limb first; the
    // remainders are the nine-digit groups, least significant first.
    let mut groups = Vec::new();
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    while !limbs.is_empty() {
        let mut rem = 0u64;
        for limb in limbs.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*limb);
            *limb = (v / CHUNK_BASE) as u32;
            rem = v % CHUNK_BASE;
        }
        groups.push(rem as u32);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let mut out = String::with_capacity(groups.len() * CHUNK + 1);
    if sign != 0 {
        out.push('-');
    }
    match groups.split_last() {
        None => out.push('0'),
        Some((top, rest)) => {
            out.push_str(&top.to_string());
            for g in rest.iter().rev() {
                out.push_str(&format!("{g:09}"));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_to_the_200_both_ways() {
        let digits = "1606938044258990275541962092341162602522202993782792835301376";
        let etf = etf_from_digits(false, digits.as_bytes());
        // 2^200: 25 magnitude bytes, all zero but the last.
        assert_eq!(&etf[..4], &[131, 110, 26, 0]);
        assert_eq!(etf[4..29], [0u8; 25]);
        assert_eq!(etf[29], 1);
        assert_eq!(decimal_from_etf(&etf).as_deref(), Some(digits));
        let neg = etf_from_digits(true, digits.as_bytes());
        assert_eq!(neg[3], 1);
        assert_eq!(decimal_from_etf(&neg), Some(format!("-{digits}")));
    }

    #[test]
    fn long_numbers_use_large_big_ext() {
        let digits = "7".repeat(1000);
        let etf = etf_from_digits(false, digits.as_bytes());
        assert_eq!(etf[1], LARGE_BIG);
        assert_eq!(decimal_from_etf(&etf), Some(digits));
    }

    #[test]
    fn groups_keep_their_zeros() {
        let digits = "100000000000000000000000000001";
        let etf = etf_from_digits(false, digits.as_bytes());
        assert_eq!(decimal_from_etf(&etf).as_deref(), Some(digits));
        assert_eq!(decimal_from_etf(&[131, 97, 5]), None);
    }
}
