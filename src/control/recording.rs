//! `GET /v1/calls/{id}/recording`: the call's recording as a 2-channel WAV, `Range` honoured (an
//! audio element seeks with it), streamed from where it is: the instance's spool while its upload
//! is pending, else the storage `VOXBRIDGE_RECORDINGS` names.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::openapi::ErrorEnvelope;
use crate::recording::storage::{ByteStream, file_size, read_file};
use crate::store::recordings::{PENDING, STORED};

/// `GET /v1/calls/{id}/recording`.
#[utoipa::path(get, path = "/v1/calls/{id}/recording", tag = "calls", params(("id" = String, Path)),
    responses(
        (status = 200, description = "the recording: `audio/wav`, 16-bit, 8 kHz, two channels (left the caller, right the AI as the caller heard it)", content_type = "audio/wav"),
        (status = 206, description = "the part a `Range: bytes=…` header asked for", content_type = "audio/wav"),
        (status = 401, body = ErrorEnvelope),
        (status = 404, description = "no such call, or it has no recording", body = ErrorEnvelope),
        (status = 416, description = "the range lies outside the recording", body = ErrorEnvelope),
        (status = 503, description = "the recording is being stored by the instance that recorded it", body = ErrorEnvelope),
    ))]
pub async fn recording(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match serve(&state, &id, &headers).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn serve(state: &AppState, id: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let recording_state = state.store.recording_state(id).await?.ok_or_else(|| ApiError::not_found("call"))?;
    let Some(recorder) = state.bridge.recordings.as_ref() else {
        return Err(ApiError::not_found("recording"));
    };
    let kept = matches!(recording_state.as_deref(), Some(PENDING | STORED));
    if !kept || !crate::recording::is_call_id(id) {
        return Err(ApiError::not_found("recording"));
    }
    let unavailable = |e: String| {
        tracing::warn!(call_id = id, error = %e, "cannot read a recording");
        ApiError::unavailable("recording_unavailable", "the recording cannot be read right now; try again")
    };
    // Still in this instance's spool (uploading), or a local directory's file.
    let spooled = recorder.storage.spool_dir().join(crate::recording::file_name(id));
    let local_size = file_size(&spooled).await.map_err(unavailable)?;
    let size = match local_size {
        Some(size) => size,
        None => match recorder.storage.size(id).await.map_err(unavailable)? {
            Some(size) => size,
            None if recording_state.as_deref() == Some(PENDING) => {
                return Err(ApiError::unavailable(
                    "recording_pending",
                    "the recording is being stored by the instance that recorded it; try again shortly",
                ));
            }
            None => return Err(ApiError::not_found("recording")),
        },
    };
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(value) => match byte_range(value, size) {
            RangeAsked::Whole => None,
            RangeAsked::Part(r) => Some(r),
            RangeAsked::Unsatisfiable => {
                let mut response = ApiError {
                    status: StatusCode::RANGE_NOT_SATISFIABLE,
                    code: "range_not_satisfiable",
                    message: format!("the recording is {size} bytes"),
                }
                .into_response();
                response.headers_mut().insert(header::CONTENT_RANGE, value_of(&format!("bytes */{size}")));
                return Ok(response);
            }
        },
    };
    let span = range.clone().unwrap_or(0..size);
    let body: ByteStream = match local_size {
        Some(_) => read_file(&spooled, span.clone()).await,
        None => recorder.storage.read(id, span.clone()).await,
    }
    .map_err(unavailable)?;
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, value_of(&(span.end - span.start).to_string()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let content_range = format!("bytes {}-{}/{size}", span.start, span.end - 1);
        response.headers_mut().insert(header::CONTENT_RANGE, value_of(&content_range));
    }
    Ok(response)
}

fn value_of(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RangeAsked {
    /// Not one byte range we serve (another unit, several ranges, malformed): the whole
    /// representation, as RFC 9110 §14.2 allows a server to answer.
    Whole,
    Part(std::ops::Range<u64>),
    Unsatisfiable,
}

/// Parses one `bytes=` range (RFC 9110 §14.1.2). By hand: the `headers` crate's `Range` neither
/// refuses a first byte past the end nor serves a suffix longer than the representation.
fn byte_range(value: &str, size: u64) -> RangeAsked {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeAsked::Whole };
    if spec.contains(',') {
        return RangeAsked::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeAsked::Whole };
    let number = |s: &str| if s.is_empty() { Ok(None) } else { s.parse::<u64>().map(Some) };
    let (Ok(first), Ok(last)) = (number(first.trim()), number(last.trim())) else { return RangeAsked::Whole };
    match (first, last) {
        (Some(first), last) => {
            if last.is_some_and(|l| l < first) {
                return RangeAsked::Whole; // invalid: ignored
            }
            if first >= size {
                return RangeAsked::Unsatisfiable;
            }
            let end = last.map_or(size, |l| l.saturating_add(1).min(size));
            RangeAsked::Part(first..end)
        }
        (None, Some(0)) => RangeAsked::Unsatisfiable,
        (None, Some(suffix)) if size > 0 => RangeAsked::Part(size.saturating_sub(suffix)..size),
        (None, Some(_)) => RangeAsked::Unsatisfiable,
        (None, None) => RangeAsked::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_as_rfc_9110_reads_them() {
        use RangeAsked::*;
        assert_eq!(byte_range("bytes=0-43", 1000), Part(0..44));
        assert_eq!(byte_range("bytes=500-", 1000), Part(500..1000));
        assert_eq!(byte_range("bytes=900-5000", 1000), Part(900..1000));
        assert_eq!(byte_range("bytes=-100", 1000), Part(900..1000));
        assert_eq!(byte_range("bytes=-5000", 1000), Part(0..1000), "a suffix longer than the file is all of it");
        assert_eq!(byte_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=5-1", 1000), Whole, "an invalid range is ignored");
        assert_eq!(byte_range("bytes=0-1,5-9", 1000), Whole, "several ranges: the whole file");
        assert_eq!(byte_range("items=0-1", 1000), Whole);
        assert_eq!(byte_range("bytes=abc", 1000), Whole);
    }
}
