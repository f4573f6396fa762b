//! The heads of recently written history chains, kept so a step need not read its
//! chain's head back.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// Heads of recently written history chains, keyed by instance id: `(version, hash)`.
///
/// A step must link its history row to the previous hash. Reading it back costs a
/// statement per step; the runner has just loaded or committed the instance, so the head
/// is almost always here. An entry is only trusted for the exact version it records and
/// the instance UPDATE re-checks the hash, so a stale entry costs a conflict, never a
/// broken chain.
pub(crate) struct HeadCache(Mutex<LruCache<String, (i64, String)>>);

impl std::fmt::Debug for HeadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadCache")
    }
}

const HEAD_CACHE_ENTRIES: NonZeroUsize = match NonZeroUsize::new(65_536) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

impl HeadCache {
    pub fn new() -> Self {
        HeadCache(Mutex::new(LruCache::new(HEAD_CACHE_ENTRIES)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut LruCache<String, (i64, String)>) -> T) -> T {
        // A panic while holding this lock cannot leave the map inconsistent.
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    pub fn get(&self, instance_id: &str, version: i64) -> Option<String> {
        self.with(|cache| match cache.get(instance_id) {
            Some((cached_version, hash)) if *cached_version == version => Some(hash.clone()),
            _ => None,
        })
    }

    pub fn put(&self, instance_id: String, version: i64, hash: String) {
        self.with(|cache| {
            cache.put(instance_id, (version, hash));
        });
    }

    pub fn forget(&self, instance_id: &str) {
        self.with(|cache| {
            cache.pop(instance_id);
        });
    }
}
