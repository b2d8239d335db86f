//! The lake in a local folder (the embedded default): atomic whole-file writes, and conditional writes guarded by
//! an exclusive lock on a hidden lock file beside the object, so two processes on one host see one winner.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{BoxFuture, Etag, ObjectInfo, ObjectStore, Put, StoreError, content_etag};

#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<LocalStore, StoreError> {
        if root.exists() && !root.is_dir() {
            return Err(StoreError::Io {
                op: "open the lake folder",
                path: root.to_path_buf(),
                source: std::io::Error::other("it exists and is not a folder"),
            });
        }
        Ok(LocalStore { root: root.to_path_buf() })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Config(e.to_string()))?
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io { op: "read", path: path.to_path_buf(), source }),
    }
}

/// Compare-and-write under an exclusive lock on `.<name>.lock` in the object's folder.
fn put_conditional(path: &Path, key: &str, bytes: &[u8], mode: &Put) -> Result<(), StoreError> {
    let io = |op, source| StoreError::Io { op, path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create folder", e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!(".{name}.lock")))
        .map_err(|e| io("open lock", e))?;
    lock.lock().map_err(|e| io("lock", e))?;
    let current = read(path)?;
    let holds = match (mode, &current) {
        (Put::Overwrite, _) => true,
        (Put::Create, None) => true,
        (Put::Replace(etag), Some(b)) => &content_etag(b) == etag,
        _ => false,
    };
    if !holds {
        return Err(StoreError::Conflict { key: key.into() });
    }
    write_atomic(path, bytes)
}

impl ObjectStore for LocalStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, mode: Put) -> BoxFuture<'a, Etag> {
        let path = self.root.join(key);
        let key = key.to_string();
        Box::pin(blocking(move || {
            let etag = content_etag(&bytes);
            match mode {
                Put::Overwrite => write_atomic(&path, &bytes)?,
                mode => put_conditional(&path, &key, &bytes, &mode)?,
            }
            tracing::trace!(key, bytes = bytes.len(), "stored");
            Ok(etag)
        }))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<(Vec<u8>, Etag)>> {
        let path = self.root.join(key);
        Box::pin(blocking(move || {
            Ok(read(&path)?.map(|b| {
                let e = content_etag(&b);
                (b, e)
            }))
        }))
    }

    fn get_range<'a>(&'a self, key: &'a str, range: Range<u64>) -> BoxFuture<'a, Vec<u8>> {
        let path = self.root.join(key);
        Box::pin(blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let io = |op, source| StoreError::Io { op, path: path.clone(), source };
            let mut f = std::fs::File::open(&path).map_err(|e| io("open", e))?;
            f.seek(SeekFrom::Start(range.start)).map_err(|e| io("seek", e))?;
            let mut out = Vec::with_capacity((range.end - range.start) as usize);
            f.take(range.end - range.start).read_to_end(&mut out).map_err(|e| io("read", e))?;
            Ok(out)
        }))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        let path = self.root.join(key);
        Box::pin(async move {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StoreError::Io { op: "delete", path, source }),
            }
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<u64>> {
        let path = self.root.join(key);
        Box::pin(async move {
            match tokio::fs::metadata(&path).await {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(StoreError::Io { op: "stat", path, source }),
            }
        })
    }

    fn list<'a>(&'a self, under: &'a str) -> BoxFuture<'a, Vec<ObjectInfo>> {
        let (root, under) = (self.root.clone(), under.to_string());
        Box::pin(blocking(move || list_local(&root, &under)))
    }
}

/// Writes a file whole: temporary file in the same folder, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let io = |op, source| StoreError::Io { op, path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create folder", e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A leading dot keeps half-written files hidden from Athena and from our own listing; the counter keeps two
    // writes of one key from sharing a temporary file.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))
}

fn list_local(root: &Path, under: &str) -> Result<Vec<ObjectInfo>, StoreError> {
    let mut out = Vec::new();
    let start = root.join(under);
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(StoreError::Io { op: "list", path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io { op: "list", path: dir.clone(), source })?;
            let path = entry.path();
            // A write in progress (a hidden temporary file) may be renamed away between the listing and the stat:
            // hidden names are skipped unread, and whatever vanished meanwhile is simply not listed.
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Io { op: "stat", path: path.clone(), source }),
            };
            if meta.is_dir() {
                stack.push(path);
            } else if !hidden {
                let key = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                let modified = meta.modified().ok().map(chrono::DateTime::<chrono::Utc>::from);
                out.push(ObjectInfo { key, size: meta.len(), modified });
            }
        }
    }
    Ok(out)
}
