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
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tokio::io::AsyncWriteExt as _;

pub type Error = object_store::Error;

/// Read size for local files, and the write buffer of local uploads.
pub const READ_CHUNK: usize = 1 << 20;
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    location: String,
    /// The directory of a local store: `object_store` cleans up emptied
    /// directories on delete but not on rename, which we then do ourselves.
    local_root: Option<std::path::PathBuf>,
    /// The S3 client and key prefix of an S3 store, for [`Upload`]s, whose
    /// multipart upload ids `object_store`'s own writer keeps to itself.
    s3: Option<(Arc<AmazonS3>, String)>,
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
            let s3 = Arc::new(
                builder
                    .build()
                    .with_context(|| format!("configuring S3 storage {spec:?}"))?,
            );
            let prefix = prefix.trim_matches('/').to_owned();
            let store: Arc<dyn ObjectStore> = match prefix.as_str() {
                "" => s3.clone(),
                prefix => Arc::new(PrefixStore::new(s3.clone(), prefix)),
            };
            return Ok(Self {
                store,
                location: spec.to_owned(),
                local_root: None,
                s3: Some((s3, prefix)),
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
            s3: None,
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
    /// A local file is read `chunk` bytes at a time (S3 hands on what it
    /// receives): larger chunks cost less per byte, and more memory per
    /// reader.
    pub async fn read(
        &self,
        key: &str,
        chunk: usize,
    ) -> Result<Option<BoxStream<'static, Result<Bytes>>>> {
        if let Some(root) = &self.local_root {
            let path = root.join(key);
            return match tokio::task::spawn_blocking(move || std::fs::File::open(path)).await {
                Ok(Ok(file)) => Ok(Some(read_local(file, chunk))),
                Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Ok(Err(err)) => Err(local_error(err)),
                Err(err) => Err(local_error(err.into())),
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
        self.list_sized(prefix).map_ok(|(key, _)| key).boxed()
    }

    /// Every key under `prefix`, with its object's size.
    pub fn list_sized(&self, prefix: &str) -> BoxStream<'static, Result<(String, u64)>> {
        self.store
            .list(Some(&Path::from(prefix)))
            .map_ok(|meta| (meta.location.to_string(), meta.size))
            .boxed()
    }

    /// Starts an [`Upload`] to `key`. Its [`id`](Upload::id) is known before
    /// the first byte is sent, so that it can be recorded, and the upload
    /// discarded with [`discard_upload`](Self::discard_upload) by another
    /// process if this one dies half way.
    pub async fn begin_upload(&self, key: &str) -> Result<Upload> {
        let target = match (&self.local_root, &self.s3) {
            (Some(root), _) => {
                let path = root.join(key);
                let id = rand_digits();
                let staging = staging_path(&path, &id);
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir).await.map_err(local_error)?;
                }
                let file = tokio::fs::File::create(&staging)
                    .await
                    .map_err(local_error)?;
                UploadTarget::Local {
                    file: tokio::io::BufWriter::with_capacity(READ_CHUNK, file),
                    staging,
                    path,
                    id,
                }
            }
            (None, Some((s3, prefix))) => {
                let path = prefixed(prefix, key);
                let id = s3.create_multipart(&path).await?;
                UploadTarget::S3 {
                    s3: s3.clone(),
                    path,
                    id,
                    buffer: Vec::with_capacity(PART_BYTES),
                    parts: Vec::new(),
                    in_flight: None,
                }
            }
            (None, None) => unreachable!("a store is local or S3"),
        };
        Ok(Upload {
            target: Some(target),
            written: 0,
        })
    }

    /// Discards what an unfinished [`Upload`] to `key` wrote, given its id.
    /// Discarding one that is already gone (finished, aborted, discarded)
    /// is not an error.
    pub async fn discard_upload(&self, key: &str, id: &str) -> Result<()> {
        match (&self.local_root, &self.s3) {
            (Some(root), _) => {
                match tokio::fs::remove_file(staging_path(&root.join(key), id)).await {
                    Ok(()) => Ok(()),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(err) => Err(local_error(err)),
                }
            }
            (None, Some((s3, prefix))) => {
                match s3
                    .abort_multipart(&prefixed(prefix, key), &id.to_owned())
                    .await
                {
                    Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
                    // S3 answers an upload id it no longer knows with
                    // NoSuchUpload, which object_store does not map.
                    Err(err) if err.to_string().contains("NoSuchUpload") => Ok(()),
                    Err(err) => Err(err),
                }
            }
            (None, None) => unreachable!("a store is local or S3"),
        }
    }
}

