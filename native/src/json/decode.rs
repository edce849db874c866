//! The JSON parser (RFC 8259), generic over what it builds (a [`Sink`]),
//! so that the grammar is unit-tested without a VM.

use std::fmt;

/// Arrays and objects nested deeper than this are an error. The parser's
/// stack is on the heap, so the limit is not about the parser: it keeps
/// the terms it makes within reach of code that walks them recursively
/// (our encoder, `io:format`, most user code).
pub const MAX_DEPTH: usize = 512;

/// Integers with more decimal digits are an error: turning digits into a
/// bignum costs time in proportion to the square of their number.
pub const MAX_INTEGER_DIGITS: usize = 4096;

/// What the parser builds values with.
pub trait Sink {
    type Value;
    fn null(&mut self) -> Self::Value;
    fn boolean(&mut self, b: bool) -> Self::Value;
    fn integer(&mut self, i: i64) -> Self::Value;
    /// An integer beyond 64 bits, as its decimal digits (no sign, no
    /// leading zero). `None` when it could not be built.
    fn big_integer(&mut self, negative: bool, digits: &[u8]) -> Option<Self::Value>;
    fn float(&mut self, f: f64) -> Self::Value;
    /// A string's bytes, checked to be UTF-8.
    fn string(&mut self, s: &[u8]) -> Self::Value;
    /// An object key; the same as a string unless the sink shares
    /// repeated keys.
    fn key(&mut self, s: &[u8]) -> Self::Value {
        self.string(s)
    }
    fn array(&mut self, items: Vec<Self::Value>) -> Self::Value;
    /// An object; a repeated key must keep its last value.
    fn object(&mut self, keys: Vec<Self::Value>, values: Vec<Self::Value>) -> Self::Value;
}

/// Why a document did not decode, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Eof,
    Unexpected(u8),
    InvalidUtf8,
    ControlInString,
    BadEscape,
    LoneSurrogate,
    FloatOutOfRange,
    IntegerTooLong,
    TooDeep,
    Trailing,
}

impl DecodeError {
    fn at(offset: usize, kind: Kind) -> Self {
        DecodeError { offset, kind }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Eof => write!(f, "unexpected end of input"),
            Kind::Unexpected(b) if b.is_ascii_graphic() => {
                write!(f, "unexpected character '{}'", b as char)
            }
            Kind::Unexpected(b) => write!(f, "unexpected byte 0x{b:02x}"),
            Kind::InvalidUtf8 => write!(f, "invalid UTF-8 in string"),
            Kind::ControlInString => write!(f, "unescaped control character in string"),
            Kind::BadEscape => write!(f, "invalid escape in string"),
            Kind::LoneSurrogate => write!(f, "lone surrogate in \\u escape"),
            Kind::FloatOutOfRange => write!(f, "number out of float range"),
            Kind::IntegerTooLong => {
                write!(f, "integer longer than {MAX_INTEGER_DIGITS} digits")
            }
            Kind::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH}"),
            Kind::Trailing => write!(f, "unexpected data after the document"),
        }?;
        write!(f, " at byte {}", self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// An array or object still open, with what it holds so far.
enum Frame<V> {
    Array(Vec<V>),
    Object { keys: Vec<V>, values: Vec<V> },
}

struct Parser<'s, S: Sink> {
    s: &'s [u8],
    i: usize,
    sink: &'s mut S,
    /// Unescaped string bytes, reused from string to string.
    scratch: Vec<u8>,
}

