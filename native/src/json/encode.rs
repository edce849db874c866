//! Terms written as JSON bytes.

use std::fmt;

use rustler::{Binary, MapIterator, Term, TermType};

use super::bignum::decimal_from_etf;
use super::decode::MAX_DEPTH;
use crate::term::atom_name;

/// A term that has no JSON form, and where it was: a JSON Pointer
/// (RFC 6901) such as `/users/3/name`, empty for the whole term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// Path segments, innermost first (they are added while unwinding).
    segments: Vec<String>,
    what: String,
}

impl EncodeError {
    fn new(what: impl Into<String>) -> Self {
        EncodeError {
            segments: Vec::new(),
            what: what.into(),
        }
    }

    fn within(mut self, segment: String) -> Self {
        self.segments.push(segment);
        self
    }

    /// The JSON Pointer of the offending value.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for s in self.segments.iter().rev() {
            out.push('/');
            out.push_str(&s.replace('~', "~0").replace('/', "~1"));
        }
        out
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if path.is_empty() {
            write!(f, "cannot encode {} as JSON (the whole term)", self.what)
        } else {
            write!(f, "cannot encode {} as JSON at {path}", self.what)
        }
    }
}

impl std::error::Error for EncodeError {}

/// Encodes `term` as one JSON document.
pub fn encode(term: Term) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(128);
    Writer { out: &mut out }.document(term)?;
    Ok(out)
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

/// A list or map being written, with where it has got to. The stack of
/// them is on the heap: dirty schedulers have small stacks, and recursion
/// 512 levels deep overflowed one. (A map's frame is larger than a
/// list's, which does not matter for at most [`MAX_DEPTH`] frames.)
#[allow(clippy::large_enum_variant)]
enum Frame<'a> {
    List {
        rest: Term<'a>,
        index: usize,
    },
    Map {
        iter: MapIterator<'a>,
        key: Option<Term<'a>>,
    },
}

/// Where the innermost value of `stack` is, for an error.
fn at(stack: &[Frame], e: EncodeError) -> EncodeError {
    stack.iter().rev().fold(e, |e, f| match f {
        Frame::List { index, .. } => e.within(index.saturating_sub(1).to_string()),
        Frame::Map { key: Some(k), .. } => e.within(segment(*k)),
        Frame::Map { key: None, .. } => e,
    })
}

