//! Where finished recordings are kept and read back: a local directory (the spool is the store),
//! or an S3-compatible bucket through `object_store` (multipart upload from the spool file, ranged
//! reads streamed, never a whole recording in memory).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::Recordings;

/// Parts of an upload (S3's smallest part but the last), and how many go at once.
const PART_SIZE: usize = 5 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes read from a file at a time when serving or uploading it.
const READ_SIZE: usize = 64 * 1024;

/// Bytes of a recording, as a body.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Where recordings are kept.
#[derive(Debug, Clone)]
pub enum Storage {
    /// `local:<dir>`: the file written during the call is the recording.
    Local { dir: PathBuf },
    /// `s3://bucket/prefix`: written to `spool` during the call, then uploaded.
    S3 { store: Arc<dyn ObjectStore>, prefix: String, spool: PathBuf, label: String },
}

impl Storage {
    /// The storage `recordings` names (`None` when off); S3 is configured from the usual `AWS_*`
    /// variables (`AWS_ENDPOINT_URL` for an S3-compatible server; plain HTTP only there).
    pub fn open(recordings: &Recordings, spool: &Path) -> Result<Option<Storage>, String> {
        match recordings {
            Recordings::Off => Ok(None),
            Recordings::Local(dir) => Ok(Some(Storage::Local { dir: dir.clone() })),
            Recordings::S3 { bucket, prefix } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
                if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                    builder = builder.with_region("us-east-1");
                }
                // Few quick retries here: the worker retries an upload with its own back-off
                // (and reports it on the call) rather than one request waiting for minutes.
                let retry = object_store::RetryConfig {
                    max_retries: 2,
                    retry_timeout: Duration::from_secs(10),
                    ..Default::default()
                };
                let store = builder.with_retry(retry).build().map_err(|e| format!("S3 ({bucket}): {e}"))?;
                Ok(Some(Storage::S3 {
                    store: Arc::new(store),
                    prefix: prefix.clone(),
                    spool: spool.to_path_buf(),
                    label: format!("s3://{bucket}/{prefix}"),
                }))
            }
        }
    }

    /// Where recordings are written during calls.
    pub fn spool_dir(&self) -> &Path {
        match self {
            Storage::Local { dir } => dir,
            Storage::S3 { spool, .. } => spool,
        }
    }

    /// A finished spool file is already the stored recording (nothing to upload).
    pub fn is_local(&self) -> bool {
        matches!(self, Storage::Local { .. })
    }

    /// For logs and `doctor`.
    pub fn label(&self) -> String {
        match self {
            Storage::Local { dir } => format!("local:{}", dir.display()),
            Storage::S3 { label, .. } => label.clone(),
        }
    }

    fn key(prefix: &str, call_id: &str) -> ObjectPath {
        let name = super::file_name(call_id);
        if prefix.is_empty() { ObjectPath::from(name) } else { ObjectPath::from(format!("{prefix}/{name}")) }
    }

    /// Stores call `call_id`'s finished spool file `file` (a multipart upload, read from disk
    /// a piece at a time); nothing to do for a local directory.
    pub async fn upload(&self, call_id: &str, file: &Path) -> Result<(), String> {
        let Storage::S3 { store, prefix, .. } = self else { return Ok(()) };
        let mut f = tokio::fs::File::open(file).await.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let upload = store.put_multipart(&Self::key(prefix, call_id)).await.map_err(|e| e.to_string())?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(format!("cannot read {}: {e}", file.display()));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                return Err(e.to_string());
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// The stored recording's size, `None` when there is none.
    pub async fn size(&self, call_id: &str) -> Result<Option<u64>, String> {
        match self {
            Storage::Local { dir } => file_size(&dir.join(super::file_name(call_id))).await,
            Storage::S3 { store, prefix, .. } => match store.head(&Self::key(prefix, call_id)).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// Bytes `range` of the stored recording, streamed.
    pub async fn read(&self, call_id: &str, range: Range<u64>) -> Result<ByteStream, String> {
        match self {
            Storage::Local { dir } => read_file(&dir.join(super::file_name(call_id)), range).await,
            Storage::S3 { store, prefix, .. } => {
                let options = GetOptions { range: Some(range.into()), ..Default::default() };
                let got = store.get_opts(&Self::key(prefix, call_id), options).await.map_err(|e| e.to_string())?;
                Ok(got.into_stream().map(|r| r.map_err(std::io::Error::other)).boxed())
            }
        }
    }

    /// Deletes the stored recording (none is fine).
    pub async fn delete(&self, call_id: &str) -> Result<(), String> {
        match self {
            Storage::Local { dir } => match tokio::fs::remove_file(dir.join(super::file_name(call_id))).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
            Storage::S3 { store, prefix, .. } => match store.delete(&Self::key(prefix, call_id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// Writes and deletes a probe object (`doctor`).
    pub async fn check_writable(&self) -> Result<(), String> {
        let probe = format!("voxbridge-doctor-{}", rand::random::<u32>());
        match self {
            Storage::Local { dir } => {
                tokio::fs::create_dir_all(dir).await.map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = dir.join(&probe);
                tokio::fs::write(&path, b"probe").await.map_err(|e| format!("{}: {e}", dir.display()))?;
                tokio::fs::remove_file(&path).await.map_err(|e| e.to_string())
            }
            Storage::S3 { store, prefix, .. } => {
                let key = Self::key(prefix, &probe);
                store.put(&key, Bytes::from_static(b"probe").into()).await.map_err(|e| e.to_string())?;
                store.delete(&key).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// A file's size, `None` when it does not exist.
pub async fn file_size(path: &Path) -> Result<Option<u64>, String> {
    match tokio::fs::metadata(path).await {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Bytes `range` of a file, read a piece at a time.
pub async fn read_file(path: &Path, range: Range<u64>) -> Result<ByteStream, String> {
    let mut file = tokio::fs::File::open(path).await.map_err(|e| e.to_string())?;
    file.seek(std::io::SeekFrom::Start(range.start)).await.map_err(|e| e.to_string())?;
    let left = range.end.saturating_sub(range.start);
    let stream = futures_util::stream::unfold((file, left), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; (left as usize).min(READ_SIZE)];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(stream.boxed())
}
