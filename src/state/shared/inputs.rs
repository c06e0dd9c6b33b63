//! Global source ids: `Origin::input` numbers one replica's own sources, so two replicas'
//! input 0 are different files. A record's origin is stored with a global id instead,
//! given once per source (`instance/input`) by `input.lua` and kept, so the earliest-origin
//! rule compares the same numbers on every replica and an origin reads back on any of them
//! as the source it came from, cited by the name its replica gave it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use redis::Script;

use super::conn::Redis;
use super::keys::Keys;
use crate::state::StateError;

static INPUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("input.lua")));

/// The global ids of `sources` (named `instance/input`, each with the name its lines are
/// cited by, if known), given now if they had none.
pub async fn register(
    redis: &Redis,
    keys: &Keys,
    sources: &[(String, Option<&str>)],
) -> Result<Vec<u16>, StateError> {
    let mut inv = INPUT.prepare_invoke();
    inv.key(keys.inputs()).key(keys.input_names());
    for (s, name) in sources {
        inv.arg(s).arg(name.unwrap_or_default());
    }
    let ids: Vec<i64> = redis
        .call("inputs", |mut conn| async move {
            inv.invoke_async(&mut conn).await
        })
        .await?;
    ids.into_iter()
        .map(|id| u16::try_from(id).map_err(|_| StateError::Corrupt(format!("input id {id}"))))
        .collect()
}

/// The names sources' lines are cited by, by global id.
pub async fn names(redis: &Redis, keys: &Keys) -> Result<BTreeMap<u16, String>, StateError> {
    let key = keys.input_names();
    let all: Vec<(u16, String)> = redis
        .call("inputs", |mut conn| async move {
            redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
        })
        .await?;
    Ok(all.into_iter().collect())
}

/// Every source named so far, by global id.
pub async fn read(redis: &Redis, keys: &Keys) -> Result<BTreeMap<u16, String>, StateError> {
    let key = keys.inputs();
    let all: Vec<(String, String)> = redis
        .call("inputs", |mut conn| async move {
            redis::cmd("HGETALL").arg(key).query_async(&mut conn).await
        })
        .await?;
    all.into_iter()
        .filter(|(name, _)| !name.starts_with('#'))
        .map(|(name, id)| {
            let id = id
                .parse()
                .map_err(|_| StateError::Corrupt(format!("input {name:?} = {id:?}")))?;
            Ok((id, name))
        })
        .collect()
}
