//! Finding the lines worth parsing: one multi-needle search over a whole chunk for the quoted
//! event names, instead of a JSON walk of every line.
//!
//! A line can only become an event or a rejection if it holds a configured event name as a
//! JSON string. How that name can appear in the raw bytes decides what may be skipped:
//! - written plainly: `"claimed"` at the top level, `\"claimed\"` inside a drain entry's
//!   message, `\\\"claimed\\\"` when the message itself quotes a line (the relevance test
//!   of a malformed inner line). Every one of them contains `"claimed"` or `"claimed\`, so
//!   those two are the needles (searched as `"claimed` and the byte after it checked, when
//!   no name begins another);
//! - written with escapes: the only escape that can spell a letter is `\uXXXX` (at any level
//!   of nesting it still contains `\u`), so a line holding `\u` is a candidate too;
//! - a name containing `"`, `\`, `/` or a control character could also be spelled with the
//!   other escapes (`\/`, `\n`…); with such a name in the configuration nothing is skipped.
//!
//! A line that is not a candidate is exactly a line `Parser::parse_line` would ignore: a
//! proptest holds the two to that on arbitrary and adversarial lines.

use crate::newlines::Newlines;
use aho_corasick::packed;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use memchr::memmem;

/// The candidate test, compiled from the configured event names.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// `None`: every line is a candidate (a name that escapes could spell otherwise, or an
    /// automaton that could not be built).
    names: Option<Needles>,
    /// No configured names: nothing can be an event.
    empty: bool,
    escape: memmem::Finder<'static>,
}

impl Prefilter {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Prefilter {
        let names: Vec<&str> = names.into_iter().collect();
        let spellable = |n: &str| {
            n.bytes()
                .any(|b| matches!(b, b'"' | b'\\' | b'/' | 0..0x20))
        };
        let automaton = if names.iter().any(|n| spellable(n)) {
            None
        } else if names
            .iter()
            .any(|a| names.iter().any(|b| a != b && b.starts_with(a)))
        {
            // One name begins another: both could start at one place, so each spelling is
            // a needle of its own.
            let needles: Vec<String> = names
                .iter()
                .flat_map(|n| [format!("\"{n}\""), format!("\"{n}\\")])
                .collect();
            Needles::new(&needles, false)
        } else {
            // Half the needles: `"claimed`, then the byte after it is checked. No name
            // begins another, so at most one needle starts at any place.
            let needles: Vec<String> = names.iter().map(|n| format!("\"{n}")).collect();
            Needles::new(&needles, true)
        };
        Prefilter {
            empty: names.is_empty(),
            names: automaton,
            escape: memmem::Finder::new(b"\\u").into_owned(),
        }
    }

    /// Whether `line` may be an event or a rejection (if not, parsing it would ignore it).
    pub fn is_candidate(&self, line: &[u8]) -> bool {
        if self.empty {
            return false;
        }
        match &self.names {
            Some(n) => n.find(line, 0).is_some() || self.escape.find(line).is_some(),
            None => true,
        }
    }

