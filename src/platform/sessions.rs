//! The platform's session rows (`agent_sessions`): the org of a dispatch whose log line does
//! not name one ([`OrgCache`] + [`org_of`], batched), and log coverage ([`Coverage`]): a
//! session created in the database that never appeared as a dispatch within a grace period is
//! missing from the logs — the log pipeline dropped it, the session itself exists.
//!
//! [`Coverage`] and [`OrgCache`] are pure; the two queries at the end are the only I/O.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use sqlx::{PgPool, Row};

use super::PlatformError;
use super::config::SessionsConfig;
use crate::event::Timestamp;

/// One row of the sessions table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub id: String,
    pub org: Option<String>,
    pub status: Option<String>,
    pub created_at: Timestamp,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How a session's coverage was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Dispatched,
    Missing,
    /// Created before the horizon: its dispatch may have been forgotten, so it is not judged.
    Unjudged,
}

/// Sessions created in the database against dispatches seen in the logs.
///
/// A created session waits until `created_at + grace` (on the sidecar's clock); if no dispatch
/// with its id was seen by then it is missing, reported once. Dispatches seen before their row
/// was polled are remembered for `retention` (and at most `cap` of them); a session created
/// before the oldest remembered dispatch (the *horizon*) is never judged, so a long Postgres
/// outage or a restart cannot turn forgotten dispatches into false findings.
#[derive(Debug)]
pub struct Coverage {
    grace_ms: i64,
    retention_ms: i64,
    cap: usize,
    horizon: Timestamp,
    waiting: HashMap<String, CreatedSession>,
    deadlines: BTreeSet<(Timestamp, String)>,
    dispatched: HashMap<String, Timestamp>,
    /// (when recorded, id), oldest first.
    dispatched_order: VecDeque<(Timestamp, String)>,
    settled: HashMap<String, Settled>,
    /// (created_at, id), oldest first.
    settled_order: VecDeque<(Timestamp, String)>,
    missing_total: u64,
    unjudged_total: u64,
}

impl Coverage {
    /// `horizon`: sessions created before it are not judged (the start of the dispatch
    /// evidence this tracker will see: the sidecar's start, or the oldest replayed line).
    pub fn new(grace: Duration, horizon: Timestamp) -> Coverage {
        Coverage {
            grace_ms: ms(grace),
            retention_ms: ms(grace).saturating_mul(2).max(2 * 3600 * 1000),
            cap: 1_000_000,
            horizon,
            waiting: HashMap::new(),
            deadlines: BTreeSet::new(),
            dispatched: HashMap::new(),
            dispatched_order: VecDeque::new(),
            settled: HashMap::new(),
            settled_order: VecDeque::new(),
            missing_total: 0,
            unjudged_total: 0,
        }
    }

    /// Bounds memory: at most `cap` remembered dispatches and waiting sessions.
    pub fn with_cap(mut self, cap: usize) -> Coverage {
        self.cap = cap.max(1);
        self
    }

    pub fn missing_total(&self) -> u64 {
        self.missing_total
    }

