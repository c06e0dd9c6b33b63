//! The exact fast path of the extractor ([`Extractor::extract_plain`]): plain objects, walked
//! by hand.
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
//!
//! How it is cheap: one loop over the values (no recursion: the open containers are a small
//! stack), each string's end found from the block's stops (`stops`: quotes, backslashes,
//! control and non-ASCII bytes, 64 bytes at a time) instead of byte by byte, each key passed
//! over or matched to its one candidate child by its shape, and kept strings left as
//! positions (`Scalar::Ascii`) that only the lines that are events make text.

use super::stops::Stops;
use super::{Extractor, SHARED, Scalar, Slots};

/// Well inside serde_json's recursion limit (128), so depth never makes serde_json refuse
/// a document accepted here: at most this many containers open at once.
const MAX_DEPTH: usize = 64;

/// Integers at configured paths with more digits than this go to serde_json (beyond 2^53
/// an `f64` rounds, and serde_json's rounding is its own).
const MAX_INT_DIGITS: usize = 15;

/// The letters after `\` that serde_json unescapes to one byte each (`\u` is left to it).
const ESCAPES: &[u8] = b"\"\\/bfnrt";

/// A value outside every configured path (no trie node).
const OUTSIDE: u32 = u32::MAX;

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

/// Whether two keys are equal, by a few overlapping word compares instead of a call to
/// `memcmp` (keys are short).
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
        let mut w = [0; N];
        w.copy_from_slice(&s[at..at + N]);
        w
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1 => a[0] == b[0],
        2..4 => word::<2>(a, 0) == word::<2>(b, 0) && word::<2>(a, n - 2) == word::<2>(b, n - 2),
        4..8 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        _ => {
            let mut i = 0;
            while i + 8 < n {
                if word::<8>(a, i) != word::<8>(b, i) {
                    return false;
                }
                i += 8;
            }
            word::<8>(a, n - 8) == word::<8>(b, n - 8)
        }
    }
}

/// Fills `out` from the object `json` starts with, or returns `None` (with `out` in any
/// state) when serde_json must decide.
pub(super) fn extract<'a>(ex: &Extractor, json: &'a [u8], out: &mut Slots<'a>) -> Option<()> {
    out.clear();
    if json.first() != Some(&b'{') {
        return None;
    }
    out.doc = json;
    let mut w = Walk {
        b: json,
        stops: Stops::new(json),
        ex,
    };
    w.document(out)
}

/// The contents of the string `b[start..end]`, which [`Walk::string`] accepted with escapes,
/// unescaped as serde_json does and appended to `out` (printable ASCII and the escapes'
/// control bytes: UTF-8). `None` only if it was not such a string. Its backslashes are
/// found by the document's stops (nothing else inside such a string is one), a shift and a
/// count each, instead of a `memchr` call per escape: a drain entry's message holds dozens.
fn unescape(
    stops: &mut Stops,
    b: &[u8],
    start: usize,
    end: usize,
    out: &mut Vec<u8>,
) -> Option<()> {
    // One allocation for the whole string (a drain entry's message grew the empty buffer
    // several times, a `realloc` and a copy each).
    out.reserve(end - start);
    let mut i = start;
    loop {
        let at = stops.next(i).min(end);
        out.extend_from_slice(b.get(i..at)?);
        if at == end {
            return Some(());
        }
        out.push(match *b.get(at + 1)? {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            c => c,
        });
        i = at + 2;
    }
}

/// Skips JSON whitespace (the four bytes serde_json skips) from `i`.
#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

struct Walk<'a, 's> {
    b: &'a [u8],
    stops: Stops<'a>,
    ex: &'s Extractor,
}

