//! The commits of ingested batches, on a task of their own: while one transaction is written the
//! actor parses and correlates the next batches, so on two cores the store's half and the
//! actor's half overlap instead of taking turns.
//!
//! Each group of batches the actor takes becomes a [`Job`]: its commits, its senders, the
//! ingest counts its lines make and the totals as they stood once it was taken. The committer
//! takes the jobs in order, and every job queued behind the one it wrote goes into its next
//! transaction, up to the group bounds (a lone actor takes fewer batches at a time than one
//! that waited for each commit: merged here, transactions stay as large). Nothing of a job is
//! shown before its transaction lands: its senders are answered, its lines counted and its
//! totals published only then, and [`Committer::landed`] lets the actor wait until everything
//! it took has landed (a query it answers from memory shows only what is stored).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::durable::Durable;
use super::view::Summary;
use crate::sinks::metrics::{IngestCounters, LineCounts};
use crate::sources::batch::BatchResult;
use crate::store::Commit;

/// Most batches committed together: what queued while the last commit ran, up to a bound,
/// so one commit (and the answers waiting for it) stays short. Everything a group makes —
/// stored copies of its lines, outcome rows, findings — is held until its commit lands, so
/// the bounds are memory bounds too (a group of 65,536 lines held ≈ 40 MB).
pub(super) const GROUP_BATCHES: usize = 64;
pub(super) const GROUP_LINES: usize = 16_384;
pub(super) const GROUP_BYTES: usize = 4 << 20;

/// Where a batch's sender waits for what became of it.
pub(super) type Answer = tokio::sync::oneshot::Sender<Result<BatchResult, String>>;

/// What a group of batches the actor took leaves to commit and, once committed, to show.
#[derive(Debug, Default)]
pub(super) struct Job {
    pub commits: Vec<Commit>,
    /// Each batch's sender, if it waits, and what became of its lines.
    pub answers: Vec<(Option<Answer>, BatchResult)>,
    /// The ingest counters the batches' lines move.
    pub counts: LineCounts,
    /// The totals once the batches were taken (`None` with a shared state, which publishes
    /// every replica's).
    pub summary: Option<Summary>,
    pub lines: usize,
    pub bytes: usize,
}

/// What the committer has done so far, for the actor to wait on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Landed {
    /// Jobs done with (committed, or given up at shutdown).
    pub jobs: u64,
    /// Batches, and their event lines, that could not be committed (at shutdown).
    pub uncommitted: (u64, u64),
}

/// The actor's end: sends jobs, and waits for them to land.
#[derive(Debug)]
pub(super) struct Committer {
    tx: mpsc::Sender<(Job, Option<OwnedSemaphorePermit>)>,
    /// Bytes of jobs sent and not landed, in KiB: at most two groups' worth (the one being
    /// written and the next), a memory bound like the group bounds.
    room: Arc<Semaphore>,
    sent: u64,
    landed: watch::Receiver<Landed>,
}

const ROOM_KIB: usize = 2 * GROUP_BYTES / 1024;

impl Committer {
    /// Starts the task committing through `durable`; `published` is where totals go.
    pub(super) fn start(
        durable: Durable,
        counters: IngestCounters,
        published: watch::Sender<Summary>,
    ) -> (Committer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(GROUP_BATCHES);
        let (landed_tx, landed) = watch::channel(Landed::default());
        let task = tokio::spawn(run(durable, counters, published, rx, landed_tx));
        let committer = Committer {
            tx,
            room: Arc::new(Semaphore::new(ROOM_KIB)),
            sent: 0,
            landed,
        };
        (committer, task)
    }

    /// Hands `job` to the committer, first waiting for room if two groups wait already.
    pub(super) async fn send(&mut self, job: Job) {
        let kib = (job.bytes / 1024 + 1).min(GROUP_BYTES / 1024);
        let Ok(room) = self
            .room
            .clone()
            .acquire_many_owned(u32::try_from(kib).unwrap_or(u32::MAX))
            .await
        else {
            return;
        };
        if self.tx.send((job, Some(room))).await.is_ok() {
            self.sent += 1;
        }
    }

    /// Waits until every job sent has landed (or was given up); what the committer has done.
    pub(super) async fn landed(&mut self) -> Landed {
        let sent = self.sent;
        let done = self.landed.wait_for(|l| l.jobs >= sent).await.map(|l| *l);
        // Err: the task is gone (a panic), and nothing more will land.
        done.unwrap_or_else(|_| *self.landed.borrow())
    }
}

async fn run(
    durable: Durable,
    counters: IngestCounters,
    published: watch::Sender<Summary>,
    mut rx: mpsc::Receiver<(Job, Option<OwnedSemaphorePermit>)>,
    landed: watch::Sender<Landed>,
) {
    while let Some(first) = rx.recv().await {
        let jobs = queued(first, &mut rx);
        let n = jobs.len() as u64;
        let uncommitted = land(&durable, &counters, &published, jobs).await;
        landed.send_modify(|l| {
            l.jobs += n;
            l.uncommitted.0 += uncommitted.0;
            l.uncommitted.1 += uncommitted.1;
        });
    }
}

