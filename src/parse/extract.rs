//! Pulls a fixed set of dotted paths out of a JSON object in one pass, without building a tree.
//!
//! Why by hand: serde_json's `Value` allocates every key and value of every line, and a typed
//! struct cannot follow paths that come from configuration. Walking the document with a
//! `DeserializeSeed` over a trie of the configured paths keeps serde_json's full validation
//! (truncated or invalid JSON is still an error) while borrowing the few strings we need and
//! skipping everything else with `IgnoredAny`.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::config::FieldPath;

mod plain;
mod stops;

/// A leaf value found at a configured path. `Copy`, owning nothing: a line's slots are
/// dropped without a look at each value (the drop of `Cow` strings was 64 instructions a
/// candidate line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// A string as the document spells it (no escapes).
    Str(&'a str),
    /// A string unescaped into the slots' own text ([`Slots::text`]), at `start..end`.
    Owned {
        start: usize,
        end: usize,
    },
    /// A string the fast path proved to be printable ASCII without escapes, left as where
    /// it lies in the document until [`Slots::resolve`] makes it a `Str`: most lines that
    /// reach the parser are ignored on their event name alone, which is compared as bytes
    /// ([`Slots::bytes`]), and never need their text.
    Ascii {
        start: usize,
        end: usize,
    },
    Num(f64),
    Bool(bool),
    Null,
    /// An object or array where a scalar was expected.
    Composite,
}

#[derive(Debug)]
struct Node {
    children: Vec<(Box<str>, usize)>,
    slot: Option<usize>,
    /// The children by key shape (`plain::shape`): 0 when no child has that shape, `i + 1`
    /// when child `i` alone has it, [`SHARED`] when several do. The fast path passes over
    /// most keys of a line, which are no configured path's, on their shape alone, and
    /// compares the others with one child.
    by_shape: [u8; 256],
}

/// In [`Node::by_shape`]: several children have this shape, search them all.
const SHARED: u8 = u8::MAX;

impl Default for Node {
    fn default() -> Node {
        Node {
            children: Vec::new(),
            slot: None,
            by_shape: [0; 256],
        }
    }
}

/// A trie of paths; each path ends in a numbered slot.
#[derive(Debug)]
pub struct Extractor {
    nodes: Vec<Node>,
    slots: usize,
    /// The slot whose first value decides the document's fate ([`Extractor::decide_on`]).
    decisive: Option<Decisive>,
}

/// A slot and the strings at it that keep a document of interest: the first value at the
/// slot that is a string outside `names` makes every other value of the document moot.
#[derive(Debug)]
struct Decisive {
    slot: usize,
    names: Vec<Box<[u8]>>,
}

/// The values found in one document, by slot. A line holds a handful of the configured
/// paths, so a short list beats a dense table that would be reset for every line.
#[derive(Debug, Default)]
pub struct Slots<'a> {
    items: smallvec::SmallVec<[(usize, Scalar<'a>); 12]>,
    /// The document the fast path walked, which its `Ascii` values point into.
    doc: &'a [u8],
    /// Bit `s` set: slot `s` (below 64) is in `items`. A line sets a handful of slots and
    /// parse asks for about twenty, most of them absent: the bit answers without a search.
    held: u64,
    /// The bytes of the `Owned` strings, one after another: what the fast path unescapes
    /// (checked to be UTF-8 when read, by [`Slots::text`]) and what serde_json made text.
    owned: Vec<u8>,
    /// The fast path met the decisive slot's first value and it is none of the names
    /// ([`Extractor::decide_on`]): the document, once accepted, is of no interest.
    decided: bool,
}

impl<'a> Slots<'a> {
    #[inline(always)]
    pub fn get(&self, slot: usize) -> Option<&Scalar<'a>> {
        if slot < 64 && self.held & (1 << slot) == 0 {
            return None;
        }
        self.items.iter().find(|(s, _)| *s == slot).map(|(_, v)| v)
    }

    /// The contents of a string value (`Str`, `Owned` or `Ascii`).
    pub fn bytes<'s>(&'s self, v: &Scalar<'a>) -> Option<&'s [u8]> {
        match *v {
            Scalar::Str(s) => Some(s.as_bytes()),
            Scalar::Owned { start, end } => self.owned.get(start..end),
            Scalar::Ascii { start, end } => self.doc.get(start..end),
            _ => None,
        }
    }

    /// Whether the fast path found the decisive slot's first value to be a string outside
    /// its names ([`Extractor::decide_on`]): the caller ignores such a document, and the
    /// slots then hold little of it.
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// The text of a string value (`Str` or `Owned`; an `Ascii` one once resolved).
    pub fn text<'s>(&'s self, v: &Scalar<'a>) -> Option<&'s str> {
        match *v {
            Scalar::Str(s) => Some(s),
            Scalar::Owned { start, end } => std::str::from_utf8(self.owned.get(start..end)?).ok(),
            _ => None,
        }
    }

    /// What `write` appends to the slots' text, as an `Owned` string (`None`, and nothing
    /// kept, if `write` fails).
    fn own(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Option<()>) -> Option<Scalar<'a>> {
        let start = self.owned.len();
        if write(&mut self.owned).is_none() {
            self.owned.truncate(start);
            return None;
        }
        Some(Scalar::Owned {
            start,
            end: self.owned.len(),
        })
    }

    /// Every value by slot, strings as their text: the slots' contents, however held.
    #[cfg(test)]
    fn view(&self) -> Vec<(usize, String)> {
        self.items
            .iter()
            .map(|(s, v)| match self.bytes(v) {
                Some(b) => (*s, format!("str {}", String::from_utf8_lossy(b))),
                None => (*s, format!("{v:?}")),
            })
            .collect()
    }

    /// Makes every `Ascii` value a `Str`, borrowed from the document: one UTF-8 check of
    /// the whole document (cheaper than one per string), or, if bytes after the object are
    /// not UTF-8, one per string (always UTF-8: they are printable ASCII).
    pub fn resolve(&mut self) {
        if !self
            .items
            .iter()
            .any(|(_, v)| matches!(v, Scalar::Ascii { .. }))
        {
            return;
        }
        let doc = self.doc;
        let whole = std::str::from_utf8(doc).ok();
        for (_, v) in &mut self.items {
            if let Scalar::Ascii { start, end } = *v {
                let text = whole
                    .and_then(|t| t.get(start..end))
                    .or_else(|| std::str::from_utf8(doc.get(start..end)?).ok());
                if let Some(s) = text {
                    *v = Scalar::Str(s);
                }
            }
        }
    }

    /// The first occurrence of a path wins: `false` when `slot` already had a value.
    #[inline(always)]
    fn set(&mut self, slot: usize, v: Scalar<'a>) -> bool {
        if slot < 64 {
            if self.held & (1 << slot) != 0 {
                return false;
            }
            self.held |= 1 << slot;
        } else if self.items.iter().any(|(s, _)| *s == slot) {
            return false;
        }
        self.items.push((slot, v));
        true
    }

    fn clear(&mut self) {
        self.items.clear();
        self.held = 0;
        self.owned.clear();
        self.decided = false;
    }
}

