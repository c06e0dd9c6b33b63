//! The one emitter of a followed file's state changes: one line each, a fixed message and a
//! `change` field, the facts as fields (never formatted into the message), so a log pipeline
//! can count and filter them. Nothing here is per line: at `info` a file source logs only
//! when a file is opened, rotated, drained or closed, truncated, or its path changes state.
//!
//! | change | level | when |
//! |---|---|---|
//! | `opened` | info | a file is followed (`how`: `new`, `checkpoint`, `copy_of_checkpoint`, `rotated_while_stopped`) |
//! | `rotated` | info | `kind`: `rename` (found under a new name), `renamed_away` or `deleted` (no path names it: read until drained or idle), `copytruncate` (its copy goes on from its checkpoint) |
//! | `drained` | info | a deleted file read to its end, closed, its checkpoint dropped |
//! | `closed` | info | a file no path names, idle for `close_inactive`, closed |
//! | `truncated` | warn (info when nothing was lost) | what was not read is gone (`from`, `to`, `lost_bytes`) |
//! | `forgotten` | info | a checkpoint is dropped (`reason`): `gone`, its file not open and in no directory followed for `close_inactive`; `unfollowed`, no configured pattern follows its file (a pattern removed) and it was last written `serve.retention` ago |
//! | `path_state` | warn (info for a file back or not there yet) | a followed path stops or starts being a readable regular file |

use std::path::Path;

/// How a followed file came to be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opened {
    /// From its start: a file never read before.
    New,
    /// From its checkpoint.
    Checkpoint,
    /// A copy of a file read before (truncated or deleted while serve was down), from that
    /// file's checkpoint.
    CopyOfCheckpoint,
    /// A file rotated away while serve was down, found by its identity and finished.
    RotatedWhileStopped,
}

impl Opened {
    fn as_str(self) -> &'static str {
        match self {
            Opened::New => "new",
            Opened::Checkpoint => "checkpoint",
            Opened::CopyOfCheckpoint => "copy_of_checkpoint",
            Opened::RotatedWhileStopped => "rotated_while_stopped",
        }
    }
}

/// What happened to a followed file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rotation {
    Rename,
    RenamedAway,
    Deleted,
    Copytruncate,
}

impl Rotation {
    fn as_str(self) -> &'static str {
        match self {
            Rotation::Rename => "rename",
            Rotation::RenamedAway => "renamed_away",
            Rotation::Deleted => "deleted",
            Rotation::Copytruncate => "copytruncate",
        }
    }
}

pub(super) fn opened(source: &str, path: &Path, how: Opened, from: u64) {
    tracing::info!(
        change = "opened",
        source,
        path = %path.display(),
        how = how.as_str(),
        from,
        "followed file opened"
    );
}

/// `path` is the name the file had; `to` its new name, or for a copytruncate the copy read
/// on from `from`.
pub(super) fn rotated(
    source: &str,
    path: &Path,
    kind: Rotation,
    to: Option<&Path>,
    from: Option<u64>,
) {
    tracing::info!(
        change = "rotated",
        source,
        path = %path.display(),
        kind = kind.as_str(),
        to = to.map(|p| p.display().to_string()),
        from,
        "followed file rotated"
    );
}

/// A file is closed: deleted and read to its end (`drained`), or idle with no name.
pub(super) fn closed(source: &str, path: &str, deleted: bool, read_to: u64) {
    if deleted {
        tracing::info!(
            change = "drained",
            source,
            path,
            read_to,
            "followed file drained"
        );
    } else {
        tracing::info!(
            change = "closed",
            source,
            path,
            read_to,
            "followed file closed"
        );
    }
}

/// Why a checkpoint is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forgotten {
    /// Its file is gone.
    Gone,
    /// No configured pattern follows its file, for a retention.
    Unfollowed,
}

/// A checkpoint is dropped.
pub(super) fn forgotten(source: &str, path: &str, read_to: u64, why: Forgotten) {
    match why {
        Forgotten::Gone => tracing::info!(
            change = "forgotten",
            source,
            path,
            read_to,
            reason = "gone",
            "checkpoint of a file that is gone dropped"
        ),
        Forgotten::Unfollowed => tracing::info!(
            change = "forgotten",
            source,
            path,
            read_to,
            reason = "unfollowed",
            "checkpoint of a file no configured pattern follows dropped after the retention"
        ),
    }
}

/// What was not read of `path` (bytes `from..to`) is gone: `lost_bytes` of it, counted in
/// `claimcheck_source_truncated_bytes_total`; `copy` a copy beside it that no pattern follows.
pub(super) fn truncated(source: &str, path: &Path, from: u64, to: u64, copy: Option<&Path>) {
    let lost = to.saturating_sub(from);
    let copy = copy.map(|p| p.display().to_string());
    if lost > 0 {
        tracing::warn!(
            change = "truncated",
            source,
            path = %path.display(),
            from,
            to,
            lost_bytes = lost,
            unfollowed_copy = copy,
            "followed file truncated: bytes not read are lost (follow its rotated copy to keep them)"
        );
    } else {
        tracing::info!(
            change = "truncated",
            source,
            path = %path.display(),
            from,
            to,
            lost_bytes = lost,
            unfollowed_copy = copy,
            "followed file truncated after it was read"
        );
    }
}

/// A followed path is a readable regular file again.
pub(super) fn path_back(source: &str, path: &Path) {
    tracing::info!(
        change = "path_state",
        source,
        path = %path.display(),
        state = "regular",
        "followed path is a readable file again"
    );
}

/// A followed path names nothing (yet), seen at the first scan.
pub(super) fn path_missing(source: &str, path: &Path) {
    tracing::info!(
        change = "path_state",
        source,
        path = %path.display(),
        state = "missing",
        "followed path does not exist yet"
    );
}

/// A followed path is not a readable regular file (`state`: `directory`, `fifo`, `socket`,
/// `device`, `dangling_symlink`, `unreadable` with the `error`).
pub(super) fn path_hostile(source: &str, path: &Path, state: &str, error: Option<&str>) {
    tracing::warn!(
        change = "path_state",
        source,
        path = %path.display(),
        state,
        error,
        "followed path is not a readable regular file: waiting for one"
    );
}