    /// Calls `each(line_number, line)` for every candidate line of `data` (whole lines, the
    /// last one possibly without its `\n`; lines numbered from `first_line`) in order, and
    /// returns the number of lines in `data`. `bits` is the index of `data`'s newlines
    /// (its reader built it): lines are numbered, started and ended by bit counts instead
    /// of a `memchr`, a `memrchr` and a count per candidate (those calls on short spans were
    /// 9 % of verify's cycles).
    pub fn candidates(
        &self,
        data: &[u8],
        bits: &Newlines,
        first_line: u64,
        mut each: impl FnMut(u64, &[u8]),
    ) -> u64 {
        if !bits.covers(data.len()) {
            // Not this chunk's index (never, from a reader): one of its own.
            return self.candidates(data, &Newlines::of(data), first_line, each);
        }
        if self.empty {
            return bits.newlines_in(0, data.len())
                + u64::from(!data.is_empty() && !data.ends_with(b"\n"));
        }
        let mut line_no = first_line;
        // `data[..counted]` has been counted into `line_no`.
        let mut counted = 0;
        let mut pos = 0;
        // The first name at or after `pos` (`None`: none up to the end).
        let mut next_name = self.names.as_ref().and_then(|n| n.find(data, 0));
        while pos < data.len() {
            let hit = match &self.names {
                Some(n) => {
                    if next_name.is_some_and(|h| h < pos) {
                        next_name = n.find(data, pos);
                    }
                    // `\u` is looked for only in the whole lines before the name's line,
                    // which hold no name: a line with a name is a candidate anyway. Most
                    // lines are candidates, so this searches a third of the bytes that a
                    // search of the whole chunk did (that search was 4 % of verify's CPU
                    // samples; the lines in between are a call each, most of them none).
                    let gap_end = match next_name {
                        Some(h) => bits.last_newline(pos, h).map_or(pos, |i| i + 1),
                        None => data.len(),
                    };
                    match self.escape_in(data, pos, gap_end) {
                        Some(e) => Some((e, bits.last_newline(pos, e).map_or(pos, |i| i + 1))),
                        // the name's line starts where the gap ends
                        None => next_name.map(|h| (h, gap_end)),
                    }
                }
                None => Some((pos, pos)),
            };
            let Some((hit, start)) = hit else { break };
            let end = bits.next_newline(hit).map_or(data.len(), |i| i + 1);
            line_no += bits.newlines_in(counted, start);
            counted = start;
            each(line_no, &data[start..end]);
            pos = end;
        }
        let rest = &data[counted..];
        line_no - first_line
            + bits.newlines_in(counted, data.len())
            + u64::from(!rest.is_empty() && !rest.ends_with(b"\n"))
    }

    /// The first `\u` in `data[from..to]`.
    fn escape_in(&self, data: &[u8], from: usize, to: usize) -> Option<usize> {
        if from >= to {
            return None;
        }
        self.escape.find(&data[from..to]).map(|i| from + i)
    }
}

/// The needles: Teddy (SIMD over the first bytes of every needle) when the CPU has it. Every
/// needle starts with `"`, so an automaton's own prefilter would stop at every quote.
#[derive(Debug, Clone)]
struct Needles {
    search: Search,
    /// The needles are `"name`, a hit only when a quote or a backslash follows (half as many
    /// needles as `"name"` and `"name\`, so half the verifications per Teddy bucket).
    open: bool,
}

