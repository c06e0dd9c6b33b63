//! A throwaway Postgres database per test, on the machine's server: tests run in parallel and
//! again without seeing each other's rows. Dropped (forcibly) when the guard goes.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// The server's admin URL; `CLAIMCHECK_TEST_POSTGRES` overrides it.
pub fn admin_url() -> String {
    std::env::var("CLAIMCHECK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[derive(Debug)]
pub struct ScratchDb {
    pub name: String,
    pub url: String,
}

impl ScratchDb {
    pub async fn new() -> ScratchDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "cc_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("Postgres at {admin} (run scripts/test.sh to start it): {e}")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        ScratchDb {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) % 1_000_000
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and psql ships with the server.
        let _ = Command::new("psql")
            .args([
                &admin_url(),
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}
