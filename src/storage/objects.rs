//! The object port: immutable blobs by key, on a local directory or any S3 service, through
//! `object_store` (which brings retries and multipart upload). Keys are `/`-separated paths.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::config::ObjectTarget;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object `{0}` not found")]
    NotFound(String),
    #[error("invalid object key `{0}`")]
    BadKey(String),
    #[error("cannot open the object store: {0}")]
    Open(String),
    #[error("object store failure: {0}")]
    Store(#[from] object_store::Error),
}

/// Where objects go, and how to reach them.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    kind: &'static str,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.kind)
    }
}

/// Size above which `put_stream` switches to multipart upload parts of this size.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

fn key(k: &str) -> Result<ObjPath, ObjectError> {
    if k.is_empty() || k.starts_with('/') || k.ends_with('/') {
        return Err(ObjectError::BadKey(k.to_string()));
    }
    ObjPath::parse(k).map_err(|_| ObjectError::BadKey(k.to_string()))
}

fn not_found(k: &str) -> impl Fn(object_store::Error) -> ObjectError + '_ {
    move |e| match e {
        object_store::Error::NotFound { .. } => ObjectError::NotFound(k.to_string()),
        other => ObjectError::Store(other),
    }
}

impl Objects {
    pub fn open(target: &ObjectTarget) -> Result<Objects, ObjectError> {
        match target {
            ObjectTarget::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ObjectError::Open(format!("{}: {e}", dir.display())))?;
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| ObjectError::Open(e.to_string()))?;
                Ok(Objects { store: Arc::new(fs), kind: "local" })
            }
            ObjectTarget::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(&secret_access_key.0)
                    .with_allow_http(*allow_http);
                if let Some(ep) = endpoint {
                    b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
                }
                let s3 = b.build().map_err(|e| ObjectError::Open(e.to_string()))?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                Ok(Objects { store, kind: "s3" })
            }
        }
    }

    /// "local" or "s3".
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Writes a whole object at once. Readers see the old object or the new one, never a part.
    pub async fn put(&self, k: &str, data: Bytes) -> Result<(), ObjectError> {
        self.store.put(&key(k)?, PutPayload::from(data)).await?;
        Ok(())
    }

    /// Writes an object from a stream of chunks, in multipart parts for large objects, with a
    /// bounded number of parts in flight. Nothing is visible under `k` until it completes.
    pub async fn put_stream<S>(&self, k: &str, mut chunks: S) -> Result<u64, ObjectError>
    where
        S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let path = key(k)?;
        let upload = self.store.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut total = 0u64;
        loop {
            match chunks.try_next().await {
                Ok(Some(chunk)) => {
                    total += chunk.len() as u64;
                    writer.wait_for_capacity(4).await?;
                    writer.write(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    writer.abort().await?;
                    return Err(ObjectError::Store(object_store::Error::Generic {
                        store: "input",
                        source: Box::new(e),
                    }));
                }
            }
        }
        writer.finish().await?;
        Ok(total)
    }

    pub async fn get(&self, k: &str) -> Result<Bytes, ObjectError> {
        let r = self.store.get(&key(k)?).await.map_err(not_found(k))?;
        Ok(r.bytes().await?)
    }

    /// Reads bytes `range` of an object (one ranged request on S3).
    pub async fn get_range(&self, k: &str, range: Range<u64>) -> Result<Bytes, ObjectError> {
        self.store.get_range(&key(k)?, range).await.map_err(not_found(k))
    }

    /// The object's size, or None when there is no such object.
    pub async fn size(&self, k: &str) -> Result<Option<u64>, ObjectError> {
        match self.store.head(&key(k)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, k: &str) -> Result<(), ObjectError> {
        match self.store.delete(&key(k)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix` (a folder-like key prefix), with sizes, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, ObjectError> {
        let p = if prefix.is_empty() { None } else { Some(key(prefix.trim_end_matches('/'))?) };
        let mut out: Vec<(String, u64)> = self
            .store
            .list(p.as_ref())
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await?;
        out.sort();
        Ok(out)
    }

    /// Keys under `prefix` last written before `before_ms` (unix milliseconds), sorted.
    pub async fn list_written_before(
        &self,
        prefix: &str,
        before_ms: i64,
    ) -> Result<Vec<String>, ObjectError> {
        let p = if prefix.is_empty() { None } else { Some(key(prefix.trim_end_matches('/'))?) };
        let mut out: Vec<String> = self
            .store
            .list(p.as_ref())
            .try_filter_map(|m| {
                let old = m.last_modified.timestamp_millis() < before_ms;
                futures::future::ready(Ok(old.then(|| m.location.to_string())))
            })
            .try_collect()
            .await?;
        out.sort();
        Ok(out)
    }

    /// Is the store answering? A lookup of a key that need not exist: "not found" is an answer.
    pub async fn ping(&self) -> Result<(), ObjectError> {
        self.size("ferry-readiness-probe").await.map(|_| ())
    }
}
