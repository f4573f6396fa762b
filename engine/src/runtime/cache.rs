//! What the engine keeps between steps: the state it last committed per instance.

use super::*;

/// Instances whose last committed state an engine keeps: a few KB each, so tens of MB at
/// most, and far more than the cases a node has in flight at once.
pub(super) const INSTANCE_CACHE_ENTRIES: NonZeroUsize = match NonZeroUsize::new(8_192) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// How long a node keeps starting cases on the latest version it read. A deploy through
/// this engine takes effect at once; one by another process (`jiuzhu deploy` beside a
/// running node) is seen within this time.
pub(super) const LATEST_DEPLOYMENT_TTL: Duration = Duration::from_secs(1);

/// An instance as this engine last committed it.
#[derive(Clone)]
pub(super) struct CachedInstance {
    /// The row version the commit wrote: the next step's expected version.
    pub(super) version: i64,
    pub(super) process_version: i64,
    pub(super) def: Arc<Definition>,
    pub(super) state: Arc<InstanceState>,
}

/// The instances this engine last committed, least recently used dropped first.
pub(super) struct InstanceCache(Mutex<LruCache<String, CachedInstance>>);

impl InstanceCache {
    pub(super) fn new(entries: NonZeroUsize) -> Self {
        InstanceCache(Mutex::new(LruCache::new(entries)))
    }

    pub(super) fn get(&self, instance_id: &str) -> Option<CachedInstance> {
        lock(&self.0).get(instance_id).cloned()
    }

    /// Keeps what a commit wrote, unless a later version is already here (two steps of
    /// one instance may finish their commits in either order).
    pub(super) fn remember(&self, row: &InstanceRow, def: Arc<Definition>, state: InstanceState) {
        let mut cache = lock(&self.0);
        if cache
            .peek(&row.id)
            .is_some_and(|cached| cached.version >= row.version)
        {
            return;
        }
        cache.put(
            row.id.clone(),
            CachedInstance {
                version: row.version,
                process_version: row.process_version,
                def,
                state: Arc::new(state),
            },
        );
    }

    /// True when the instance is held; it then counts as just used, so what is about to
    /// be used is not the next to go.
    pub(super) fn touch(&self, instance_id: &str) -> bool {
        lock(&self.0).get(instance_id).is_some()
    }

    pub(super) fn forget(&self, instance_id: &str) {
        lock(&self.0).pop(instance_id);
    }
}