/// `first` and the jobs queued behind it, up to the group bounds, without waiting for more.
fn queued<T>(first: (Job, T), rx: &mut mpsc::Receiver<(Job, T)>) -> Vec<(Job, T)> {
    let (mut batches, mut lines, mut bytes) = (first.0.commits.len(), first.0.lines, first.0.bytes);
    let mut jobs = vec![first];
    while batches < GROUP_BATCHES && lines < GROUP_LINES && bytes < GROUP_BYTES {
        let Ok(next) = rx.try_recv() else {
            break;
        };
        batches += next.0.commits.len();
        lines += next.0.lines;
        bytes += next.0.bytes;
        jobs.push(next);
    }
    jobs
}

/// Commits `jobs` in one transaction, then counts their lines, publishes the last totals and
/// answers their senders; what could not be committed (batches, event lines).
pub(super) async fn land(
    durable: &Durable,
    counters: &IngestCounters,
    published: &watch::Sender<Summary>,
    mut jobs: Vec<(Job, Option<OwnedSemaphorePermit>)>,
) -> (u64, u64) {
    let commits: Vec<Commit> = jobs
        .iter_mut()
        .flat_map(|(j, _)| std::mem::take(&mut j.commits))
        .collect();
    let stored = durable.commit_all(&commits).await;
    let mut uncommitted = (0, 0);
    if stored.is_err() {
        uncommitted.0 += commits.len() as u64;
        uncommitted.1 += commits
            .iter()
            .flat_map(|c| &c.lines)
            .map(|l| l.len() as u64)
            .sum::<u64>();
    }
    drop(commits);
    let mut summary = None;
    let mut answers = Vec::new();
    let mut rooms = Vec::with_capacity(jobs.len());
    for (job, room) in jobs {
        counters.count(&job.counts);
        summary = job.summary.or(summary);
        answers.extend(job.answers);
        rooms.push(room);
    }
    if let Some(s) = summary {
        published.send_replace(s);
    }
    for (done, result) in answers {
        if let Some(done) = done {
            // The sender may have given up waiting; the lines are recorded all the same.
            let _ = done.send(match &stored {
                Ok(()) => Ok(result),
                Err(e) => Err(e.to_string()),
            });
        }
    }
    drop(rooms);
    uncommitted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::metrics::{LineResult, Metrics};

    fn job(batches: usize, lines: usize) -> Job {
        Job {
            commits: (0..batches).map(|_| Commit::default()).collect(),
            lines,
            bytes: lines * 200,
            ..Job::default()
        }
    }

    /// Every job queued behind the one taken goes into the same transaction, up to the group
    /// bounds; none is waited for.
    #[tokio::test]
    async fn queued_jobs_are_merged_up_to_the_group_bounds() {
        let (tx, mut rx) = mpsc::channel(128);
        for _ in 0..5 {
            tx.send((job(1, 5_000), ())).await.unwrap();
        }
        let first = rx.recv().await.unwrap();
        // 5,000 lines each: the fourth crosses 16,384 lines, the fifth waits.
        assert_eq!(queued(first, &mut rx).len(), 4);
        let first = rx.recv().await.unwrap();
        assert_eq!(queued(first, &mut rx).len(), 1);
        for _ in 0..70 {
            tx.send((job(1, 1), ())).await.unwrap();
        }
        let first = rx.recv().await.unwrap();
        assert_eq!(queued(first, &mut rx).len(), GROUP_BATCHES);
    }

    /// A job's sender is answered, its lines counted and its totals published only once its
    /// commit lands: here the store's write lock is held by another connection until the
    /// test lets it go.
    #[tokio::test]
    async fn nothing_is_shown_before_the_commit_lands() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = crate::store::Store::open(&path.display().to_string())
            .await
            .unwrap();
        let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut blocker)
            .await
            .unwrap();
        let mut durable = Durable::default();
        durable.attach(store.clone());
        let registry = prometheus::Registry::new();
        let metrics = Metrics::register(&registry, 10, 10).unwrap();
        let (published, mut summary) = watch::channel(Summary::default());
        let (mut committer, _task) =
            Committer::start(durable, metrics.ingest_counters(), published);
        let (done, mut answer) = tokio::sync::oneshot::channel();
        let mut j = job(1, 3);
        j.commits[0].state.push(("probe", "1".into()));
        j.answers.push((Some(done), BatchResult::default()));
        j.counts.lines("dispatch.log", LineResult::Event, 3);
        j.summary = Some(Summary {
            matched: 7,
            ..Summary::default()
        });
        committer.send(j).await;
        // One thread: once the committer has taken the job, it has run until it waits for
        // the store.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while committer.tx.capacity() < committer.tx.max_capacity() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the job was not taken"
            );
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        assert!(
            answer.try_recv().is_err(),
            "answered before the commit landed"
        );
        assert_eq!(summary.borrow_and_update().matched, 0);
        let counted = || {
            registry
                .gather()
                .iter()
                .filter(|f| f.name() == "claimcheck_ingest_lines_total")
                .flat_map(|f| f.get_metric())
                .map(|m| m.get_counter().get_value())
                .sum::<f64>()
        };
        assert_eq!(counted(), 0.0);
        assert_eq!(store.state("probe").await.unwrap(), None);
        sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
        let landed = committer.landed().await;
        assert_eq!(landed.jobs, 1);
        assert!(answer.await.unwrap().is_ok());
        assert_eq!(store.state("probe").await.unwrap().as_deref(), Some("1"));
        assert_eq!(summary.borrow().matched, 7);
        assert_eq!(counted(), 3.0);
    }
}
