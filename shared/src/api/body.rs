//! Reading a request body: JSON only, within its size limit, and every way it can fail told
//! apart.
//!
//! - larger than the limit (declared, or found while reading, chunked too) -> 413;
//! - not JSON (`Content-Type` absent or not `application/json` / `…+json`) -> 415: a web page
//!   can send `text/plain` to an unauthenticated local server without a CORS preflight;
//! - malformed framing (a bad chunk size line) -> 400;
//! - not received in time (the serve loop's body deadline) -> 408;
//! - the client hung up before sending all of it -> logged as aborted (and answered 400, to no
//!   one), never as too large.
//!
//! In Lambda the body arrives whole in the event, so only the first two can happen there.

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};

use crate::Error;

/// Why a body could not be read (besides its size and type).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is malformed: {0}")]
    Malformed(String),
    #[error("the request body was not received in time")]
    TimedOut,
    #[error("the client closed the connection before sending the whole body")]
    Aborted,
}

/// The whole body of a JSON request.
pub(super) async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes, Error> {
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    if !is_json(req.headers()) {
        let given = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        return Err(Error::UnsupportedMediaType { given });
    }
    let err = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(bytes) => return Ok(bytes),
        Err(e) => e.into_inner(),
    };
    let chain = || std::iter::successors(Some(&*err as &(dyn std::error::Error + 'static)), |e| e.source());
    if chain().any(|e| e.is::<http_body_util::LengthLimitError>()) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let io_kind = chain().find_map(|e| e.downcast_ref::<std::io::Error>()).map(std::io::Error::kind);
    let incomplete =
        chain().any(|e| e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_incomplete_message));
    use std::io::ErrorKind as K;
    let e = match io_kind {
        Some(K::TimedOut) => BodyError::TimedOut,
        Some(K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe) => {
            BodyError::Aborted
        }
        _ if incomplete => BodyError::Aborted,
        _ => BodyError::Malformed(crate::telemetry::error_chain(&*err)),
    };
    match &e {
        BodyError::Aborted => {
            tracing::info!(outcome = "aborted", "the client hung up before sending the whole body")
        }
        BodyError::TimedOut => {
            tracing::info!(outcome = "body_timeout", "the request body did not arrive in time")
        }
        BodyError::Malformed(detail) => {
            tracing::info!(outcome = "malformed_body", detail = %detail, "malformed request body")
        }
    }
    Err(Error::Body(e))
}

/// `application/json` or `application/…+json`, with any parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_media_types_are_recognised() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_str(v).expect("header"));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/vnd.teal+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(!is_json(&HeaderMap::new()), "absent is not JSON");
    }
}
