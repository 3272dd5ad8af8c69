//! The one place that talks to the object store: a local directory (the
//! persistentVolume case) or S3-compatible storage, behind `object_store`.
//!
//! Keys are plain `/`-separated strings (`blobs/sha256/<hex>`). Writes go
//! through [`ObjectWriter`], which streams (multipart where the backend has
//! it) and is either finished or aborted: one dropped half way — a client
//! that went away, a cancelled job — aborts itself, so a partial object is
//! never left behind under its final key.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tokio::io::AsyncWriteExt as _;

pub type Error = object_store::Error;

/// Read size for local files.
const READ_CHUNK: usize = 1 << 20;
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    location: String,
    /// The directory of a local store: `object_store` cleans up emptied
    /// directories on delete but not on rename, which we then do ourselves.
    local_root: Option<std::path::PathBuf>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Storage({})", self.location)
    }
}

impl Storage {
    /// Opens `spec`: `s3://bucket[/prefix]` (credentials, region and a custom
    /// endpoint from the usual `AWS_*` variables, e.g. `AWS_ENDPOINT_URL`),
    /// `file:///path`, or a plain directory path, created if missing.
    pub fn open(spec: &str) -> anyhow::Result<Self> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "storage {spec:?}: no bucket named");
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            // A local S3 emulator (moto, MinIO) speaks plain HTTP; allowing it
            // follows from the endpoint the operator chose.
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .unwrap_or_default();
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            let s3 = builder
                .build()
                .with_context(|| format!("configuring S3 storage {spec:?}"))?;
            let store: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
                "" => Arc::new(s3),
                prefix => Arc::new(PrefixStore::new(s3, prefix)),
            };
            return Ok(Self {
                store,
                location: spec.to_owned(),
                local_root: None,
            });
        }
        let dir = spec.strip_prefix("file://").unwrap_or(spec);
        anyhow::ensure!(!dir.is_empty(), "storage: empty path");
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating storage directory {dir:?}"))?;
        let local = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("opening storage directory {dir:?}"))?
            // Deleting the last object of a directory removes the directory,
            // so finished uploads leave no empty folders behind.
            .with_automatic_cleanup(true);
        let root = std::fs::canonicalize(dir).with_context(|| format!("resolving {dir:?}"))?;
        Ok(Self {
            store: Arc::new(local),
            location: root.display().to_string(),
            local_root: Some(root),
        })
    }

    /// Where the objects are, for logs and messages (no credentials).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The object's size, or `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.store.head(&Path::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The object as a stream of chunks, or `None` when it does not exist.
    pub async fn read(&self, key: &str) -> Result<Option<BoxStream<'static, Result<Bytes>>>> {
        if let Some(root) = &self.local_root {
            // object_store reads local files 8 KiB per blocking task; a
            // full backup or a large pull runs several times faster in
            // chunks of a MiB.
            return match tokio::fs::File::open(root.join(key)).await {
                Ok(file) => Ok(Some(
                    tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK)
                        .map_err(|err| Error::Generic {
                            store: "LocalFileSystem",
                            source: Box::new(err),
                        })
                        .boxed(),
                )),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(err),
                }),
            };
        }
        match self.store.get(&Path::from(key)).await {
            Ok(result) => Ok(Some(result.into_stream())),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// A whole (small) object.
    pub async fn read_all(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(&Path::from(key)).await {
            Ok(result) => result.bytes().await.map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.store.get_range(&Path::from(key), range).await
    }

    /// Writes a small object in one request.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&Path::from(key), bytes.into())
            .await
            .map(drop)
    }

    pub fn writer(&self, key: &str) -> ObjectWriter {
        ObjectWriter {
            inner: Some(BufWriter::new(self.store.clone(), Path::from(key))),
            key: key.to_owned(),
            written: 0,
        }
    }

    /// Removes the object; removing one that does not exist is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Moves an object: atomic on a local directory, copy-then-delete on S3.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.store
            .rename(&Path::from(from), &Path::from(to))
            .await?;
        if let Some(root) = &self.local_root {
            let mut dir = root.join(from);
            // remove_dir refuses non-empty directories, which stops the walk.
            while dir.pop() && dir.starts_with(root) && dir != *root {
                if tokio::fs::remove_dir(&dir).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Every key under `prefix`.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>> {
        self.store
            .list(Some(&Path::from(prefix)))
            .map_ok(|meta| meta.location.to_string())
            .boxed()
    }
}

/// A streaming write that becomes visible under its key only on [`finish`].
///
/// [`finish`]: ObjectWriter::finish
pub struct ObjectWriter {
    inner: Option<BufWriter>,
    key: String,
    written: u64,
}

impl ObjectWriter {
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.written += chunk.len() as u64;
        self.inner
            .as_mut()
            .expect("writer used after finish or abort")
            .put(chunk)
            .await
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Completes the object. On error nothing is visible under the key.
    pub async fn finish(mut self) -> Result<u64> {
        let mut inner = self.inner.take().expect("writer used after finish");
        match inner.shutdown().await {
            Ok(()) => Ok(self.written),
            Err(err) => {
                let _ = inner.abort().await;
                Err(Error::Generic {
                    store: "storage",
                    source: Box::new(err),
                })
            }
        }
    }

    /// Discards everything written so far.
    pub async fn abort(mut self) -> Result<()> {
        match self.inner.take() {
            Some(mut inner) => inner.abort().await,
            None => Ok(()),
        }
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(mut inner) = self.inner.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = inner.abort().await;
            });
        }
    }
}