impl Extractor {
    pub fn new() -> Extractor {
        Extractor {
            nodes: vec![Node::default()],
            slots: 0,
            decisive: None,
        }
    }

    /// Declares that the caller ignores every document whose first value at `slot` is a
    /// string other than `names` (parse: the first event path holding no event name of
    /// ours), whatever else it holds, once it is known to be well-formed. The fast path then
    /// keeps no values after such a string, and only checks the rest of the document: most
    /// candidate lines are the services' own events, which hold one of our names as
    /// another key's value. The slots it returns then hold that string, and perhaps some
    /// values before it.
    pub fn decide_on(&mut self, slot: usize, names: Vec<Box<[u8]>>) {
        self.decisive = Some(Decisive { slot, names });
    }

    /// Registers a path and returns its slot; the same path twice gets the same slot.
    pub fn slot(&mut self, path: &FieldPath) -> usize {
        let mut node = 0;
        for seg in &path.0 {
            let found = self.nodes[node].children.iter().find(|(k, _)| **k == **seg);
            node = match found {
                Some(&(_, child)) => child,
                None => {
                    self.nodes.push(Node::default());
                    let child = self.nodes.len() - 1;
                    let parent = &mut self.nodes[node];
                    parent.children.push((seg.as_str().into(), child));
                    let shape = &mut parent.by_shape[plain::shape(seg.as_bytes())];
                    *shape = match (*shape, u8::try_from(parent.children.len())) {
                        (0, Ok(n)) if n < SHARED => n,
                        _ => SHARED,
                    };
                    child
                }
            };
        }
        *self.nodes[node].slot.get_or_insert_with(|| {
            self.slots += 1;
            self.slots - 1
        })
    }

    /// Fills `out` (one entry per slot) from the object in `json`; the first occurrence of a
    /// path wins. Bytes after the object are ignored. Errors on anything that is not a
    /// well-formed JSON object. (The parser runs the two paths itself, to decide between
    /// them whether a line needs serde_json at all.)
    #[cfg(test)]
    pub fn extract<'de>(
        &self,
        json: &'de [u8],
        out: &mut Slots<'de>,
    ) -> Result<(), serde_json::Error> {
        if self.extract_plain(json, out) {
            out.resolve();
            return Ok(());
        }
        self.extract_serde(json, out)
    }

    /// [`Extractor::extract`] by the exact fast path alone (`plain`): `false` when serde_json
    /// must decide. Strings may be left `Ascii` until [`Slots::resolve`].
    pub fn extract_plain<'de>(&self, json: &'de [u8], out: &mut Slots<'de>) -> bool {
        plain::extract(self, json, out).is_some()
    }

    /// [`Extractor::extract`] by serde_json alone: the rule the fast path is held to.
    pub fn extract_serde<'de>(
        &self,
        json: &'de [u8],
        out: &mut Slots<'de>,
    ) -> Result<(), serde_json::Error> {
        out.clear();
        let mut de = serde_json::Deserializer::from_slice(json);
        ObjectSeed {
            ex: self,
            node: 0,
            out,
        }
        .deserialize(&mut de)
    }
}

