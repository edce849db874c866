//! Property tests of the byte parsers (test builds only): the SSE parser,
//! the line splitter and the `Link` header parser are fed random and
//! hostile bytes, cut into random chunks, and compared with small
//! reference models written straight from their specifications.
//!
//! Randomness comes from a fixed seed, so a failure names its case and
//! reproduces; the counts keep `cargo test --release` within seconds.
//! `ERQWEST_PROP_SEED` picks another seed and `ERQWEST_PROP_NUMTESTS`
//! scales the counts (percent), as the Erlang property suites do.

mod lines;
mod link;
mod sse;

/// SplitMix64: tiny, fast, and good enough to pick test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(salt: u64) -> Self {
        let seed = std::env::var("ERQWEST_PROP_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20_261_206u64);
        Rng(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the bias of `%` does not matter here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `len` bytes, most from `alphabet` (the bytes the grammar cares
    /// about), the rest any byte at all.
    pub fn bytes(&mut self, len: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..len)
            .map(|_| {
                if self.below(4) == 0 {
                    self.next() as u8
                } else {
                    *self.pick(alphabet)
                }
            })
            .collect()
    }

    /// `input` cut at up to `max_cuts` random places (empty chunks too).
    pub fn chunks<'a>(&mut self, input: &'a [u8], max_cuts: usize) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = (0..self.below(max_cuts + 1))
            .map(|_| self.below(input.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut out = Vec::with_capacity(cuts.len() + 1);
        let mut from = 0;
        for c in cuts {
            out.push(&input[from..c]);
            from = c;
        }
        out.push(&input[from..]);
        out
    }
}

/// A case count scaled by `ERQWEST_PROP_NUMTESTS` (percent, default 100).
pub fn cases(n: usize) -> usize {
    let pct = std::env::var("ERQWEST_PROP_NUMTESTS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(100);
    (n * pct / 100).max(1)
}

/// The lines of `input` split at CRLF, lone CR and lone LF, with the
/// offset where each starts; the last one may have no line end.
pub fn raw_lines(input: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\n' => {
                out.push((start, &input[start..i]));
                start = i + 1;
            }
            b'\r' => {
                out.push((start, &input[start..i]));
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push((start, &input[start..]));
    out
}