/// Size of one part of an S3 upload: above S3's 5 MiB minimum; one part is
/// buffered while the one before it is sent.
const PART_BYTES: usize = 16 << 20;

fn prefixed(prefix: &str, key: &str) -> Path {
    if prefix.is_empty() {
        Path::from(key)
    } else {
        Path::from(format!("{prefix}/{key}"))
    }
}

/// `<path>#<digits>`: object_store's own name for staged files, which its
/// listings leave out, so a staged archive is never listed as an object.
fn staging_path(path: &std::path::Path, id: &str) -> std::path::PathBuf {
    let mut staging = path.as_os_str().to_owned();
    staging.push("#");
    staging.push(id);
    staging.into()
}

fn rand_digits() -> String {
    uuid::Uuid::new_v4().as_u128().to_string()
}

fn local_error(err: std::io::Error) -> Error {
    Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(err),
    }
}

/// A streaming write that becomes visible under its key only on
/// [`finish`](Upload::finish), with an id under which another process can
/// discard it: a staging file beside the key on a local directory, a
/// multipart upload on S3.
pub struct Upload {
    target: Option<UploadTarget>,
    written: u64,
}

enum UploadTarget {
    Local {
        file: tokio::io::BufWriter<tokio::fs::File>,
        staging: std::path::PathBuf,
        path: std::path::PathBuf,
        id: String,
    },
    S3 {
        s3: Arc<AmazonS3>,
        path: Path,
        id: String,
        buffer: Vec<u8>,
        parts: Vec<PartId>,
        in_flight: Option<tokio::task::JoinHandle<Result<PartId>>>,
    },
}

