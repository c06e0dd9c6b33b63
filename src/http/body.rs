//! An ingest body read to its end within `max_body_bytes`, then decoded per its
//! `Content-Encoding` (`identity` or `gzip`, the latter within `max_decoded_bytes`).

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

use super::ApiError;

/// Reads `body` to its end, refusing more than `limit` bytes (413).
pub(super) async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::BodyTooLarge),
        Err(_) => Err(ApiError::BodyUnreadable),
    }
}

/// Whether the body is gzip (`Content-Encoding: gzip`), refusing encodings other than those
/// and `identity` (415).
pub(super) fn is_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    let mut gzip = false;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let Ok(v) = value.to_str() else {
            return Err(ApiError::UnsupportedEncoding);
        };
        for coding in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                // gzip twice over is not something a log sender does.
                if gzip {
                    return Err(ApiError::UnsupportedEncoding);
                }
                gzip = true;
            } else if !coding.eq_ignore_ascii_case("identity") {
                return Err(ApiError::UnsupportedEncoding);
            }
        }
    }
    Ok(gzip)
}

/// Decodes a gzip body (all its members, as `gzip -d` does), refusing more than `limit`
/// decoded bytes (413) before inflating any further: a small bomb costs `limit`, not its
/// expansion.
pub(super) fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| ApiError::InvalidGzip)?;
    if out.len() > limit {
        return Err(ApiError::DecodedTooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_within_the_cap_and_a_bomb_refused() {
        assert_eq!(gunzip(&gz(b"abc\n"), 4).unwrap(), b"abc\n");
        assert_eq!(gunzip(&gz(b"abcd\n"), 4), Err(ApiError::DecodedTooLarge));
        // 64 MiB of zeros in about 64 KiB
        let bomb = gz(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 100 << 10, "{}", bomb.len());
        assert_eq!(gunzip(&bomb, 1 << 20), Err(ApiError::DecodedTooLarge));
        assert_eq!(gunzip(b"not gzip", 1 << 20), Err(ApiError::InvalidGzip));
        // two members, as `cat a.gz b.gz` makes
        let mut two = gz(b"a\n");
        two.extend(gz(b"b\n"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"a\nb\n");
    }

    #[test]
    fn encodings() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_ENCODING, v.parse().unwrap());
            is_gzip(&h)
        };
        assert_eq!(is_gzip(&HeaderMap::new()), Ok(false));
        assert_eq!(with("gzip"), Ok(true));
        assert_eq!(with("GZIP"), Ok(true));
        assert_eq!(with("identity"), Ok(false));
        for bad in [
            "br",
            "deflate",
            "zstd",
            "gzip, gzip",
            "gzip, br",
            "compress",
        ] {
            assert_eq!(with(bad), Err(ApiError::UnsupportedEncoding), "{bad}");
        }
    }
}
