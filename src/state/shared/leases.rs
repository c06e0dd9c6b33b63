//! Sweep leases, one per bucket: a bucket's due sessions are swept by the replica holding its
//! lease, so a deadline is acted on by one replica, and a replica that dies (stops renewing)
//! loses its buckets to the others when their leases expire. Redis's own expiry is the
//! clock, so replicas whose clocks disagree still agree on who holds a lease.
//!
//! A lease decides who *tries* to sweep; that a session is judged once is the judge script's
//! compare-and-set, so a lease that expires mid-sweep costs a wasted sweep, never a double
//! count.

use std::sync::LazyLock;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::Script;

use super::conn::Redis;
use super::keys::Keys;
use crate::state::StateError;

static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease.lua")));

/// Takes or renews the leases of `buckets` for `instance`, each for `ttl` (one script call per
/// bucket, sent together); returns, per bucket, whether `instance` holds it now.
pub async fn acquire(
    redis: &Redis,
    keys: &Keys,
    buckets: &[u16],
    instance: &str,
    ttl: Duration,
) -> Result<Vec<bool>, StateError> {
    // Zero would give the lease up: a lease is at least a millisecond.
    let ms = ttl.as_millis().clamp(1, u128::from(u32::MAX)).to_string();
    call(redis, keys, buckets, instance, &ms).await
}

/// Gives up the leases of `buckets` that `instance` holds (a replica shutting down hands its
/// buckets over at once instead of after the lease).
pub async fn release(
    redis: &Redis,
    keys: &Keys,
    buckets: &[u16],
    instance: &str,
) -> Result<(), StateError> {
    call(redis, keys, buckets, instance, "0").await.map(|_| ())
}

async fn call(
    redis: &Redis,
    keys: &Keys,
    buckets: &[u16],
    instance: &str,
    ms: &str,
) -> Result<Vec<bool>, StateError> {
    let held = redis
        .call("lease", |conn| {
            try_join_all(buckets.iter().map(move |&b| {
                let mut conn = conn.clone();
                let key = keys.lease(b);
                async move {
                    LEASE
                        .key(key)
                        .arg(instance)
                        .arg(ms)
                        .invoke_async::<i64>(&mut conn)
                        .await
                }
            }))
        })
        .await?;
    Ok(held.into_iter().map(|h| h == 1).collect())
}