impl Default for Extractor {
    fn default() -> Self {
        Extractor::new()
    }
}

/// Deserializes the root, which must be an object.
struct ObjectSeed<'s, 'de> {
    ex: &'s Extractor,
    node: usize,
    out: &'s mut Slots<'de>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(ObjectVisitor(ValueSeed {
            ex: self.ex,
            node: self.node,
            out: self.out,
        }))
    }
}

struct ObjectVisitor<'s, 'de>(ValueSeed<'s, 'de>);

impl<'de> Visitor<'de> for ObjectVisitor<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.visit_map(map)
    }
}

/// Deserializes the value at one trie node: a scalar goes to the node's slot, an object is
/// walked for the node's children.
struct ValueSeed<'s, 'de> {
    ex: &'s Extractor,
    node: usize,
    out: &'s mut Slots<'de>,
}

impl<'de> ValueSeed<'_, 'de> {
    fn set(&mut self, v: Scalar<'de>) {
        if let Some(slot) = self.ex.nodes[self.node].slot {
            self.out.set(slot, v);
        }
    }

    fn set_owned(&mut self, text: &str) {
        if let Some(slot) = self.ex.nodes[self.node].slot {
            if self.out.get(slot).is_none() {
                let v = self.out.own(|t| {
                    t.extend_from_slice(text.as_bytes());
                    Some(())
                });
                if let Some(v) = v {
                    self.out.set(slot, v);
                }
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Looks a key up among a node's children without allocating.
struct KeySeed<'s> {
    ex: &'s Extractor,
    node: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        let children = &self.ex.nodes[self.node].children;
        Ok(children.iter().find(|(k, _)| **k == *key).map(|&(_, c)| c))
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(mut self, v: &'de str) -> Result<(), E> {
        self.set(Scalar::Str(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.set_owned(v);
        Ok(())
    }
    fn visit_string<E: de::Error>(mut self, v: String) -> Result<(), E> {
        self.set_owned(&v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.set(Scalar::Num(v as f64));
        Ok(())
    }
    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.set(Scalar::Num(v as f64));
        Ok(())
    }
    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        self.set(Scalar::Num(v));
        Ok(())
    }
    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
        self.set(Scalar::Bool(v));
        Ok(())
    }
    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.set(Scalar::Null);
        Ok(())
    }
    fn visit_none<E: de::Error>(mut self) -> Result<(), E> {
        self.set(Scalar::Null);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.set(Scalar::Composite);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.set(Scalar::Composite);
        while let Some(child) = map.next_key_seed(KeySeed {
            ex: self.ex,
            node: self.node,
        })? {
            match child {
                Some(node) => map.next_value_seed(ValueSeed {
                    ex: self.ex,
                    node,
                    out: &mut *self.out,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> FieldPath {
        FieldPath(p.split('.').map(str::to_owned).collect())
    }

    #[test]
    fn finds_nested_paths_and_skips_the_rest() {
        let mut ex = Extractor::new();
        let a = ex.slot(&path("sessionId"));
        let b = ex.slot(&path("context.sessionId"));
        let c = ex.slot(&path("resolvedProfile.runner"));
        let d = ex.slot(&path("time"));
        assert_eq!(ex.slot(&path("sessionId")), a);
        let json = br#"{"x":[1,{"sessionId":"no"}],"context":{"sessionId":"s\"1"},"resolvedProfile":{"runner":"go"},"time":12.5} trailing"#;
        let mut out = Slots::default();
        ex.extract(json, &mut out).unwrap();
        assert_eq!(out.get(a), None);
        assert_eq!(out.get(b).and_then(|v| out.text(v)), Some("s\"1"));
        assert_eq!(out.get(c).and_then(|v| out.text(v)), Some("go"));
        assert_eq!(out.get(d), Some(&Scalar::Num(12.5)));
    }

    #[test]
    fn slots_keep_the_first_value_below_and_above_64() {
        let mut s = Slots::default();
        for (slot, n) in [
            (3, 1.0),
            (70, 2.0),
            (3, 3.0),
            (70, 4.0),
            (63, 5.0),
            (64, 6.0),
        ] {
            s.set(slot, Scalar::Num(n));
        }
        let got: Vec<_> = [3, 70, 63, 64, 0, 65].map(|i| s.get(i).cloned()).into();
        let num = |n| Some(Scalar::Num(n));
        assert_eq!(got, [num(1.0), num(2.0), num(5.0), num(6.0), None, None]);
        s.clear();
        assert_eq!((s.get(3), s.get(70)), (None, None));
        s.set(3, Scalar::Null);
        assert_eq!(s.get(3), Some(&Scalar::Null));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let mut ex = Extractor::new();
        ex.slot(&path("a"));
        let mut out = Slots::default();
        for bad in [
            &b"{\"a\":\"x"[..],
            b"[1,2]",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\0\"}",
            b"",
        ] {
            assert!(ex.extract(bad, &mut out).is_err(), "{bad:?}");
        }
    }
}