impl Writer<'_> {
    fn document(&mut self, term: Term) -> Result<(), EncodeError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut next = Some(term);
        loop {
            if let Some(t) = next.take() {
                match t.get_type() {
                    TermType::List | TermType::Map if stack.len() >= MAX_DEPTH => {
                        return Err(at(
                            &stack,
                            EncodeError::new(format!("a term nested deeper than {MAX_DEPTH}")),
                        ));
                    }
                    TermType::List => {
                        self.out.push(b'[');
                        stack.push(Frame::List { rest: t, index: 0 });
                    }
                    TermType::Map => {
                        let iter = MapIterator::new(t)
                            .ok_or_else(|| at(&stack, EncodeError::new("a map")))?;
                        self.out.push(b'{');
                        stack.push(Frame::Map { iter, key: None });
                    }
                    _ => self.scalar(t).map_err(|e| at(&stack, e))?,
                }
            }
            // The next element of the innermost open list or map, or its end.
            let depth = stack.len();
            match stack.last_mut() {
                None => return Ok(()),
                Some(Frame::List { rest, index }) => match rest.list_get_cell() {
                    Ok((head, tail)) => {
                        if *index > 0 {
                            self.out.push(b',');
                        }
                        *index += 1;
                        *rest = tail;
                        next = Some(head);
                    }
                    Err(_) if rest.is_empty_list() => {
                        self.out.push(b']');
                        stack.pop();
                    }
                    Err(_) => {
                        return Err(at(
                            &stack[..depth - 1],
                            EncodeError::new("an improper list"),
                        ))
                    }
                },
                Some(Frame::Map { iter, key }) => match iter.next() {
                    Some((k, v)) => {
                        if key.is_some() {
                            self.out.push(b',');
                        }
                        *key = Some(k);
                        if let Err(e) = self.key(k) {
                            return Err(at(&stack[..depth - 1], e));
                        }
                        self.out.push(b':');
                        next = Some(v);
                    }
                    None => {
                        self.out.push(b'}');
                        stack.pop();
                    }
                },
            }
        }
    }

    fn scalar(&mut self, term: Term) -> Result<(), EncodeError> {
        match term.get_type() {
            TermType::Atom => self.atom(term),
            TermType::Binary => {
                let bin = term
                    .decode::<Binary>()
                    .map_err(|_| EncodeError::new("a bitstring"))?;
                self.string(bin.as_slice())
            }
            TermType::Integer => self.integer(term),
            TermType::Float => {
                let f: f64 = term.decode().map_err(|_| EncodeError::new("a float"))?;
                self.float(f)
            }
            TermType::Tuple => Err(EncodeError::new("a tuple")),
            TermType::Pid => Err(EncodeError::new("a pid")),
            TermType::Port => Err(EncodeError::new("a port")),
            TermType::Ref => Err(EncodeError::new("a reference")),
            TermType::Fun => Err(EncodeError::new("a fun")),
            _ => Err(EncodeError::new("a term of unknown type")),
        }
    }

    fn atom(&mut self, term: Term) -> Result<(), EncodeError> {
        let name = atom_name(term).ok_or_else(|| EncodeError::new("an atom"))?;
        let word: &[u8] = match name.as_str() {
            "true" => b"true",
            "false" => b"false",
            "null" | "nil" => b"null",
            _ => return Err(EncodeError::new(format!("the atom '{name}'"))),
        };
        self.out.extend_from_slice(word);
        Ok(())
    }

    fn integer(&mut self, term: Term) -> Result<(), EncodeError> {
        if let Ok(i) = term.decode::<i64>() {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            return Ok(());
        }
        let digits = decimal_from_etf(term.to_binary().as_slice())
            .ok_or_else(|| EncodeError::new("an integer"))?;
        self.out.extend_from_slice(digits.as_bytes());
        Ok(())
    }

    fn float(&mut self, f: f64) -> Result<(), EncodeError> {
        if !f.is_finite() {
            return Err(EncodeError::new("a float that is not finite"));
        }
        // zmij writes the shortest digits that read back as `f`, with a
        // `.0` or an exponent, so that the value stays a float in JSON.
        self.out
            .extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
        Ok(())
    }

    fn string(&mut self, s: &[u8]) -> Result<(), EncodeError> {
        if std::str::from_utf8(s).is_err() {
            return Err(EncodeError::new("a binary that is not UTF-8"));
        }
        self.out.reserve(s.len() + 2);
        self.out.push(b'"');
        let mut run = 0;
        for (i, &b) in s.iter().enumerate() {
            let esc: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => b"",
                _ => continue,
            };
            self.out.extend_from_slice(&s[run..i]);
            if esc.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.out.extend_from_slice(b"\\u00");
                self.out.push(HEX[usize::from(b >> 4)]);
                self.out.push(HEX[usize::from(b & 15)]);
            } else {
                self.out.extend_from_slice(esc);
            }
            run = i + 1;
        }
        self.out.extend_from_slice(&s[run..]);
        self.out.push(b'"');
        Ok(())
    }

    /// A map key as an object key: a binary, an atom's name or an
    /// integer's digits.
    fn key(&mut self, k: Term) -> Result<(), EncodeError> {
        match k.get_type() {
            TermType::Binary => {
                let bin = k
                    .decode::<Binary>()
                    .map_err(|_| EncodeError::new("a bitstring key"))?;
                self.string(bin.as_slice())
                    .map_err(|_| EncodeError::new("a key that is not UTF-8"))
            }
            TermType::Atom => {
                let name = atom_name(k).ok_or_else(|| EncodeError::new("an atom key"))?;
                self.string(name.as_bytes())
            }
            TermType::Integer => {
                self.out.push(b'"');
                self.integer(k)?;
                self.out.push(b'"');
                Ok(())
            }
            TermType::Tuple => Err(EncodeError::new("a key that is a tuple")),
            TermType::List => Err(EncodeError::new("a key that is a list")),
            TermType::Map => Err(EncodeError::new("a key that is a map")),
            TermType::Float => Err(EncodeError::new("a key that is a float")),
            _ => Err(EncodeError::new("a key of an unsupported type")),
        }
    }
}

/// A key as a path segment (only made for an error).
fn segment(k: Term) -> String {
    if let Ok(bin) = k.decode::<Binary>() {
        return String::from_utf8_lossy(bin.as_slice()).into_owned();
    }
    if let Some(name) = atom_name(k) {
        return name;
    }
    let mut digits = Vec::new();
    match (Writer { out: &mut digits }).integer(k) {
        Ok(()) => String::from_utf8_lossy(&digits).into_owned(),
        Err(_) => String::from("?"),
    }
}
