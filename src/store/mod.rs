//! store: the sidecar's durable state through sqlx, SQLite for now (a file path or
//! `sqlite://…` URL). Each batch is committed in one transaction with the file position
//! that produced it, so a `kill -9` at any moment and a restart neither lose a line nor count
//! one twice: lines after the committed position are read again, lines before it never are.
//!
//! What is stored is the accepted event lines themselves; recovery re-parses and replays them
//! in order, with their receive times, which rebuilds the live state exactly.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Transaction};

use crate::event::{Runner, Timestamp};
use crate::sources::tail::Position;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store: stored summary is not valid JSON: {0}")]
    Summary(#[from] serde_json::Error),
}

/// One accepted event line, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub received_at: Timestamp,
    pub source: String,
    pub line: u32,
    pub session: Option<String>,
    pub entry_id: Option<String>,
    pub default_runtime: Option<Runner>,
    pub raw: Vec<u8>,
}

/// Everything one batch changes, written in one transaction.
#[derive(Debug, Default)]
pub struct Commit {
    pub lines: Vec<StoredLine>,
    /// The followed file's position after the batch's lines.
    pub position: Option<(String, Position)>,
    /// Sessions forgotten (past retention): their lines are deleted.
    pub forgotten: Vec<String>,
    pub summary_json: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn runtime_str(r: Option<Runner>) -> Option<&'static str> {
    r.map(Runner::as_str)
}

fn runtime_of(s: Option<String>) -> Option<Runner> {
    s.map(|s| Runner::from_value(&s))
}

impl Store {
    /// Opens (creating if needed) the store at `url`: `sqlite://path`, or a plain path.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let opts = match url.strip_prefix("sqlite:") {
            Some(_) => SqliteConnectOptions::from_str(url)?,
            None => SqliteConnectOptions::new().filename(Path::new(url)),
        }
        .create_if_missing(true)
        // WAL + NORMAL: a committed transaction survives the process being killed.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn commit(&self, c: &Commit) -> Result<(), StoreError> {
        let mut tx: Transaction<'_, sqlx::Sqlite> = self.pool.begin().await?;
        for l in &c.lines {
            sqlx::query(
                "INSERT INTO events (received_at, source, line, session, entry_id, default_runtime, raw) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(l.received_at.millis())
            .bind(&l.source)
            .bind(i64::from(l.line))
            .bind(&l.session)
            .bind(&l.entry_id)
            .bind(runtime_str(l.default_runtime))
            .bind(&l.raw)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((path, p)) = &c.position {
            sqlx::query(
                "INSERT INTO positions (path, dev, ino, head, \"offset\", partial) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, head = excluded.head, \
                 \"offset\" = excluded.\"offset\", partial = excluded.partial",
            )
            .bind(path)
            .bind(i64::try_from(p.dev).unwrap_or(i64::MAX))
            .bind(i64::try_from(p.ino).unwrap_or(i64::MAX))
            .bind(&p.head)
            .bind(i64::try_from(p.offset).unwrap_or(i64::MAX))
            .bind(&p.partial)
            .execute(&mut *tx)
            .await?;
        }
        for s in &c.forgotten {
            sqlx::query("DELETE FROM events WHERE session = ?")
                .bind(s)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(json) = &c.summary_json {
            sqlx::query("INSERT INTO summary (id, json) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json")
                .bind(json)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every stored line, oldest first.
    pub async fn lines(&self) -> Result<Vec<StoredLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT received_at, source, line, session, entry_id, default_runtime, raw FROM events ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredLine {
                    received_at: Timestamp(r.try_get(0)?),
                    source: r.try_get(1)?,
                    line: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(u32::MAX),
                    session: r.try_get(3)?,
                    entry_id: r.try_get(4)?,
                    default_runtime: runtime_of(r.try_get(5)?),
                    raw: r.try_get(6)?,
                })
            })
            .collect()
    }

    pub async fn position(&self, path: &str) -> Result<Option<Position>, StoreError> {
        let row =
            sqlx::query("SELECT dev, ino, head, \"offset\", partial FROM positions WHERE path = ?")
                .bind(path)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Position {
            dev: u64::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
            ino: u64::try_from(r.try_get::<i64, _>(1)?).unwrap_or(0),
            head: r.try_get(2)?,
            offset: u64::try_from(r.try_get::<i64, _>(3)?).unwrap_or(0),
            partial: r.try_get(4)?,
        }))
    }

    pub async fn summary_json(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT json FROM summary WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("state.db").display().to_string();
        let store = Store::open(&url).await.unwrap();
        let line = |s: &str, n: u32| StoredLine {
            received_at: Timestamp(1),
            source: "f".into(),
            line: n,
            session: Some(s.into()),
            entry_id: None,
            default_runtime: Some(Runner::Go),
            raw: b"{}".to_vec(),
        };
        let pos = Position {
            dev: 1,
            ino: 2,
            head: b"h".to_vec(),
            offset: 10,
            partial: b"p".to_vec(),
        };
        store
            .commit(&Commit {
                lines: vec![line("a", 1), line("b", 2)],
                position: Some(("/x.log".into(), pos.clone())),
                forgotten: vec![],
                summary_json: Some("{\"matched\":1}".into()),
            })
            .await
            .unwrap();
        store
            .commit(&Commit {
                forgotten: vec!["a".into()],
                ..Commit::default()
            })
            .await
            .unwrap();
        drop(store);
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.lines().await.unwrap(), vec![line("b", 2)]);
        assert_eq!(store.position("/x.log").await.unwrap(), Some(pos));
        assert_eq!(store.position("/y.log").await.unwrap(), None);
        assert_eq!(
            store.summary_json().await.unwrap().as_deref(),
            Some("{\"matched\":1}")
        );
    }
}
