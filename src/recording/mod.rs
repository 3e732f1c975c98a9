//! Call recordings as the caller heard them: a sans-IO [`tap`] in the call core makes two
//! time-aligned channels; a per-call [`spool`] task writes them to a WAV file off the media
//! path; [`storage`] keeps finished files (a local directory, or S3 after a multipart upload
//! by the [`worker`], which also retries, reports and deletes them with the call's retention).

pub mod setting;
pub mod spool;
pub mod storage;
pub mod tap;
pub mod tapped;
pub mod wav;
pub mod worker;

use std::sync::Arc;

pub use setting::Recordings;

/// What the call path needs to record: where files go, and how to wake the worker that stores
/// them.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub storage: storage::Storage,
    pub wake: Arc<tokio::sync::Notify>,
}

/// The file name of call `id`'s recording.
pub fn file_name(call_id: &str) -> String {
    format!("{call_id}.wav")
}

/// Call ids are ours (`call_…`, `CA…`-free): a name that is not one is never read or written.
pub fn is_call_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_call_ids_name_files() {
        assert!(is_call_id("call_01JABCDEF"));
        assert!(!is_call_id("../etc/passwd"));
        assert!(!is_call_id("a/b"));
        assert!(!is_call_id(""));
    }
}
