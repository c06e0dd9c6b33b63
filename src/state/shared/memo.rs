//! Answers the server remembers, so a call whose answer was lost is not applied twice.
//!
//! A script call that changes the shared state (`apply.lua` storing a batch, `judge.lua`
//! committing judgements) can run on the server and still fail here: the connection is cut
//! before the answer arrives, a master is killed after running it and its replica (which had
//! the write) is promoted, or the cluster client sends it again on its own after a
//! redirection. Sent again, such a call would find its own writes: its events told
//! re-delivered, its judgements lost to itself — and the changes only this replica can emit
//! (its counters, a dispatch's first sighting) would be emitted by no replica.
//!
//! So each such call carries this replica's memo field (its instance and the script) and a
//! token; the script keeps its answer under them in the bucket's memo hash (`Keys::memo`),
//! and a call that finds its own token there answers what it answered the first time,
//! changing nothing. A call that failed is sent again as it was — the same arguments get the
//! same token — before anything else goes to its bucket (the memo keeps one answer per
//! replica, script and bucket). A token is this process's nonce and a count, so a restarted
//! replica never mistakes an answer of its earlier life for one of its own.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The steps (scripts) that remember their answers, each under its own field: a tick's judgement
/// between a failed batch and its retry must not overwrite the batch's memo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Apply,
    Judge,
}

impl Step {
    fn suffix(self) -> &'static str {
        match self {
            Step::Apply => "a",
            Step::Judge => "j",
        }
    }
}

/// This replica's tokens, and the calls sent whose answers it has not had yet.
#[derive(Debug)]
pub struct Memo {
    instance: String,
    nonce: u64,
    next: u64,
    /// By script and bucket: the arguments' digest and token of a call sent and not answered.
    unsure: BTreeMap<(Step, u16), (u64, String)>,
}

impl Memo {
    /// The memo of the replica named `instance`.
    pub fn new(instance: &str) -> Memo {
        Memo {
            instance: instance.to_owned(),
            nonce: rand::random(),
            next: 0,
            unsure: BTreeMap::new(),
        }
    }

    /// The memo hash field `step` keeps this replica's answers under.
    pub fn field(&self, step: Step) -> String {
        format!("{}:{}", self.instance, step.suffix())
    }

    /// The token of a call of `step` to bucket `b` with `args`: the unanswered call's, if
    /// this is that call again, else a new one (the call is unanswered until [`Memo::answered`]).
    pub fn token<S: Hash>(&mut self, step: Step, b: u16, args: &[S]) -> String {
        let mut h = DefaultHasher::new();
        args.hash(&mut h);
        let digest = h.finish();
        if let Some((d, token)) = self.unsure.get(&(step, b))
            && *d == digest
        {
            return token.clone();
        }
        self.next += 1;
        let token = format!("{:016x}.{}", self.nonce, self.next);
        self.unsure.insert((step, b), (digest, token.clone()));
        token
    }

    /// The call of `step` to bucket `b` was answered.
    pub fn answered(&mut self, step: Step, b: u16) {
        self.unsure.remove(&(step, b));
    }

    /// Every call of `step` so far was answered and its answer used: the batch they stored
    /// was taken whole.
    pub fn taken(&mut self, step: Step) {
        self.unsure.retain(|(s, _), _| *s != step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_call_again_has_the_same_token_until_it_is_answered() {
        let mut m = Memo::new("a");
        let first = m.token(Step::Apply, 3, &["x", "y"]);
        assert_eq!(m.token(Step::Apply, 3, &["x", "y"]), first);
        // Another call to the bucket, another script or another bucket: a new token.
        let other = m.token(Step::Judge, 3, &["x", "y"]);
        assert_ne!(other, first);
        assert_ne!(m.token(Step::Apply, 4, &["x", "y"]), first);
        m.answered(Step::Apply, 3);
        let second = m.token(Step::Apply, 3, &["x", "y"]);
        assert_ne!(second, first);
        m.taken(Step::Judge);
        assert_eq!(m.token(Step::Apply, 3, &["x", "y"]), second);
        m.taken(Step::Apply);
        assert_ne!(m.token(Step::Apply, 3, &["x", "y"]), second);
        assert_ne!(m.token(Step::Apply, 3, &["x", "z"]), first);
        // A restarted replica (another process) draws another nonce.
        let again = Memo::new("a").token(Step::Apply, 3, &["x", "y"]);
        assert_ne!(again, first);
        assert_eq!(m.field(Step::Judge), "a:j");
    }
}
