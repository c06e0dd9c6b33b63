//! The exact fast path of [`Extractor::extract`]: plain objects, walked by hand.
//!
//! Why: most lines that reach the parser are the services' own JSON lines that hold one of
//! our event names as another key's value (`"queue":"dispatch"`, `"state":"claimed"`), and
//! each must still be proved well-formed before it is ignored (a broken one is a rejection).
//! serde_json's visitor walk was the largest cost per candidate line.
//!
//! Exactness comes from only ever *accepting*: the walk answers `Some` only for a document
//! that serde_json accepts with the very same slots, and `None` for anything it is not sure
//! of, which then goes through serde_json as before (so every error, and every rejection
//! reason, is still serde_json's). It is sure of objects whose strings are printable ASCII
//! without escapes, nested at most [`MAX_DEPTH`] deep, and whose configured paths hold
//! strings, literals, containers or small non-negative integers. A differential property
//! test holds it to serde_json on arbitrary and adversarial documents.

use std::borrow::Cow;

use super::{Extractor, Scalar, Slots};

/// Well inside serde_json's recursion limit (128), so depth never makes serde_json refuse
/// a document accepted here.
const MAX_DEPTH: usize = 64;

/// Integers at configured paths with more digits than this go to serde_json (beyond 2^53
/// an `f64` rounds, and serde_json's rounding is its own).
const MAX_INT_DIGITS: usize = 15;

/// The letters after `\` that serde_json unescapes to one byte each (`\u` is left to it).
const ESCAPES: &[u8] = b"\"\\/bfnrt";

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// A key's shape, 0..256, from its length and its first and last bytes: equal keys have
/// equal shapes, so a node whose children have none of a key's shape has no such child.
pub(super) fn shape(key: &[u8]) -> usize {
    let (first, last) = match key {
        [] => (0, 0),
        [f, .., l] => (*f, *l),
        [f] => (*f, *f),
    };
    (key.len().wrapping_mul(31) ^ usize::from(first).wrapping_mul(7) ^ usize::from(last)) & 255
}

/// Fills `out` from the object `json` starts with, or returns `None` (with `out` in any
/// state) when serde_json must decide.
pub(super) fn extract<'a>(ex: &Extractor, json: &'a [u8], out: &mut Slots<'a>) -> Option<()> {
    out.clear();
    if json.first() != Some(&b'{') {
        return None;
    }
    let mut w = Walk {
        b: json,
        text: std::str::from_utf8(json).ok(),
        i: 0,
        ex,
    };
    w.value(Some(0), 0, out)
}

/// The contents of a string [`Walk::string`] accepted with escapes, unescaped as serde_json
/// does. `None` only if it was not such a string.
fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(at) = memchr::memchr(b'\\', &raw[i..]) {
        out.extend_from_slice(&raw[i..i + at]);
        out.push(match raw.get(i + at + 1)? {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            c => *c,
        });
        i += at + 2;
    }
    out.extend_from_slice(&raw[i..]);
    String::from_utf8(out).ok()
}

struct Walk<'a, 's> {
    b: &'a [u8],
    /// `b` as text, if it is UTF-8 (bytes after the object may not be): kept strings are
    /// cut from it. One check of the whole line costs less than a `from_utf8` call per
    /// kept string (about 110 instructions each on these short strings).
    text: Option<&'a str>,
    i: usize,
    ex: &'s Extractor,
}