    /// Sessions seen in the database but not judged (created before the horizon).
    pub fn unjudged_total(&self) -> u64 {
        self.unjudged_total
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn horizon(&self) -> Timestamp {
        self.horizon
    }

    fn settle(&mut self, id: String, created_at: Timestamp, how: Settled) {
        self.settled.insert(id.clone(), how);
        self.settled_order.push_back((created_at, id));
    }

    /// A dispatch of `session` seen in the logs at `now`. Returns true when that session had
    /// already been reported missing (its line arrived after the grace: the finding resolves).
    pub fn on_dispatch(&mut self, session: &str, now: Timestamp) -> bool {
        if let Some(s) = self.waiting.remove(session) {
            self.deadlines
                .remove(&(s.created_at.saturating_add_ms(self.grace_ms), s.id.clone()));
            self.settle(s.id, s.created_at, Settled::Dispatched);
            return false;
        }
        match self.settled.get_mut(session) {
            Some(how @ Settled::Missing) => {
                *how = Settled::Dispatched;
                return true;
            }
            Some(_) => return false,
            None => {}
        }
        if self.dispatched.insert(session.to_owned(), now).is_none() {
            self.dispatched_order.push_back((now, session.to_owned()));
        }
        while self.dispatched_order.len() > self.cap {
            self.forget_oldest_dispatch();
        }
        false
    }

    fn forget_oldest_dispatch(&mut self) {
        if let Some((at, id)) = self.dispatched_order.pop_front() {
            self.dispatched.remove(&id);
            self.horizon = self.horizon.max(at);
        }
    }

    /// Rows read from the database (re-reads of the same row are ignored).
    pub fn on_created(&mut self, sessions: &[CreatedSession]) {
        for s in sessions {
            if self.settled.contains_key(&s.id) || self.waiting.contains_key(&s.id) {
                continue;
            }
            if self.dispatched.remove(&s.id).is_some() {
                self.settle(s.id.clone(), s.created_at, Settled::Dispatched);
            } else if s.created_at < self.horizon {
                self.unjudged_total += 1;
                self.settle(s.id.clone(), s.created_at, Settled::Unjudged);
            } else {
                if self.waiting.len() >= self.cap
                    && let Some((_, id)) = self.deadlines.pop_first()
                    && let Some(old) = self.waiting.remove(&id)
                {
                    self.unjudged_total += 1;
                    self.settle(old.id, old.created_at, Settled::Unjudged);
                }
                self.deadlines
                    .insert((s.created_at.saturating_add_ms(self.grace_ms), s.id.clone()));
                self.waiting.insert(s.id.clone(), s.clone());
            }
        }
    }

    /// Sessions whose grace ended by `now` with no dispatch seen: each is returned once.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<CreatedSession> {
        let mut missing = Vec::new();
        while let Some((due, _)) = self.deadlines.first() {
            if *due > now {
                break;
            }
            let Some((_, id)) = self.deadlines.pop_first() else {
                break;
            };
            if let Some(s) = self.waiting.remove(&id) {
                self.settle(s.id.clone(), s.created_at, Settled::Missing);
                self.missing_total += 1;
                missing.push(s);
            }
        }
        let cutoff = now.saturating_add_ms(-self.retention_ms);
        while self
            .dispatched_order
            .front()
            .is_some_and(|(at, _)| *at < cutoff)
        {
            self.forget_oldest_dispatch();
        }
        while let Some((created, _)) = self.settled_order.front() {
            if *created >= cutoff {
                break;
            }
            if let Some((_, id)) = self.settled_order.pop_front() {
                self.settled.remove(&id);
            }
        }
        missing
    }
}

/// Orgs of sessions already looked up, bounded (oldest forgotten first). A session with no
/// row is cached as `None` too, so a stream of unknown ids costs one query each, not one per line.
#[derive(Debug)]
pub struct OrgCache {
    map: HashMap<String, Option<String>>,
    order: VecDeque<String>,
    cap: usize,
}

