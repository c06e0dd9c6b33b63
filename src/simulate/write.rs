//! Byte-level writing for the simulator: buffered files with delayed re-deliveries, and the
//! few formatting primitives (RFC 3339, integers, JSON string escaping, ids) the line builders
//! need. Everything appends to a caller-owned `Vec<u8>`, so a line costs no allocation.
//!
//! Why by hand: a million sessions are several million lines; `format!` and `serde_json` per
//! line would dominate the run time, while these appends are a few nanoseconds each.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Buffer size of each output file: large enough that writes are rare system calls.
const BUFFER: usize = 1 << 20;

/// One output file. A line may be written "twice": the copy follows a few lines later, as a
/// retrying log shipper would re-deliver it.
#[derive(Debug)]
pub(super) struct Sink {
    out: BufWriter<File>,
    delayed: Vec<Delayed>,
    bytes: u64,
}

#[derive(Debug)]
struct Delayed {
    after: u32,
    line: Vec<u8>,
}

impl Sink {
    pub fn create(path: &Path) -> io::Result<Sink> {
        Ok(Sink {
            out: BufWriter::with_capacity(BUFFER, File::create(path)?),
            delayed: Vec::new(),
            bytes: 0,
        })
    }

    /// Writes `line` and a newline.
    pub fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.raw(line)?;
        if self.delayed.is_empty() {
            return Ok(());
        }
        for d in &mut self.delayed {
            d.after -= 1;
        }
        // Write the due copies in the order they were scheduled.
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].after == 0 {
                let d = self.delayed.remove(i);
                self.raw(&d.line)?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Writes `line` now and an exact copy after `after` (≥ 1) more lines.
    pub fn line_twice(&mut self, line: &[u8], after: u32) -> io::Result<()> {
        self.line(line)?;
        self.delayed.push(Delayed {
            after: after.max(1),
            line: line.to_vec(),
        });
        Ok(())
    }

    fn raw(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.bytes += line.len() as u64 + 1;
        Ok(())
    }

    /// Writes the copies still waiting, flushes, and returns the bytes written.
    pub fn finish(mut self) -> io::Result<u64> {
        for d in std::mem::take(&mut self.delayed) {
            self.raw(&d.line)?;
        }
        self.out.flush()?;
        Ok(self.bytes)
    }
}

/// How a writer prints the UTC offset of a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Zone {
    /// `…Z`
    Utc,
    /// `…+00:00` (a Go host whose zone is UTC by name, not by `Z`).
    Zero,
    /// `…+01:00`: local time of a host in CET.
    Cet,
}

const DIGITS2: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

fn push2(buf: &mut Vec<u8>, n: u32) {
    let i = (n as usize % 100) * 2;
    buf.extend_from_slice(&DIGITS2[i..i + 2]);
}

/// Civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Splits epoch ms into (date, hour, minute, second, millisecond).
fn fields(ms: i64) -> ((i64, u32, u32), u32, u32, u32, u32) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let s = (rem / 1000) as u32;
    (
        civil(days),
        s / 3600,
        s / 60 % 60,
        s % 60,
        (rem % 1000) as u32,
    )
}

fn push_date(buf: &mut Vec<u8>, (y, m, d): (i64, u32, u32), sep: u8) {
    push_u64(buf, y.max(0) as u64);
    buf.push(sep);
    push2(buf, m);
    buf.push(sep);
    push2(buf, d);
}

/// `2026-11-23T08:00:00.123Z` (or with the zone's offset).
pub(super) fn push_time(buf: &mut Vec<u8>, ms: i64, zone: Zone) {
    let local = if zone == Zone::Cet {
        ms + 3_600_000
    } else {
        ms
    };
    let (date, h, m, s, milli) = fields(local);
    push_date(buf, date, b'-');
    buf.push(b'T');
    push2(buf, h);
    buf.push(b':');
    push2(buf, m);
    buf.push(b':');
    push2(buf, s);
    buf.push(b'.');
    buf.push(b'0' + (milli / 100) as u8);
    push2(buf, milli % 100);
    buf.extend_from_slice(match zone {
        Zone::Utc => b"Z",
        Zone::Zero => b"+00:00",
        Zone::Cet => b"+01:00",
    });
}