impl<'a> Walk<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips JSON whitespace (the four bytes serde_json skips).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn set(&self, node: Option<usize>, out: &mut Slots<'a>, v: Scalar<'a>) {
        if let Some(slot) = node.and_then(|n| self.ex.nodes[n].slot) {
            out.set(slot, v);
        }
    }

    /// The value at `self.i`, found at trie node `node` (`None`: outside every path).
    fn value(&mut self, node: Option<usize>, depth: usize, out: &mut Slots<'a>) -> Option<()> {
        match self.peek()? {
            b'"' => {
                let (start, end, escaped) = self.string()?;
                if let Some(slot) = node.and_then(|n| self.ex.nodes[n].slot) {
                    let raw = &self.b[start..end];
                    let s = if escaped {
                        Cow::Owned(unescape(raw)?)
                    } else {
                        // Printable ASCII, so always UTF-8: the check is for the type only.
                        Cow::Borrowed(match self.text {
                            Some(text) => text.get(start..end)?,
                            None => std::str::from_utf8(raw).ok()?,
                        })
                    };
                    out.set(slot, Scalar::Str(s));
                }
            }
            b'{' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.set(node, out, Scalar::Composite);
                self.object(node, depth + 1, out)?;
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.set(node, out, Scalar::Composite);
                self.array(depth + 1, out)?;
            }
            b't' => self.literal(b"true", node, out, Scalar::Bool(true))?,
            b'f' => self.literal(b"false", node, out, Scalar::Bool(false))?,
            b'n' => self.literal(b"null", node, out, Scalar::Null)?,
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                let plain = self.number()?;
                if node.is_some() {
                    // serde_json parses a number at a path in full (range errors, rounding,
                    // `-0`): only small non-negative integers are certain here.
                    let digits = &self.b[start..self.i];
                    if !plain || digits.len() > MAX_INT_DIGITS {
                        return None;
                    }
                    let n = digits
                        .iter()
                        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
                    // Exact: fewer than 2^53.
                    #[allow(clippy::cast_precision_loss)]
                    self.set(node, out, Scalar::Num(n as f64));
                }
            }
            _ => return None,
        }
        Some(())
    }

    fn literal(
        &mut self,
        word: &[u8],
        node: Option<usize>,
        out: &mut Slots<'a>,
        v: Scalar<'a>,
    ) -> Option<()> {
        if !self.b[self.i..].starts_with(word) {
            return None;
        }
        self.i += word.len();
        self.set(node, out, v);
        Some(())
    }

    /// `{` at `self.i`: its members, looking each key up among `node`'s children.
    fn object(&mut self, node: Option<usize>, depth: usize, out: &mut Slots<'a>) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let (start, end, escaped) = self.string()?;
            if escaped {
                // A key is compared as serde_json unescapes it: left to serde_json.
                return None;
            }
            let key = &self.b[start..end];
            // Most keys are no configured path's: their shape alone passes over them, and
            // the rest are compared by length and first byte before in full.
            let child = node.and_then(|n| {
                let node = &self.ex.nodes[n];
                let sh = shape(key);
                if node.shapes[sh / 64] & (1 << (sh % 64)) == 0 {
                    return None;
                }
                node.children
                    .iter()
                    .find(|(k, _)| {
                        let k = k.as_bytes();
                        k.len() == key.len() && k.first() == key.first() && k == key
                    })
                    .map(|&(_, c)| c)
            });
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            self.ws();
            self.value(child, depth, out)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[` at `self.i`: its elements, outside every path (serde_json ignores them too).
    fn array(&mut self, depth: usize, out: &mut Slots<'a>) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.value(None, depth, out)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `"` at `self.i`: where the string's contents start and end, and whether they hold
    /// escapes, if they are printable ASCII with only the one-letter escapes (`\"`, `\n`…;
    /// `\u` goes to serde_json). A drain entry's `message` is such a string: its inner line
    /// is taken here instead of by a second parse of the whole entry. Eight bytes at a time:
    /// the first quote, backslash, control or non-ASCII byte of a word is found exactly by the
    /// word's lowest flagged byte (borrows in these tests only ever run upwards from a byte
    /// that is itself flagged). Strings without escapes (nearly all) never leave this loop;
    /// the first backslash hands over to [`Walk::escaped`], kept out of line so as not to
    /// slow them down (inline, it cost more than the second parse of the drain entries).
    #[inline(always)]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.i + 1;
        let i = self.special(start);
        match self.b.get(i)? {
            b'"' => {
                self.i = i + 1;
                Some((start, i, false))
            }
            b'\\' => self.escaped(start, i),
            _ => None,
        }
    }

    /// The first quote, backslash, control or non-ASCII byte at or after `i` (0x7f, DEL, is
    /// printable ASCII to JSON and serde_json alike), or the end of the document.
    #[inline(always)]
    fn special(&self, mut i: usize) -> usize {
        let b = self.b;
        while let Some(word) = b.get(i..i + 8) {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(word);
            let x = u64::from_le_bytes(bytes);
            let quote = x ^ (ONES * u64::from(b'"'));
            let slash = x ^ (ONES * u64::from(b'\\'));
            let special = ((quote.wrapping_sub(ONES) & !quote)
                | (slash.wrapping_sub(ONES) & !slash)
                | (x.wrapping_sub(ONES * 0x20) & !x)
                | x)
                & HIGH;
            if special != 0 {
                return i + (special.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        // The last few bytes of the document, one at a time.
        while let Some(&c) = b.get(i) {
            match c {
                0x20..=0x7f if c != b'"' && c != b'\\' => i += 1,
                _ => break,
            }
        }
        i
    }

    /// The rest of a string from its first backslash, at `i`.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, start: usize, mut i: usize) -> Option<(usize, usize, bool)> {
        loop {
            match self.b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some((start, i, true));
                }
                b'\\' if ESCAPES.contains(self.b.get(i + 1)?) => i = self.special(i + 2),
                _ => return None,
            }
        }
    }

    /// A number at `self.i` in JSON's grammar; whether it is a plain integer (no sign,
    /// fraction or exponent).
    fn number(&mut self) -> Option<bool> {
        let b = self.b;
        let mut plain = true;
        if self.peek()? == b'-' {
            plain = false;
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            plain = false;
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            plain = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        // `01`, `1.5.2`: let serde_json say what is wrong.
        if b.get(self.i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        Some(plain)
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{Extractor, Slots};
    use crate::parse::config::FieldPath;

    fn extractor() -> Extractor {
        let mut ex = Extractor::new();
        for p in [
            "event",
            "context.event",
            "context.sessionId",
            "sessionId",
            "time",
            "ts",
            "a.b.c",
            "a.b",
            "arr",
            "message",
        ] {
            ex.slot(&FieldPath(p.split('.').map(str::to_owned).collect()));
        }
        ex
    }

    const KEYS: &[&str] = &[
        "event",
        "context",
        "sessionId",
        "time",
        "ts",
        "a",
        "b",
        "c",
        "arr",
        "x",
        "",
        "\u{e9}",
        "ev\\u0065nt",
        "k\\\"q",
    ];
    const STRINGS: &[&str] = &[
        "claimed",
        "",
        "x y",
        "2026-11-23T10:00:00Z",
        "\\n",
        "\\u0041",
        "\\ud800",
        "\u{e9}",
        "\u{7f}",
        "\\\"",
        "\t",
        "\\",
        "\\x",
    ];
    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "1",
        "42",
        "123456789012345",
        "1234567890123456",
        "99999999999999999999999",
        "1.5",
        "1e400",
        "-1e400",
        "-1",
        "01",
        "1.",
        "1e",
        "-",
        "1E+2",
        "0.0e-0",
        "- 1",
    ];
    const LITERALS: &[&str] = &["true", "false", "null", "tru", "nul", "True"];
    const SPACES: &[&str] = &["", "", "", " ", "\n", "\t", "\r", "\u{b}", "\u{c}"];

    fn ws() -> impl Strategy<Value = String> {
        proptest::sample::select(SPACES).prop_map(str::to_owned)
    }

    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            3 => proptest::sample::select(STRINGS).prop_map(|s| format!("\"{s}\"")),
            2 => proptest::sample::select(NUMBERS).prop_map(str::to_owned),
            1 => proptest::sample::select(LITERALS).prop_map(str::to_owned),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(
                    (proptest::sample::select(KEYS), ws(), inner.clone(), ws()),
                    0..6
                )
                .prop_map(|members| {
                    let body: Vec<String> = members
                        .into_iter()
                        .map(|(k, w1, v, w2)| format!("\"{k}\"{w1}:{w2}{v}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
                proptest::collection::vec((ws(), inner), 0..5).prop_map(|items| {
                    let body: Vec<String> = items.into_iter().map(|(w, v)| w + &v).collect();
                    format!("[{}]", body.join(","))
                }),
            ]
        })
    }

    /// A document, then maybe broken: cut short, a byte put in, junk after it.
    fn document() -> impl Strategy<Value = Vec<u8>> {
        let object =
            proptest::collection::vec((proptest::sample::select(KEYS), ws(), value(), ws()), 0..8)
                .prop_map(|members| {
                    let body: Vec<String> = members
                        .into_iter()
                        .map(|(k, w1, v, w2)| format!("\"{k}\"{w1}:{w2}{v}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                });
        (object, 0u8..6, any::<prop::sample::Index>(), any::<u8>()).prop_map(
            |(doc, how, at, byte)| {
                let mut d = doc.into_bytes();
                let i = at.index(d.len() + 1);
                match how {
                    0 => d.truncate(i),
                    1 => d.insert(i, byte),
                    2 => d.extend_from_slice(b" trailing, {]"),
                    3 if i < d.len() => {
                        d.remove(i);
                    }
                    _ => {}
                }
                d
            },
        )
    }

    fn agree(ex: &Extractor, doc: &[u8]) -> Result<bool, TestCaseError> {
        let mut fast = Slots::default();
        let accepted = super::extract(ex, doc, &mut fast).is_some();
        let mut slow = Slots::default();
        let serde = ex.extract_serde(doc, &mut slow);
        if accepted {
            prop_assert!(serde.is_ok(), "{}: {serde:?}", String::from_utf8_lossy(doc));
            prop_assert_eq!(&fast.items, &slow.items, "{}", String::from_utf8_lossy(doc));
        }
        Ok(accepted)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Whatever the fast path accepts, serde_json accepts with the same slots.
        #[test]
        fn accepts_only_what_serde_json_accepts_alike(doc in document()) {
            agree(&extractor(), &doc)?;
        }
    }

    /// The lines it exists for are taken by the fast path (the property above cannot fail by
    /// accepting nothing), and what it is unsure of goes to serde_json.
    #[test]
    fn takes_plain_service_lines_and_leaves_the_rest() {
        let ex = extractor();
        let run = |doc: &str| agree(&ex, doc.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        for doc in [
            r#"{"time":"2026-11-23T10:00:01.000Z","level":"debug","service":"dispatcher","queue":"dispatch","event":"lease_renewed","sessionId":"s1","state":"claimed","leaseMs":30000,"attempt":1}"#,
            r#"{"timestamp":"2026-11-23T10:00:01Z","level":"debug","context":{"event":"worker_stats","workerId":"w1","claimedTotal":3,"ok":true,"gone":null,"tags":[1,{"a":[]}]}} trailing"#,
            "{ \"ts\" : 1795428000000 ,\n\"a\":{\"b\":{\"c\":\"deep\"}}, \"arr\":[] }",
            "{}",
            // a drain entry: its message's escapes are taken here, not by a second parse
            r#"{"id":"1795428000123-abc","message":"{\"event\":\"dispatch\",\"sessionId\":\"s1\"}\n","timestamp":1795428000123,"source":"lambda"}"#,
            r#"{"event":"claimed","sessionId":"s\"1\\\/\b\f\n\r\t"}"#,
        ] {
            assert!(run(doc), "{doc}");
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(70), "]".repeat(70));
        for doc in [
            r#"{"event":"claimed","sessionId":"s\u0031"}"#,
            r#"{"event":"claimed","sessionId":"s\x"}"#,
            r#"{"ev\"ent":"claimed"}"#,
            "{\"event\":\"clai\u{e9}med\"}",
            r#"{"ts":1795428000.5}"#,
            r#"{"ts":-0}"#,
            r#"{"event":"claimed","sessionId":"s1""#,
            r#"{"a":1,}"#,
            "[1]",
            deep.as_str(),
        ] {
            assert!(!run(doc), "{doc}");
        }
    }
}