impl OrgCache {
    pub fn new(cap: usize) -> OrgCache {
        OrgCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// `Some(org)` if looked up before (`Some(None)`: the session has no row or no org).
    pub fn get(&self, session: &str) -> Option<Option<&str>> {
        self.map.get(session).map(Option::as_deref)
    }

    pub fn insert(&mut self, session: String, org: Option<String>) {
        if self.map.insert(session.clone(), org).is_none() {
            self.order.push_back(session);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The SQL type of the sessions' id column, so lookups compare in its type (and use its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Text,
    Uuid,
    Integer,
}

impl IdKind {
    fn of(sql_type: &str) -> IdKind {
        match sql_type {
            "uuid" => IdKind::Uuid,
            "bigint" | "integer" | "smallint" => IdKind::Integer,
            _ => IdKind::Text,
        }
    }

    /// Whether `id` can be a value of this type (others cannot have a row: no query for them).
    fn admits(self, id: &str) -> bool {
        match self {
            IdKind::Text => true,
            IdKind::Integer => id.parse::<i64>().is_ok(),
            IdKind::Uuid => {
                id.len() <= 36
                    && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                    && id.chars().filter(char::is_ascii_hexdigit).count() == 32
            }
        }
    }

    fn array_cast(self) -> &'static str {
        match self {
            IdKind::Text => "$1::text[]",
            IdKind::Uuid => "$1::text[]::uuid[]",
            IdKind::Integer => "$1::text[]::bigint[]",
        }
    }
}

/// Looks up the id column's type in the catalog.
pub async fn id_kind(pool: &PgPool, cfg: &SessionsConfig) -> Result<IdKind, PlatformError> {
    let row = sqlx::query(
        "SELECT format_type(a.atttypid, a.atttypmod) AS t FROM pg_attribute a \
         WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
    )
    .bind(cfg.table.sql())
    .bind(cfg.id.plain())
    .fetch_optional(pool)
    .await?;
    let t: Option<String> = match row {
        Some(r) => r.try_get("t")?,
        None => None,
    };
    Ok(t.map_or(IdKind::Text, |t| IdKind::of(&t)))
}

/// The orgs of `ids`, in one query. Ids with no row are absent from the answer.
pub async fn org_of(
    pool: &PgPool,
    cfg: &SessionsConfig,
    kind: IdKind,
    ids: &[String],
) -> Result<Vec<(String, Option<String>)>, PlatformError> {
    let ids: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| kind.admits(id))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {id}::text AS id, {org}::text AS org FROM {table} WHERE {id} = ANY({cast})",
        id = cfg.id.sql(),
        org = cfg.organization_id.sql(),
        table = cfg.table.sql(),
        cast = kind.array_cast(),
    );
    let rows = sqlx::query(&sql).bind(&ids).fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: Option<String> = r.try_get("id")?;
        if let Some(id) = id {
            out.push((id, r.try_get("org")?));
        }
    }
    Ok(out)
}