/// Parses one document, with whitespace around it and nothing else.
pub fn parse<S: Sink>(bytes: &[u8], sink: &mut S) -> Result<S::Value, DecodeError> {
    Parser {
        s: bytes,
        i: 0,
        sink,
        scratch: Vec::new(),
    }
    .document()
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<S: Sink> Parser<'_, S> {
    fn document(&mut self) -> Result<S::Value, DecodeError> {
        let mut stack: Vec<Frame<S::Value>> = Vec::new();
        'value: loop {
            self.skip_ws();
            let mut value = match self.peek() {
                Some(b'[') => {
                    self.open(stack.len())?;
                    if self.eat(b']') {
                        self.sink.array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'{') => {
                    self.open(stack.len())?;
                    if self.eat(b'}') {
                        self.sink.object(Vec::new(), Vec::new())
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Object {
                            keys: vec![key],
                            values: Vec::new(),
                        });
                        continue 'value;
                    }
                }
                _ => self.scalar()?,
            };
            // Close every container that the value completes.
            loop {
                self.skip_ws();
                match stack.last_mut() {
                    None => {
                        if self.i < self.s.len() {
                            return Err(DecodeError::at(self.i, Kind::Trailing));
                        }
                        return Ok(value);
                    }
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        match self.next_byte()? {
                            b',' => continue 'value,
                            b']' => {}
                            b => return Err(DecodeError::at(self.i - 1, Kind::Unexpected(b))),
                        }
                    }
                    Some(Frame::Object { keys, values }) => {
                        values.push(value);
                        match self.next_byte()? {
                            b',' => {
                                self.skip_ws();
                                keys.push(self.key()?);
                                continue 'value;
                            }
                            b'}' => {}
                            b => return Err(DecodeError::at(self.i - 1, Kind::Unexpected(b))),
                        }
                    }
                }
                value = match stack.pop() {
                    Some(Frame::Array(items)) => self.sink.array(items),
                    Some(Frame::Object { keys, values }) => self.sink.object(keys, values),
                    None => unreachable!("the stack was not empty"),
                };
            }
        }
    }

    /// Steps over `[` or `{`, unless that is one level too many.
    fn open(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::at(self.i, Kind::TooDeep));
        }
        self.i += 1;
        self.skip_ws();
        Ok(())
    }

    /// `"key"` and the `:` after it.
    fn key(&mut self) -> Result<S::Value, DecodeError> {
        match self.next_byte()? {
            b'"' => {}
            b => return Err(DecodeError::at(self.i - 1, Kind::Unexpected(b))),
        }
        let key = self.string(true)?;
        self.skip_ws();
        match self.next_byte()? {
            b':' => Ok(key),
            b => Err(DecodeError::at(self.i - 1, Kind::Unexpected(b))),
        }
    }

    fn scalar(&mut self) -> Result<S::Value, DecodeError> {
        match self.peek() {
            None => Err(DecodeError::at(self.i, Kind::Eof)),
            Some(b'"') => {
                self.i += 1;
                self.string(false)
            }
            Some(b't') => self.literal(b"true").map(|_| self.sink.boolean(true)),
            Some(b'f') => self.literal(b"false").map(|_| self.sink.boolean(false)),
            Some(b'n') => self.literal(b"null").map(|_| self.sink.null()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b) => Err(DecodeError::at(self.i, Kind::Unexpected(b))),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), DecodeError> {
        for (k, &w) in word.iter().enumerate() {
            match self.s.get(self.i + k) {
                Some(&b) if b == w => {}
                Some(&b) => return Err(DecodeError::at(self.i + k, Kind::Unexpected(b))),
                None => return Err(DecodeError::at(self.i + k, Kind::Eof)),
            }
        }
        self.i += word.len();
        Ok(())
    }

    /// A string's body (an object key's if `key`); `self.i` is just past
    /// the opening quote.
    fn string(&mut self, key: bool) -> Result<S::Value, DecodeError> {
        let open = self.i - 1;
        let mut run = self.i;
        let mut escaped = false;
        self.scratch.clear();
        loop {
            let mut j = self.i;
            while let Some(&b) = self.s.get(j) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                j += 1;
            }
            let chunk = &self.s[run..j];
            if !chunk.is_ascii() {
                if let Err(e) = std::str::from_utf8(chunk) {
                    return Err(DecodeError::at(run + e.valid_up_to(), Kind::InvalidUtf8));
                }
            }
            match self.s.get(j) {
                None => return Err(DecodeError::at(open, Kind::Eof)),
                Some(b'"') => {
                    self.i = j + 1;
                    let bytes = if escaped {
                        self.scratch.extend_from_slice(&self.s[run..j]);
                        &self.scratch[..]
                    } else {
                        &self.s[run..j]
                    };
                    return Ok(if key {
                        self.sink.key(bytes)
                    } else {
                        self.sink.string(bytes)
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.scratch.extend_from_slice(&self.s[run..j]);
                    self.i = j;
                    self.escape()?;
                    run = self.i;
                }
                Some(_) => return Err(DecodeError::at(j, Kind::ControlInString)),
            }
        }
    }

    /// One escape sequence at `self.i` (on the backslash), unescaped into
    /// the scratch buffer.
    fn escape(&mut self) -> Result<(), DecodeError> {
        let at = self.i;
        let b = *self
            .s
            .get(at + 1)
            .ok_or(DecodeError::at(at + 1, Kind::Eof))?;
        self.i = at + 2;
        let byte = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.unicode(at)?;
                let mut buf = [0u8; 4];
                self.scratch
                    .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            _ => return Err(DecodeError::at(at, Kind::BadEscape)),
        };
        self.scratch.push(byte);
        Ok(())
    }

    /// The code point of `\uXXXX` (and of its low surrogate, if it is a
    /// high one); `self.i` is on the first hex digit.
    fn unicode(&mut self, at: usize) -> Result<char, DecodeError> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.s.get(self.i) != Some(&b'\\') || self.s.get(self.i + 1) != Some(&b'u') {
                    return Err(DecodeError::at(at, Kind::LoneSurrogate));
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(DecodeError::at(at, Kind::LoneSurrogate));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(DecodeError::at(at, Kind::LoneSurrogate)),
            c => c,
        };
        char::from_u32(code).ok_or(DecodeError::at(at, Kind::LoneSurrogate))
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let mut v = 0;
        for k in 0..4 {
            let b = *self
                .s
                .get(self.i + k)
                .ok_or(DecodeError::at(self.i + k, Kind::Eof))?;
            let d = (b as char)
                .to_digit(16)
                .ok_or(DecodeError::at(self.i + k, Kind::BadEscape))?;
            v = v * 16 + d;
        }
        self.i += 4;
        Ok(v)
    }

    fn number(&mut self) -> Result<S::Value, DecodeError> {
        let start = self.i;
        let negative = self.eat(b'-');
        let int_start = self.i;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            Some(b) => return Err(DecodeError::at(self.i, Kind::Unexpected(b))),
            None => return Err(DecodeError::at(self.i, Kind::Eof)),
        }
        let int_end = self.i;
        let mut is_float = false;
        if self.eat(b'.') {
            is_float = true;
            self.required_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_float = true;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.required_digits()?;
        }
        let text = &self.s[start..self.i];
        if is_float {
            let f = super::float::from_text(text)
                .ok_or(DecodeError::at(start, Kind::FloatOutOfRange))?;
            return Ok(self.sink.float(f));
        }
        let digits = &self.s[int_start..int_end];
        if digits.len() <= 18 {
            let mut v: i64 = 0;
            for &d in digits {
                v = v * 10 + i64::from(d - b'0');
            }
            return Ok(self.sink.integer(if negative { -v } else { v }));
        }
        if let Some(v) = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()) {
            return Ok(self.sink.integer(v));
        }
        if digits.len() > MAX_INTEGER_DIGITS {
            return Err(DecodeError::at(start, Kind::IntegerTooLong));
        }
        self.sink
            .big_integer(negative, digits)
            .ok_or(DecodeError::at(start, Kind::IntegerTooLong))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn required_digits(&mut self) -> Result<(), DecodeError> {
        match self.peek() {
            Some(b'0'..=b'9') => {
                self.digits();
                Ok(())
            }
            Some(b) => Err(DecodeError::at(self.i, Kind::Unexpected(b))),
            None => Err(DecodeError::at(self.i, Kind::Eof)),
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.i), Some(&b) if is_ws(b)) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn next_byte(&mut self) -> Result<u8, DecodeError> {
        let b = self.peek().ok_or(DecodeError::at(self.i, Kind::Eof))?;
        self.i += 1;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of Rust values, so that the grammar is tested without a VM.
    #[derive(Debug, Clone, PartialEq)]
    enum V {
        Null,
        Bool(bool),
        Int(i64),
        Big(bool, String),
        Float(f64),
        Str(String),
        Arr(Vec<V>),
        Obj(Vec<(V, V)>),
    }

    struct Tree;

    impl Sink for Tree {
        type Value = V;
        fn null(&mut self) -> V {
            V::Null
        }
        fn boolean(&mut self, b: bool) -> V {
            V::Bool(b)
        }
        fn integer(&mut self, i: i64) -> V {
            V::Int(i)
        }
        fn big_integer(&mut self, negative: bool, digits: &[u8]) -> Option<V> {
            Some(V::Big(negative, String::from_utf8(digits.to_vec()).ok()?))
        }
        fn float(&mut self, f: f64) -> V {
            V::Float(f)
        }
        fn string(&mut self, s: &[u8]) -> V {
            V::Str(String::from_utf8(s.to_vec()).expect("checked UTF-8"))
        }
        fn array(&mut self, items: Vec<V>) -> V {
            V::Arr(items)
        }
        fn object(&mut self, keys: Vec<V>, values: Vec<V>) -> V {
            V::Obj(keys.into_iter().zip(values).collect())
        }
    }

    fn p(s: &str) -> Result<V, DecodeError> {
        parse(s.as_bytes(), &mut Tree)
    }

    fn err(s: &[u8]) -> String {
        parse(s, &mut Tree).expect_err("should fail").to_string()
    }

    fn s(x: &str) -> V {
        V::Str(x.into())
    }

    #[test]
    fn scalars() {
        assert_eq!(p(" true "), Ok(V::Bool(true)));
        assert_eq!(p("false"), Ok(V::Bool(false)));
        assert_eq!(p("null"), Ok(V::Null));
        assert_eq!(p("-0"), Ok(V::Int(0)));
        assert_eq!(p("-0.0"), Ok(V::Float(-0.0)));
        assert_eq!(p("1.5e3"), Ok(V::Float(1500.0)));
        assert_eq!(p("1E-2"), Ok(V::Float(0.01)));
        assert_eq!(p("9223372036854775807"), Ok(V::Int(i64::MAX)));
        assert_eq!(p("-9223372036854775808"), Ok(V::Int(i64::MIN)));
        assert_eq!(
            p("9223372036854775808"),
            Ok(V::Big(false, "9223372036854775808".into()))
        );
        assert_eq!(p("-1e-400"), Ok(V::Float(-0.0)));
    }

    #[test]
    fn containers() {
        assert_eq!(p("[]"), Ok(V::Arr(vec![])));
        assert_eq!(p(" { } "), Ok(V::Obj(vec![])));
        assert_eq!(
            p(r#"{"a": [1, {"": null}], "a": 2}"#),
            Ok(V::Obj(vec![
                (
                    s("a"),
                    V::Arr(vec![V::Int(1), V::Obj(vec![(s(""), V::Null)])])
                ),
                (s("a"), V::Int(2)),
            ]))
        );
    }

    #[test]
    fn escapes_and_surrogates() {
        assert_eq!(
            p(r#""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00x""#),
            Ok(s("\"\\/\u{8}\u{c}\n\r\té😀x"))
        );
        assert_eq!(p("\"h\u{e9}llo\""), Ok(s("héllo")));
        assert_eq!(
            err(br#""\ud83d""#),
            "lone surrogate in \\u escape at byte 1"
        );
        assert_eq!(
            err(br#""\ude00""#),
            "lone surrogate in \\u escape at byte 1"
        );
        assert_eq!(
            err(br#""ab\ud83d\u0041""#),
            "lone surrogate in \\u escape at byte 3"
        );
        assert_eq!(err(br#""\x""#), "invalid escape in string at byte 1");
        assert_eq!(err(br#""\u12g4""#), "invalid escape in string at byte 5");
    }

    #[test]
    fn strings_must_be_utf8_without_controls() {
        assert_eq!(err(b"\"ab\xff\""), "invalid UTF-8 in string at byte 3");
        assert_eq!(err(b"\"\xc3\""), "invalid UTF-8 in string at byte 1");
        assert_eq!(
            err(b"\"\xed\xa0\x80\""),
            "invalid UTF-8 in string at byte 1"
        );
        assert_eq!(
            err(b"\"a\nb\""),
            "unescaped control character in string at byte 2"
        );
        assert_eq!(err(b"\"abc"), "unexpected end of input at byte 0");
    }

    #[test]
    fn numbers_follow_the_grammar() {
        assert_eq!(err(b"01"), "unexpected data after the document at byte 1");
        assert_eq!(err(b"1."), "unexpected end of input at byte 2");
        assert_eq!(err(b"1.e5"), "unexpected character 'e' at byte 2");
        assert_eq!(err(b"+1"), "unexpected character '+' at byte 0");
        assert_eq!(err(b"-"), "unexpected end of input at byte 1");
        assert_eq!(err(b"[1e400]"), "number out of float range at byte 1");
        assert_eq!(err(b".5"), "unexpected character '.' at byte 0");
        let long = "1".repeat(MAX_INTEGER_DIGITS + 1);
        assert_eq!(
            err(long.as_bytes()),
            format!("integer longer than {MAX_INTEGER_DIGITS} digits at byte 0")
        );
    }

    #[test]
    fn structure_errors_give_offsets() {
        assert_eq!(err(b""), "unexpected end of input at byte 0");
        assert_eq!(err(b"[1,]"), "unexpected character ']' at byte 3");
        assert_eq!(err(b"[1 2]"), "unexpected character '2' at byte 3");
        assert_eq!(err(b"{\"a\" 1}"), "unexpected character '1' at byte 5");
        assert_eq!(err(b"{1:2}"), "unexpected character '1' at byte 1");
        assert_eq!(err(b"{\"a\":1,}"), "unexpected character '}' at byte 7");
        assert_eq!(err(b"[] x"), "unexpected data after the document at byte 3");
        assert_eq!(err(b"nul"), "unexpected end of input at byte 3");
        assert_eq!(err(b"tru3"), "unexpected character '3' at byte 3");
        assert_eq!(err(b"\x01"), "unexpected byte 0x01 at byte 0");
    }

    #[test]
    fn depth_is_limited_without_recursion() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(p(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(
            err(deep.as_bytes()),
            format!("nesting deeper than {MAX_DEPTH} at byte {MAX_DEPTH}")
        );
        let million = "[".repeat(1_000_000);
        assert!(err(million.as_bytes()).starts_with("nesting deeper"));
        let objects = "{\"a\":".repeat(1_000_000);
        assert!(err(objects.as_bytes()).starts_with("nesting deeper"));
    }
}
