//! Lines of a body, for `format => lines | ndjson`: split at LF, with one
//! CR before it dropped (NDJSON allows CRLF), across chunk boundaries.
//!
//! A line is at most `max_line` bytes; one that grows past it is an error
//! as soon as it does, before its end arrives. The last line of a body
//! needs no LF.

use std::collections::VecDeque;

/// A line grew past `max_line` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

#[derive(Debug)]
pub struct Splitter {
    max_line: usize,
    /// Bytes of a line whose LF has not arrived yet.
    line: Vec<u8>,
    /// Drop blank lines (NDJSON); `lines` keeps them.
    skip_blank: bool,
}

impl Splitter {
    pub fn new(max_line: usize, skip_blank: bool) -> Self {
        Splitter {
            max_line,
            line: Vec::new(),
            skip_blank,
        }
    }

    /// A new body: a partial line of the last one is dropped.
    pub fn restart(&mut self) {
        self.line.clear();
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<Vec<u8>>) -> Result<(), TooLong> {
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if self.line.is_empty() {
                self.emit(&rest[..i], out)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..i]);
                let r = self.emit(&line, out);
                line.clear();
                self.line = line;
                r?;
            }
            rest = &rest[i + 1..];
        }
        // A CR at the end may still be the first half of a CRLF: it counts
        // only once a byte other than LF follows.
        let pending = self.line.len() + rest.len();
        let counted = if rest.last() == Some(&b'\r')
            || (rest.is_empty() && self.line.last() == Some(&b'\r'))
        {
            pending - 1
        } else {
            pending
        };
        if counted > self.max_line {
            return Err(TooLong);
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// The end of the body: an unterminated last line is still a line.
    pub fn finish(&mut self, out: &mut VecDeque<Vec<u8>>) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            // Checked against the limit as it arrived.
            let _ = self.emit(&line, out);
        }
    }

    fn emit(&self, line: &[u8], out: &mut VecDeque<Vec<u8>>) -> Result<(), TooLong> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max_line {
            return Err(TooLong);
        }
        if self.skip_blank && line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        out.push_back(line.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], skip_blank: bool) -> Vec<Vec<u8>> {
        let mut s = Splitter::new(1024, skip_blank);
        let mut out = VecDeque::new();
        for c in chunks {
            s.feed(c, &mut out).expect("within the limit");
        }
        s.finish(&mut out);
        out.into()
    }

    #[test]
    fn lf_and_crlf_end_lines_and_the_last_needs_none() {
        let want: Vec<Vec<u8>> = vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec(), b"c".to_vec()];
        assert_eq!(split(&[b"a\n\r\nb\r\nc"], false), want);
    }

    #[test]
    fn ndjson_skips_blank_lines() {
        let want: Vec<Vec<u8>> = vec![b"{}".to_vec(), b"[1]".to_vec()];
        assert_eq!(split(&[b"{}\n \r\n\n[1]\n"], true), want);
    }

    #[test]
    fn every_split_gives_the_same_lines() {
        let body: &[u8] = b"one\r\ntwo\n\nthree\r\n{\"k\":1}\nlast";
        let whole = split(&[body], false);
        for i in 0..=body.len() {
            for j in i..=body.len() {
                assert_eq!(split(&[&body[..i], &body[i..j], &body[j..]], false), whole);
            }
        }
    }

    #[test]
    fn a_long_line_fails_before_its_end() {
        let mut s = Splitter::new(4, false);
        let mut out = VecDeque::new();
        s.feed(b"1234\r", &mut out)
            .expect("a CR may still be a CRLF");
        s.feed(b"\n", &mut out).expect("at the limit");
        assert_eq!(s.feed(b"12345", &mut out), Err(TooLong));
    }
}