impl<'a> Walk<'a, '_> {
    #[inline(always)]
    fn keep(&self, node: u32, out: &mut Slots<'a>, v: Scalar<'a>) {
        if node != OUTSIDE {
            if let Some(slot) = self.ex.nodes[node as usize].slot {
                out.set(slot, v);
            }
        }
    }

    /// The whole document, iteratively: `open` holds the trie node of every open object (or
    /// [`OUTSIDE`]), `arrays` which of them are arrays. After each value the walk closes what
    /// ends there and moves to the next value, through its key inside an object.
    fn document(&mut self, out: &mut Slots<'a>) -> Option<()> {
        let b = self.b;
        let mut open = [OUTSIDE; MAX_DEPTH];
        let mut arrays = 0u64;
        let mut depth = 0;
        // The value at `i` and its trie node: first the root object, at the root node.
        let mut i = 0;
        let mut node = 0;
        loop {
            match *b.get(i)? {
                b'"' => {
                    let (start, end, escaped) = self.string(i)?;
                    i = end + 1;
                    if node != OUTSIDE && self.keep_str(node, start, end, escaped, out)? {
                        // The document is ignored if well-formed: nothing more is kept.
                        open[..depth].fill(OUTSIDE);
                        out.decided = true;
                    }
                }
                b'{' => {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    self.keep(node, out, Scalar::Composite);
                    open[depth] = node;
                    arrays &= !(1 << depth);
                    depth += 1;
                    i = ws(b, i + 1);
                    if *b.get(i)? != b'}' {
                        (node, i) = self.member(i, node)?;
                        continue;
                    }
                    i += 1;
                    depth -= 1;
                }
                b'[' => {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    self.keep(node, out, Scalar::Composite);
                    arrays |= 1 << depth;
                    depth += 1;
                    i = ws(b, i + 1);
                    if *b.get(i)? != b']' {
                        node = OUTSIDE;
                        continue;
                    }
                    i += 1;
                    depth -= 1;
                }
                b't' => i = self.literal(i, b"true", node, out, Scalar::Bool(true))?,
                b'f' => i = self.literal(i, b"false", node, out, Scalar::Bool(false))?,
                b'n' => i = self.literal(i, b"null", node, out, Scalar::Null)?,
                b'-' | b'0'..=b'9' => {
                    let (end, plain) = number(b, i)?;
                    if node != OUTSIDE {
                        // serde_json parses a number at a path in full (range errors,
                        // rounding, `-0`): only small non-negative integers are certain here.
                        let digits = &b[i..end];
                        if !plain || digits.len() > MAX_INT_DIGITS {
                            return None;
                        }
                        let n = digits
                            .iter()
                            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
                        // Exact: fewer than 2^53.
                        #[allow(clippy::cast_precision_loss)]
                        self.keep(node, out, Scalar::Num(n as f64));
                    }
                    i = end;
                }
                // Whitespace before a value: these lines have almost none, so it is a case
                // of the dispatch instead of a skip before every value.
                b' ' | b'\n' | b'\t' | b'\r' => {
                    i += 1;
                    continue;
                }
                _ => return None,
            }
            // After a value: close the containers that end here, then find the next value.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let top = depth - 1;
                let array = arrays & (1 << top) != 0;
                match *b.get(i)? {
                    b',' if array => {
                        i += 1;
                        node = OUTSIDE;
                        break;
                    }
                    b',' => {
                        (node, i) = self.member(ws(b, i + 1), open[top])?;
                        break;
                    }
                    b']' if array => {
                        i += 1;
                        depth = top;
                    }
                    b'}' if !array => {
                        i += 1;
                        depth = top;
                    }
                    b' ' | b'\n' | b'\t' | b'\r' => i += 1,
                    _ => return None,
                }
            }
        }
    }

    /// A member's key at `i` (a quote, or not a member): the key's trie node under `parent`
    /// and where its value starts (after the colon; the value dispatch skips whitespace).
    #[inline(always)]
    fn member(&mut self, i: usize, parent: u32) -> Option<(u32, usize)> {
        let b = self.b;
        if *b.get(i)? != b'"' {
            return None;
        }
        let (start, end, escaped) = self.string(i)?;
        if escaped {
            // A key is compared as serde_json unescapes it: left to serde_json.
            return None;
        }
        let child = if parent == OUTSIDE {
            OUTSIDE
        } else {
            self.child(parent, &b[start..end])
        };
        let mut i = end + 1;
        if *b.get(i)? != b':' {
            i = ws(b, i);
            if *b.get(i)? != b':' {
                return None;
            }
        }
        Some((child, i + 1))
    }

    /// The child of trie node `parent` for `key`, or [`OUTSIDE`]. Most keys are no configured
    /// path's: their shape alone passes over them, and the rest are compared with the one
    /// child of their shape.
    #[inline(always)]
    fn child(&self, parent: u32, key: &[u8]) -> u32 {
        let node = &self.ex.nodes[parent as usize];
        match node.by_shape[shape(key)] {
            0 => OUTSIDE,
            SHARED => node
                .children
                .iter()
                .find(|(k, _)| same(k.as_bytes(), key))
                .map_or(OUTSIDE, |&(_, c)| c as u32),
            n => match node.children.get(usize::from(n) - 1) {
                Some((k, c)) if same(k.as_bytes(), key) => *c as u32,
                _ => OUTSIDE,
            },
        }
    }

    /// Keeps the string `b[start..end]` at `node`'s slot, unescaped if it has escapes.
    /// `Some(true)` when it decides the document (`Extractor::decide_on`).
    fn keep_str(
        &mut self,
        node: u32,
        start: usize,
        end: usize,
        escaped: bool,
        out: &mut Slots<'a>,
    ) -> Option<bool> {
        let Some(slot) = self.ex.nodes[node as usize].slot else {
            return Some(false);
        };
        if escaped {
            if out.get(slot).is_none() {
                let (b, stops) = (self.b, &mut self.stops);
                let v = out.own(|text| unescape(stops, b, start, end, text))?;
                out.set(slot, v);
            }
            return Some(false);
        }
        let kept = out.set(slot, Scalar::Ascii { start, end });
        Some(
            kept && self.ex.decisive.as_ref().is_some_and(|d| {
                d.slot == slot && !d.names.iter().any(|n| same(n, &self.b[start..end]))
            }),
        )
    }

    fn literal(
        &self,
        i: usize,
        word: &[u8],
        node: u32,
        out: &mut Slots<'a>,
        v: Scalar<'a>,
    ) -> Option<usize> {
        if !self.b[i..].starts_with(word) {
            return None;
        }
        self.keep(node, out, v);
        Some(i + word.len())
    }

    /// `"` at `i`: where the string's contents start and end, and whether they hold escapes,
    /// if they are printable ASCII with only the one-letter escapes (`\"`, `\n`…; `\u` goes
    /// to serde_json). A drain entry's `message` is such a string: its inner line is taken
    /// here instead of by a second parse of the whole entry. The end is the first stop after
    /// the opening quote; a backslash there hands over to [`Walk::escaped`], kept out of
    /// line because nearly every string has none.
    #[inline(always)]
    fn string(&mut self, i: usize) -> Option<(usize, usize, bool)> {
        let start = i + 1;
        let end = self.stops.next(start);
        match *self.b.get(end)? {
            b'"' => Some((start, end, false)),
            b'\\' => self.escaped(start, end),
            _ => None,
        }
    }

    /// The rest of a string from a backslash at `i`.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, start: usize, mut i: usize) -> Option<(usize, usize, bool)> {
        loop {
            match *self.b.get(i)? {
                b'"' => return Some((start, i, true)),
                b'\\' if ESCAPES.contains(self.b.get(i + 1)?) => i = self.stops.next(i + 2),
                _ => return None,
            }
        }
    }
}

