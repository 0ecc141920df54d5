//! The services besides S3 objects, in memory: the artifact bucket the
//! breaker keeps its state in, the held-deletes queue and the alarm. Every
//! call yields to the executor first, so the schedule interleaves them
//! with everything else, as concurrent invocations interleave on AWS.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::executor::yield_now;
use crate::store::services::{Alarm, Artifacts, HeldDeletes, HeldMessage, ServiceResult};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// One region's artifact bucket: key → body.
#[derive(Debug, Clone, Default)]
pub struct MemoryArtifacts {
    objects: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemoryArtifacts {
    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }

    /// Deletes `key` (as `toastrep deletes` closes a breaker).
    pub fn remove(&self, key: &str) {
        lock(&self.objects).remove(key);
    }
}

impl Artifacts for MemoryArtifacts {
    async fn put_empty(&self, key: &str) -> ServiceResult<()> {
        yield_now().await;
        lock(&self.objects).insert(key.to_owned(), Vec::new());
        Ok(())
    }

    async fn count(&self, prefix: &str, at_most: u32) -> ServiceResult<u32> {
        yield_now().await;
        let objects = lock(&self.objects);
        let under = objects
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(at_most as usize)
            .count();
        Ok(under as u32)
    }

    async fn exists(&self, key: &str) -> ServiceResult<bool> {
        yield_now().await;
        Ok(lock(&self.objects).contains_key(key))
    }

    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> ServiceResult<()> {
        yield_now().await;
        lock(&self.objects).insert(key.to_owned(), body);
        Ok(())
    }

    async fn get(&self, key: &str) -> ServiceResult<Option<Vec<u8>>> {
        yield_now().await;
        Ok(lock(&self.objects).get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> ServiceResult<Vec<String>> {
        yield_now().await;
        let objects = lock(&self.objects);
        Ok(objects
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn create(&self, key: &str, body: Vec<u8>, _content_type: &str) -> ServiceResult<bool> {
        yield_now().await;
        let mut objects = lock(&self.objects);
        if objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_owned(), body);
        Ok(true)
    }
}

/// A queue: every message sent, oldest first, until taken.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueue {
    messages: Arc<Mutex<Vec<HeldMessage>>>,
}

impl MemoryQueue {
    /// Every message in the queue, taken off it.
    pub fn take_all(&self) -> Vec<HeldMessage> {
        std::mem::take(&mut *lock(&self.messages))
    }

    pub fn len(&self) -> usize {
        lock(&self.messages).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl HeldDeletes for MemoryQueue {
    async fn send(&self, message: HeldMessage) -> ServiceResult<()> {
        yield_now().await;
        lock(&self.messages).push(message);
        Ok(())
    }
}

/// An alarm: every reason it was raised for.
#[derive(Debug, Clone, Default)]
pub struct MemoryAlarm {
    raised: Arc<Mutex<Vec<String>>>,
}

impl MemoryAlarm {
    pub fn raised(&self) -> usize {
        lock(&self.raised).len()
    }
}

impl Alarm for MemoryAlarm {
    async fn raise(&self, reason: &str) -> ServiceResult<()> {
        yield_now().await;
        lock(&self.raised).push(reason.to_owned());
        Ok(())
    }
}
