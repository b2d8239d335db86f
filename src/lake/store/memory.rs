//! The lake in memory (delta-rs' `new_in_memory`): the commit protocol, `lake verify` and the table spec are unit
//! tested over it without a network or a folder. Faults are injected here, outside the production code: a put can
//! be made to fail after a number of successful ones, which is how the tests crash a commit at every step.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use super::{BoxFuture, Etag, ObjectInfo, ObjectStore, Put, StoreError, content_etag};

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every put after this many more successful ones fails (a crash: nothing after it happens).
    CrashAfterPuts(usize),
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    fault: Mutex<Option<Fault>>,
    /// Successful puts so far.
    pub puts: std::sync::atomic::AtomicUsize,
}

impl MemoryStore {
    pub fn inject(&self, fault: Option<Fault>) {
        *self.fault.lock().expect("lock") = fault;
    }

    /// A copy of every object (to compare two lakes).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects.lock().expect("lock").clone()
    }

    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        self.objects.lock().expect("lock").insert(key.into(), bytes);
    }
}

impl ObjectStore for MemoryStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, mode: Put) -> BoxFuture<'a, Etag> {
        Box::pin(async move {
            let mut fault = self.fault.lock().expect("lock");
            if let Some(Fault::CrashAfterPuts(n)) = *fault {
                if n == 0 {
                    return Err(StoreError::Request {
                        op: "put",
                        key: key.into(),
                        reason: "fault injected: the process is gone".into(),
                        transient: false,
                    });
                }
                *fault = Some(Fault::CrashAfterPuts(n - 1));
            }
            drop(fault);
            let mut objects = self.objects.lock().expect("lock");
            let holds = match (&mode, objects.get(key)) {
                (Put::Overwrite, _) | (Put::Create, None) => true,
                (Put::Replace(etag), Some(b)) => &content_etag(b) == etag,
                _ => false,
            };
            if !holds {
                return Err(StoreError::Conflict { key: key.into() });
            }
            let etag = content_etag(&bytes);
            objects.insert(key.into(), bytes);
            self.puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(etag)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<(Vec<u8>, Etag)>> {
        Box::pin(async move { Ok(self.objects.lock().expect("lock").get(key).map(|b| (b.clone(), content_etag(b)))) })
    }

    fn get_range<'a>(&'a self, key: &'a str, range: Range<u64>) -> BoxFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let objects = self.objects.lock().expect("lock");
            let b = objects.get(key).ok_or_else(|| StoreError::Request {
                op: "get",
                key: key.into(),
                reason: "no such key".into(),
                transient: false,
            })?;
            let end = (range.end as usize).min(b.len());
            Ok(b[(range.start as usize).min(end)..end].to_vec())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.objects.lock().expect("lock").remove(key);
            Ok(())
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move { Ok(self.objects.lock().expect("lock").get(key).map(|b| b.len() as u64)) })
    }

    fn list<'a>(&'a self, under: &'a str) -> BoxFuture<'a, Vec<ObjectInfo>> {
        Box::pin(async move {
            Ok(self
                .objects
                .lock()
                .expect("lock")
                .iter()
                .filter(|(k, _)| k.starts_with(under))
                .map(|(k, b)| ObjectInfo { key: k.clone(), size: b.len() as u64, modified: None })
                .collect())
        })
    }
}