impl Upload {
    pub fn id(&self) -> &str {
        match self
            .target
            .as_ref()
            .expect("upload used after finish or abort")
        {
            UploadTarget::Local { id, .. } | UploadTarget::S3 { id, .. } => id,
        }
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        match self
            .target
            .as_mut()
            .expect("upload used after finish or abort")
        {
            UploadTarget::Local { file, .. } => file.write_all(bytes).await.map_err(local_error),
            UploadTarget::S3 {
                s3,
                path,
                id,
                buffer,
                parts,
                in_flight,
            } => {
                while !bytes.is_empty() {
                    let take = (PART_BYTES - buffer.len()).min(bytes.len());
                    buffer.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if buffer.len() == PART_BYTES {
                        let part = std::mem::replace(buffer, Vec::with_capacity(PART_BYTES));
                        send_part(s3, path, id, parts, in_flight, part).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Completes the object and returns its size. On error nothing is
    /// visible under the key and the upload is discarded.
    pub async fn finish(mut self) -> Result<u64> {
        let target = self.target.take().expect("upload used after finish");
        match target {
            UploadTarget::Local {
                mut file,
                staging,
                path,
                ..
            } => {
                let outcome = async {
                    file.flush().await?;
                    file.get_ref().sync_all().await?;
                    tokio::fs::rename(&staging, &path).await
                }
                .await;
                if let Err(err) = outcome {
                    let _ = tokio::fs::remove_file(&staging).await;
                    return Err(local_error(err));
                }
                Ok(self.written)
            }
            UploadTarget::S3 {
                s3,
                path,
                id,
                buffer,
                mut parts,
                mut in_flight,
            } => {
                let outcome = async {
                    // S3 needs at least one part; an empty object is one empty part.
                    if !buffer.is_empty() || parts.is_empty() && in_flight.is_none() {
                        send_part(&s3, &path, &id, &mut parts, &mut in_flight, buffer).await?;
                    }
                    if let Some(last) = in_flight.take() {
                        parts.push(join_part(last).await?);
                    }
                    s3.complete_multipart(&path, &id, parts).await
                }
                .await;
                match outcome {
                    Ok(_) => Ok(self.written),
                    Err(err) => {
                        let _ = s3.abort_multipart(&path, &id).await;
                        Err(err)
                    }
                }
            }
        }
    }

    /// Discards everything written so far.
    pub async fn abort(mut self) -> Result<()> {
        match self.target.take() {
            Some(target) => abort_target(target).await,
            None => Ok(()),
        }
    }
}

/// Sends `part` once the part before it has arrived, keeping one in flight.
async fn send_part(
    s3: &Arc<AmazonS3>,
    path: &Path,
    id: &str,
    parts: &mut Vec<PartId>,
    in_flight: &mut Option<tokio::task::JoinHandle<Result<PartId>>>,
    part: Vec<u8>,
) -> Result<()> {
    if let Some(previous) = in_flight.take() {
        parts.push(join_part(previous).await?);
    }
    let (s3, path, id, index) = (s3.clone(), path.clone(), id.to_owned(), parts.len());
    *in_flight = Some(tokio::spawn(async move {
        s3.put_part(&path, &id, index, Bytes::from(part).into())
            .await
    }));
    Ok(())
}

async fn join_part(task: tokio::task::JoinHandle<Result<PartId>>) -> Result<PartId> {
    task.await.map_err(|err| Error::Generic {
        store: "S3",
        source: Box::new(err),
    })?
}

async fn abort_target(target: UploadTarget) -> Result<()> {
    match target {
        UploadTarget::Local { file, staging, .. } => {
            drop(file);
            match tokio::fs::remove_file(&staging).await {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(local_error(err)),
            }
        }
        UploadTarget::S3 {
            s3,
            path,
            id,
            in_flight,
            ..
        } => {
            if let Some(task) = in_flight {
                let _ = task.await;
            }
            s3.abort_multipart(&path, &id).await
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(target) = self.target.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = abort_target(target).await;
            });
        }
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

/// A local file as a stream of chunks of `chunk` bytes, each read by a
/// blocking task straight into the buffer it is handed on in: object_store
/// reads 8 KiB per blocking task, and tokio's `File` copies every chunk
/// once more out of its own buffer, on the core a full backup needs for
/// hashing.
fn read_local(file: std::fs::File, chunk: usize) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::try_unfold(Some(file), move |file| async move {
        let Some(mut file) = file else {
            return Ok(None);
        };
        let (file, bytes) = tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut bytes = Vec::with_capacity(chunk);
            let read = (&mut file).take(chunk as u64).read_to_end(&mut bytes);
            read.map(|_| (file, bytes))
        })
        .await
        .map_err(|err| local_error(err.into()))?
        .map_err(local_error)?;
        Ok(match bytes.len() {
            0 => None,
            n if n == chunk => Some((Bytes::from(bytes), Some(file))),
            _ => Some((Bytes::from(bytes), None)),
        })
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_files_are_read_whole_in_chunks_of_the_size_asked() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().to_str().unwrap()).unwrap();
        let content: Vec<u8> = (0..=255u8).cycle().take(10).collect();
        for len in [0, 1, 3, 4, 5, 8, 10] {
            let key = format!("blobs/{len}");
            storage
                .put(&key, Bytes::copy_from_slice(&content[..len]))
                .await
                .unwrap();
            let chunks: Vec<Bytes> = storage
                .read(&key, 4)
                .await
                .unwrap()
                .expect("the file exists")
                .try_collect()
                .await
                .unwrap();
            assert!(
                chunks.iter().all(|c| !c.is_empty() && c.len() <= 4),
                "{len}: {chunks:?}"
            );
            assert_eq!(chunks.concat(), &content[..len], "{len}");
            assert_eq!(chunks.len(), len.div_ceil(4), "{len}");
        }
        assert!(storage.read("blobs/none", 4).await.unwrap().is_none());
    }
}