/// Rows created at or after `since`, oldest first, at most `limit`.
pub async fn created_since(
    pool: &PgPool,
    cfg: &SessionsConfig,
    since: Timestamp,
    limit: i64,
) -> Result<Vec<CreatedSession>, PlatformError> {
    let sql = format!(
        "SELECT {id}::text AS id, {status}::text AS status, {org}::text AS org, \
         (EXTRACT(EPOCH FROM {created})*1000)::bigint AS created_ms FROM {table} \
         WHERE {created} >= to_timestamp($1::float8 / 1000.0) ORDER BY {created}, {id} LIMIT $2",
        id = cfg.id.sql(),
        status = cfg.status.sql(),
        org = cfg.organization_id.sql(),
        created = cfg.created_at.sql(),
        table = cfg.table.sql(),
    );
    let rows = sqlx::query(&sql)
        .bind(since.millis() as f64)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (Some(id), Some(created)) = (
            r.try_get::<Option<String>, _>("id")?,
            r.try_get::<Option<i64>, _>("created_ms")?,
        ) else {
            continue;
        };
        out.push(CreatedSession {
            id,
            org: r.try_get("org")?,
            status: r.try_get("status")?,
            created_at: Timestamp(created),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_428_000_000;

    fn t(secs: i64) -> Timestamp {
        Timestamp(T0 + secs * 1000)
    }

    fn created(id: &str, at: i64) -> CreatedSession {
        CreatedSession {
            id: id.into(),
            org: Some("o1".into()),
            status: Some("queued".into()),
            created_at: t(at),
        }
    }

    #[test]
    fn a_session_never_dispatched_is_missing_once_after_the_grace() {
        let mut c = Coverage::new(Duration::from_secs(60), t(0));
        c.on_created(&[created("a", 10), created("b", 10), created("c", 20)]);
        assert!(!c.on_dispatch("a", t(15)));
        assert!(c.on_tick(t(69)).is_empty(), "not before the grace");
        let m = c.on_tick(t(70));
        assert_eq!(m.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["b"]);
        // re-read by the next poll's lookback: not reported again
        c.on_created(&[created("b", 10), created("c", 20)]);
        assert!(c.on_tick(t(75)).is_empty());
        c.on_dispatch("c", t(79));
        assert!(c.on_tick(t(200)).is_empty());
        assert_eq!(c.missing_total(), 1);
        // b's line turns up after all: the finding resolves, the count stays
        assert!(c.on_dispatch("b", t(201)));
        assert_eq!(c.missing_total(), 1);
    }

    #[test]
    fn a_dispatch_seen_before_its_row_counts() {
        let mut c = Coverage::new(Duration::from_secs(60), t(0));
        c.on_dispatch("a", t(5));
        c.on_created(&[created("a", 4)]);
        assert_eq!(c.waiting(), 0);
        assert!(c.on_tick(t(1000)).is_empty());
    }

    #[test]
    fn sessions_older_than_the_remembered_dispatches_are_not_judged() {
        let mut c = Coverage::new(Duration::from_secs(60), t(100));
        c.on_created(&[created("old", 50)]);
        assert_eq!(c.unjudged_total(), 1);
        // cap 2: forgetting a's dispatch moves the horizon to when it was recorded
        let mut c = Coverage::new(Duration::from_secs(60), t(0)).with_cap(2);
        c.on_dispatch("a", t(10));
        c.on_dispatch("b", t(11));
        c.on_dispatch("c", t(12));
        assert_eq!(c.horizon(), t(10));
        c.on_created(&[created("a", 9), created("b", 10)]);
        assert_eq!(
            c.unjudged_total(),
            1,
            "a may have been dispatched: not judged"
        );
        assert_eq!(c.waiting(), 0, "b's dispatch is still remembered");
        assert!(c.on_tick(t(1000)).is_empty());
    }

    proptest::proptest! {
        /// Whatever the order rows and dispatch lines arrive in (rows re-read by the lookback
        /// included), the sessions reported missing are exactly those never dispatched, once.
        #[test]
        fn missing_is_created_minus_dispatched_in_any_order(
            sessions in proptest::collection::vec((0i64..100, proptest::bool::ANY), 1..40),
            order in proptest::collection::vec(0usize..1000, 0..200),
        ) {
            // events: (row | dispatch, session index); rows appear twice (a re-read)
            let mut events: Vec<(bool, usize)> = Vec::new();
            for (i, (_, dispatched)) in sessions.iter().enumerate() {
                events.push((true, i));
                events.push((true, i));
                if *dispatched {
                    events.push((false, i));
                }
            }
            for (k, j) in order.iter().enumerate() {
                let n = events.len();
                events.swap(k % n, j % n);
            }
            let mut c = Coverage::new(Duration::from_secs(60), t(0));
            for (is_row, i) in events {
                let id = format!("s{i}");
                if is_row {
                    c.on_created(&[created(&id, sessions[i].0)]);
                } else {
                    c.on_dispatch(&id, t(sessions[i].0 + 1));
                }
                c.on_tick(t(0));
            }
            let mut missing: Vec<String> =
                c.on_tick(t(10_000)).into_iter().map(|s| s.id).collect();
            missing.extend(c.on_tick(t(20_000)).into_iter().map(|s| s.id));
            missing.sort();
            let mut want: Vec<String> = sessions
                .iter()
                .enumerate()
                .filter(|(_, (_, d))| !d)
                .map(|(i, _)| format!("s{i}"))
                .collect();
            want.sort();
            proptest::prop_assert_eq!(missing, want);
        }
    }

    #[test]
    fn org_cache_is_bounded() {
        let mut cache = OrgCache::new(2);
        cache.insert("a".into(), Some("o1".into()));
        cache.insert("b".into(), None);
        assert_eq!(cache.get("a"), Some(Some("o1")));
        assert_eq!(cache.get("b"), Some(None));
        cache.insert("c".into(), Some("o2".into()));
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn id_kinds_filter_what_cannot_have_a_row() {
        assert!(IdKind::Uuid.admits("0b8f7a1e-2c1d-4e5f-9a8b-7c6d5e4f3a2b"));
        assert!(!IdKind::Uuid.admits("ses_123"));
        assert!(IdKind::Integer.admits("42") && !IdKind::Integer.admits("ses_1"));
        assert!(IdKind::Text.admits("ses_1"));
        assert_eq!(IdKind::of("character varying(64)"), IdKind::Text);
    }
}