#[derive(Debug, Clone)]
enum Search {
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Needles {
    fn new(needles: &[String], open: bool) -> Option<Needles> {
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(needles)
            .build();
        let search = match packed {
            Some(p) => Search::Packed(p),
            None => AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .build(needles)
                .ok()
                .map(Search::Automaton)?,
        };
        Some(Needles { search, open })
    }

    /// The start of the first needle in `data[from..]`.
    fn find(&self, data: &[u8], mut from: usize) -> Option<usize> {
        loop {
            let m = match &self.search {
                Search::Packed(p) => p.find_in(data, aho_corasick::Span::from(from..data.len())),
                Search::Automaton(a) => {
                    a.find(aho_corasick::Input::new(data).span(from..data.len()))
                }
            }?;
            if !self.open || matches!(data.get(m.end()), Some(b'"' | b'\\')) {
                return Some(m.start());
            }
            from = m.start() + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::event::Runner;
    use crate::newlines::Newlines;
    use crate::parse::{LineContext, Parsed, Parser};
    use crate::parse::{ParseConfig, RawParseConfig};

    const CTX: LineContext = LineContext {
        default_runtime: Some(Runner::Go),
        received_at: None,
    };

    /// Pieces of lines that parse: real events, decoys and every spelling of a name.
    const PIECES: &[&str] = &[
        "{",
        "}",
        ",",
        ":",
        "\"",
        "\\\"",
        "\\\\",
        "\"event\"",
        "\"claimed\"",
        "\"dispatch\"",
        "\"nack\"",
        "\"heartbeat\"",
        "\"claimedTotal\"",
        "\"claim\"",
        "\"claim\\",
        "\"dispatcher\"",
        "\"c\\u006caimed\"",
        "\"\\u0065vent\"",
        "\\u0022claimed\\u0022",
        "\"sessionId\":\"s1\"",
        "\"time\":\"2026-11-23T10:00:00Z\"",
        "\"ts\":1795428000000",
        "\"message\":\"",
        "\"context\":{",
        "\\\"event\\\":\\\"claimed\\\"",
        "\\\\\\\"claimed\\\\\\\"",
        "\"state\":\"claimed\"",
        "2026-11-23T10:00:00Z INFO ",
        "\t",
        "x",
        "\u{e9}",
        "\\n",
        "\\/",
        "\r",
    ];

    fn line() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => proptest::sample::select(PIECES).prop_map(|s| s.as_bytes().to_vec()),
            1 => proptest::collection::vec(any::<u8>(), 1..4),
        ];
        (proptest::collection::vec(piece, 0..24), 0u8..4).prop_map(|(pieces, wrap)| {
            let mut line: Vec<u8> = pieces.concat();
            line.retain(|&b| b != b'\n');
            // Some lines go inside a drain entry's message, once or twice.
            for _ in 0..wrap.saturating_sub(1) {
                let text = String::from_utf8_lossy(&line).into_owned();
                let quoted = serde_json::to_string(&text).unwrap_or_default();
                line = format!("{{\"message\":{quoted},\"timestamp\":1795428000000}}").into_bytes();
            }
            line
        })
    }

    fn parsers() -> Vec<Parser> {
        let custom: RawParseConfig =
            toml::from_str("[events]\nclaim = [\"picked_up\", \"claimed\"]\nrelease = [\"é\"]\n")
                .unwrap_or_else(|e| panic!("{e}"));
        // One name begins another: each spelling is a needle of its own.
        let prefixed: RawParseConfig =
            toml::from_str("[events]\nclaim = [\"claim\", \"claimed\"]\n")
                .unwrap_or_else(|e| panic!("{e}"));
        vec![
            Parser::new(ParseConfig::default()),
            Parser::new(ParseConfig::new(&custom).unwrap_or_else(|e| panic!("{e}"))),
            Parser::new(ParseConfig::new(&prefixed).unwrap_or_else(|e| panic!("{e}"))),
        ]
    }

    #[test]
    fn every_spelling_of_a_name_is_a_candidate() {
        let p = Parser::new(ParseConfig::default());
        for line in [
            &br#"{"event":"claimed","sessionId":"s","time":"2026-11-23T10:00:00Z"}"#[..],
            // a needle's start that is not a name, before one that is
            br#"{"claimedTotal":3,"event":"claimed","sessionId":"s","time":"2026-11-23T10:00:00Z"}"#,
            br#"{"event":"claim\u0065d","sessionId":"s","time":"2026-11-23T10:00:00Z"}"#,
            br#"{"message":"{\"event\":\"claimed\",\"sessionId\":\"s\"}","timestamp":1}"#,
            br#"{"message":"{\"event\":\"claimed\",\"sessionId\":\"s\"","timestamp":1}"#,
            br#"{"message":"{\"event\":1,\"note\":\"\\\"claimed\\\"\",","timestamp":1}"#,
        ] {
            assert!(p.is_candidate(line), "{}", String::from_utf8_lossy(line));
            assert_ne!(p.parse_line(line, &CTX), Parsed::Ignored);
        }
        for line in [
            &br#"{"event":"lease_renewed","state":"claimed_later","claimedTotal":3}"#[..],
            br#"{"service":"dispatcher","event":"enqueued"}"#,
            b"GET /api/health 200",
        ] {
            assert!(!p.is_candidate(line), "{}", String::from_utf8_lossy(line));
        }
        // A name escapes could spell with `\/` turns the prefilter off.
        let raw: RawParseConfig =
            toml::from_str("[events]\nclaim = [\"a/b\"]\n").unwrap_or_else(|e| panic!("{e}"));
        let p = Parser::new(ParseConfig::new(&raw).unwrap_or_else(|e| panic!("{e}")));
        assert!(p.is_candidate(b"anything at all"));
    }

    #[test]
    fn candidates_number_lines_and_count_them() {
        let p = Parser::new(ParseConfig::default());
        let data = b"noise\n{\"event\":\"claimed\"}\r\nmore\n\nx \"nack\" y\nlast \"dispatch\\";
        let mut seen = Vec::new();
        let n = p.candidates(data, &Newlines::of(data), 10, |no, l| {
            seen.push((no, l.to_vec()))
        });
        assert_eq!(n, 6);
        assert_eq!(
            seen,
            vec![
                (11, b"{\"event\":\"claimed\"}\r\n".to_vec()),
                (14, b"x \"nack\" y\n".to_vec()),
                (15, b"last \"dispatch\\".to_vec()),
            ]
        );
        let none = Newlines::default();
        assert_eq!(p.candidates(b"", &none, 1, |_, _| panic!("no line")), 0);
        let data = b"a\nb\n";
        let bits = Newlines::of(data);
        assert_eq!(
            p.candidates(data, &bits, 1, |_, _| panic!("no candidate")),
            2
        );
        // An index of other bytes is not used: the scan makes its own.
        assert_eq!(
            p.candidates(data, &none, 1, |_, _| panic!("no candidate")),
            2
        );
        // A name spelled with `\u`: before a name's line, in it, and after the last one.
        let data = b"a\n{\"event\":\"claim\\u0065d\"}\nb\n\\u \"nack\"\nc\nd \\u\ne";
        let mut seen = Vec::new();
        let n = p.candidates(data, &Newlines::of(data), 1, |no, l| {
            seen.push((no, l.to_vec()))
        });
        assert_eq!(n, 7);
        assert_eq!(
            seen,
            vec![
                (2, b"{\"event\":\"claim\\u0065d\"}\n".to_vec()),
                (4, b"\\u \"nack\"\n".to_vec()),
                (6, b"d \\u\n".to_vec()),
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The prefilter only skips what parsing would ignore.
        #[test]
        fn a_skipped_line_parses_as_ignored(line in line()) {
            for p in parsers() {
                if !p.is_candidate(&line) {
                    prop_assert_eq!(p.parse_line(&line, &CTX), Parsed::Ignored,
                        "{}", String::from_utf8_lossy(&line));
                }
            }
        }

        /// Over a chunk: the scan hands out exactly the lines `is_candidate` takes, numbered.
        /// (A name spelled with `\u` seldom makes a line that parses, so the property
        /// below would not see such a line left out.)
        #[test]
        fn candidates_are_the_lines_is_candidate_takes(
            lines in proptest::collection::vec(line(), 0..12),
            newline_at_end in any::<bool>(),
        ) {
            let mut data = lines.join(&b'\n');
            if newline_at_end && !lines.is_empty() {
                data.push(b'\n');
            }
            for p in parsers() {
                let mut got = Vec::new();
                p.candidates(&data, &Newlines::of(&data), 1, |no, l| got.push((no, l.to_vec())));
                let want: Vec<(u64, Vec<u8>)> = (1..)
                    .zip(data.split_inclusive(|&b| b == b'\n'))
                    .filter(|(_, l)| p.is_candidate(l))
                    .map(|(no, l)| (no, l.to_vec()))
                    .collect();
                prop_assert_eq!(got, want, "{}", String::from_utf8_lossy(&data));
            }
        }

        /// Over a chunk: the candidates, parsed, give exactly what parsing every line gives.
        #[test]
        fn prefilter_and_parse_equal_parse(lines in proptest::collection::vec(line(), 0..12),
                                           newline_at_end in any::<bool>()) {
            let mut data = lines.join(&b'\n');
            if newline_at_end && !lines.is_empty() {
                data.push(b'\n');
            }
            for p in parsers() {
                let mut got = Vec::new();
                let n = p.candidates(&data, &Newlines::of(&data), 1, |no, l| {
                    let parsed = p.parse_line(l, &CTX);
                    if parsed != Parsed::Ignored {
                        got.push((no, parsed));
                    }
                });
                let mut want = Vec::new();
                let mut count = 0;
                if !data.is_empty() {
                    let body = data.strip_suffix(b"\n").unwrap_or(&data);
                    for (no, l) in (1..).zip(body.split(|&b| b == b'\n')) {
                        count += 1;
                        let parsed = p.parse_line(l, &CTX);
                        if parsed != Parsed::Ignored {
                            want.push((no, parsed));
                        }
                    }
                }
                prop_assert_eq!(n, count);
                prop_assert_eq!(got, want);
            }
        }
    }
}