/// A number at `i` in JSON's grammar: where it ends and whether it is a plain integer (no
/// sign, fraction or exponent).
fn number(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut plain = true;
    if *b.get(i)? == b'-' {
        plain = false;
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        plain = false;
        if !b.get(i + 1)?.is_ascii_digit() {
            return None;
        }
        i = digits(i + 1);
    }
    if let Some(b'e' | b'E') = b.get(i) {
        plain = false;
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        if !b.get(i)?.is_ascii_digit() {
            return None;
        }
        i = digits(i);
    }
    // `01`, `1.5.2`: let serde_json say what is wrong.
    if b.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some((i, plain))
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
                    (
                        proptest::sample::select(KEYS),
                        ws(),
                        inner.clone(),
                        ws(),
                        ws()
                    ),
                    0..6
                )
                .prop_map(|members| {
                    let body: Vec<String> = members
                        .into_iter()
                        .map(|(k, w1, v, w2, w3)| format!("\"{k}\"{w1}:{w2}{v}{w3}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
                proptest::collection::vec((ws(), inner, ws()), 0..5).prop_map(|items| {
                    let body: Vec<String> =
                        items.into_iter().map(|(w, v, w2)| w + &v + &w2).collect();
                    format!("[{}]", body.join(","))
                }),
            ]
        })
    }

    /// A document, then maybe broken: cut short, a byte put in, junk after it.
    fn document() -> impl Strategy<Value = Vec<u8>> {
        // whitespace around every token, as serde_json allows it (and a few bytes it does not)
        let object = proptest::collection::vec(
            (
                ws(),
                proptest::sample::select(KEYS),
                ws(),
                value(),
                ws(),
                ws(),
            ),
            0..8,
        )
        .prop_map(|members| {
            let body: Vec<String> = members
                .into_iter()
                .map(|(w0, k, w1, v, w2, w3)| format!("{w0}\"{k}\"{w1}:{w2}{v}{w3}"))
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
        fast.resolve();
        let mut slow = Slots::default();
        let serde = ex.extract_serde(doc, &mut slow);
        if accepted {
            prop_assert!(serde.is_ok(), "{}: {serde:?}", String::from_utf8_lossy(doc));
            prop_assert_eq!(fast.view(), slow.view(), "{}", String::from_utf8_lossy(doc));
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

    /// Pieces of a string with every escape the fast path unescapes itself.
    const PIECES: &[&str] = &[
        "a", "x y", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A kept string with escapes is unescaped as serde_json does. (The documents above
        /// reach a kept path with an escaped string as its value too rarely for this: a
        /// wrong unescape passed all their cases.)
        #[test]
        fn kept_strings_are_unescaped_as_serde_json_does(
            key in proptest::sample::select(&["event", "sessionId", "time", "message"][..]),
            pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..8),
        ) {
            let doc = format!("{{\"x\":1,\"{key}\":\"{}\",\"ts\":\"\\n\"}}", pieces.concat());
            prop_assert!(agree(&extractor(), doc.as_bytes())?, "not taken by the fast path: {doc}");
        }
    }

    /// An extractor that decides on `event`, with `claimed` the one name of interest.
    fn decisive() -> (Extractor, usize) {
        let mut ex = extractor();
        let slot = ex.slot(&FieldPath(vec!["event".to_owned()]));
        ex.decide_on(slot, vec![b"claimed".as_slice().into()]);
        (ex, slot)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Deciding on a slot stops only the keeping: whatever the fast path accepts,
        /// serde_json accepts, with the same value at the decisive slot, and with every
        /// value alike when that value is one of the names.
        #[test]
        fn a_decided_document_is_still_checked_to_its_end(doc in document()) {
            let (ex, slot) = decisive();
            let mut fast = Slots::default();
            let accepted = super::extract(&ex, &doc, &mut fast).is_some();
            fast.resolve();
            let mut slow = Slots::default();
            let serde = ex.extract_serde(&doc, &mut slow);
            if accepted {
                prop_assert!(serde.is_ok(), "{}: {serde:?}", String::from_utf8_lossy(&doc));
                let at = |s: &Slots| s.view().into_iter().find(|(k, _)| *k == slot);
                prop_assert_eq!(at(&fast), at(&slow), "{}", String::from_utf8_lossy(&doc));
                let decided = fast.get(slot).and_then(|v| fast.text(v)).is_some_and(|s| s != "claimed");
                // the flag parse ignores a document by says no more than its value
                prop_assert!(decided || !fast.decided(), "{}", String::from_utf8_lossy(&doc));
                if !decided {
                    prop_assert_eq!(fast.view(), slow.view(), "{}", String::from_utf8_lossy(&doc));
                }
            }
        }
    }

    /// A decided document keeps nothing after the deciding value, and a document whose
    /// value is a name keeps everything.
    #[test]
    fn a_decided_document_keeps_nothing_after_its_value() {
        let (ex, slot) = decisive();
        let session = ex.nodes[0]
            .children
            .iter()
            .find(|(k, _)| &**k == "sessionId")
            .and_then(|&(_, n)| ex.nodes[n].slot)
            .unwrap_or_else(|| panic!("no sessionId slot"));
        let mut out = Slots::default();
        let doc = br#"{"event":"lease_renewed","sessionId":"s1","state":"claimed"}"#;
        assert!(super::extract(&ex, doc, &mut out).is_some());
        assert_eq!(
            out.bytes(out.get(slot).unwrap()),
            Some(&b"lease_renewed"[..])
        );
        assert_eq!(out.get(session), None);
        assert!(out.decided());
        // a name's length is not a name
        let doc = br#"{"event":"claimex","sessionId":"s1"}"#;
        assert!(super::extract(&ex, doc, &mut out).is_some());
        assert_eq!(out.get(session), None);
        assert!(out.decided());
        let doc = br#"{"event":"claimed","sessionId":"s1"}"#;
        assert!(super::extract(&ex, doc, &mut out).is_some());
        assert!(out.get(session).is_some());
        assert!(!out.decided());
        // only the first value at the slot decides, and only a string
        for doc in [
            &br#"{"event":"claimed","event":"x","sessionId":"s1"}"#[..],
            br#"{"event":null,"sessionId":"s1"}"#,
            br#"{"event":1,"sessionId":"s1"}"#,
        ] {
            assert!(super::extract(&ex, doc, &mut out).is_some());
            assert!(!out.decided(), "{}", String::from_utf8_lossy(doc));
        }
        let doc = br#"{"event":"x","event":"claimed"}"#;
        assert!(super::extract(&ex, doc, &mut out).is_some());
        assert!(out.decided());
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