/// `2026/11/23 08:00:00`, the prefix of Go's standard `log` package.
pub(super) fn push_go_log_time(buf: &mut Vec<u8>, ms: i64) {
    let (date, h, m, s, _) = fields(ms);
    push_date(buf, date, b'/');
    buf.push(b' ');
    push2(buf, h);
    buf.push(b':');
    push2(buf, m);
    buf.push(b':');
    push2(buf, s);
}

pub(super) fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

pub(super) fn push_i64(buf: &mut Vec<u8>, n: i64) {
    if n < 0 {
        buf.push(b'-');
    }
    push_u64(buf, n.unsigned_abs());
}

/// Fills `out` with the decimal digits of `n`, zero-padded (high digits dropped if wider).
pub(super) fn decimal(mut n: u64, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Appends `s` escaped as the inside of a JSON string.
pub(super) fn push_json_escaped(buf: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&s[start..i]);
        if esc.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 15)]);
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&s[start..]);
}

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Fills `out` with the base-36 digits of `n`, most significant first, zero-padded (the high
/// digits are dropped if `n` is wider; 13 digits hold any `u64`).
pub(super) fn base36(mut n: u64, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = BASE36[(n % 36) as usize];
        n /= 36;
    }
}

/// Lowercase hex digits of `n`, `out.len()` of them (low digits).
pub(super) fn hex(mut n: u64, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        *b = BASE36[(n & 15) as usize];
        n >>= 4;
    }
}

/// The splitmix64 finaliser: a bijection on `u64` that scrambles consecutive inputs, so ids
/// built from a counter look random and can never collide.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    #[test]
    fn times_match_chrono() {
        let mut x = 0x1234_5678_u64;
        for _ in 0..10_000 {
            x = mix(x);
            let ms = (x % 4_000_000_000_000) as i64;
            let mut buf = Vec::new();
            push_time(&mut buf, ms, Zone::Utc);
            assert_eq!(
                std::str::from_utf8(&buf).unwrap(),
                Timestamp(ms).to_rfc3339()
            );
            for zone in [Zone::Zero, Zone::Cet] {
                buf.clear();
                push_time(&mut buf, ms, zone);
                let s = std::str::from_utf8(&buf).unwrap();
                assert_eq!(crate::parse::time::parse_rfc3339(s), Some(Timestamp(ms)));
            }
        }
        let mut buf = Vec::new();
        push_go_log_time(&mut buf, 1_795_428_000_123);
        assert_eq!(buf, b"2026/11/23 10:00:00");
    }

    #[test]
    fn numbers_and_escapes() {
        let mut buf = Vec::new();
        push_u64(&mut buf, 0);
        buf.push(b' ');
        push_i64(&mut buf, -1_795_428_000_123);
        assert_eq!(buf, b"0 -1795428000123");
        let mut d = [0u8; 6];
        decimal(42, &mut d);
        assert_eq!(&d, b"000042");
        let s = "a\"b\\c\n\t\r\u{1}é";
        buf.clear();
        push_json_escaped(&mut buf, s.as_bytes());
        let json = format!("\"{}\"", std::str::from_utf8(&buf).unwrap());
        assert_eq!(serde_json::from_str::<String>(&json).unwrap(), s);
        let mut id = [0u8; 13];
        base36(u64::MAX, &mut id);
        assert_eq!(&id, b"3w5e11264sgsf");
    }

    #[test]
    fn sink_redelivers_a_few_lines_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut s = Sink::create(&path).unwrap();
        s.line_twice(b"a", 2).unwrap();
        s.line(b"b").unwrap();
        s.line_twice(b"c", 5).unwrap();
        s.line(b"d").unwrap();
        assert_eq!(s.finish().unwrap(), 12);
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\nc\na\nd\nc\n");
    }
}
