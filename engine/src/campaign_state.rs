//! `CampaignState`: the bookkeeping of one live query, as plain synchronous code the
//! [`CampaignActor`](crate::campaign::CampaignActor) applies. Who was targeted, who was online
//! when it started, who has answered, how many rows have gone out.

use std::collections::HashSet;

use crate::ids::HostId;

/// Target counts at the start of a campaign (Fleet's `totals` message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: usize,
    pub online: usize,
    pub offline: usize,
    pub missing_in_action: usize,
}

/// Answers so far (Fleet's `status` message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Targets that were online when the campaign started.
    pub expected_results: usize,
    /// Distinct targets that have answered (with rows, no rows or an error).
    pub actual_results: usize,
    pub finished: bool,
}

/// How a host's result was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// First answer of a target: count it and forward it.
    Forward,
    /// First answer, counted, but the campaign's row cap is reached: its rows are not forwarded.
    /// `first` is true for the answer that crossed the cap, so the truncation is announced once.
    OverCap { first: bool },
    /// The host already answered (osquery resends after timeouts): ignore.
    Duplicate,
    /// Not one of this campaign's targets: ignore.
    NotTargeted,
}

pub struct CampaignState {
    targets: HashSet<HostId>,
    online_at_start: HashSet<HostId>,
    answered: HashSet<HostId>,
    answered_online: usize,
    rows_forwarded: usize,
    max_rows: usize,
    bytes_forwarded: usize,
    max_bytes: usize,
    truncated: bool,
    totals: Totals,
}

impl CampaignState {
    /// `online` (the targets online at the start) is a subset of `targets`; `missing` counts
    /// the targets not seen for 30 days.
    pub fn new(
        targets: impl IntoIterator<Item = HostId>,
        online: impl IntoIterator<Item = HostId>,
        missing: usize,
        max_rows: usize,
        max_bytes: usize,
    ) -> CampaignState {
        let targets: HashSet<HostId> = targets.into_iter().collect();
        let online_at_start: HashSet<HostId> =
            online.into_iter().filter(|h| targets.contains(h)).collect();
        let missing = missing.min(targets.len() - online_at_start.len());
        let totals = Totals {
            count: targets.len(),
            online: online_at_start.len(),
            offline: targets.len() - online_at_start.len() - missing,
            missing_in_action: missing,
        };
        CampaignState {
            targets,
            online_at_start,
            answered: HashSet::new(),
            answered_online: 0,
            rows_forwarded: 0,
            max_rows,
            bytes_forwarded: 0,
            max_bytes,
            truncated: false,
            totals,
        }
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    pub fn targets(&self) -> impl Iterator<Item = HostId> + '_ {
        self.targets.iter().copied()
    }

    /// Targets that have not answered yet.
    pub fn unanswered(&self) -> impl Iterator<Item = HostId> + '_ {
        self.targets
            .iter()
            .copied()
            .filter(|h| !self.answered.contains(h))
    }

    pub fn progress(&self, finished: bool) -> Progress {
        Progress {
            expected_results: self.totals.online,
            actual_results: self.answered.len(),
            finished,
        }
    }

    /// Every target that was online at the start has answered.
    pub fn all_online_answered(&self) -> bool {
        self.answered_online == self.online_at_start.len()
    }

    /// Takes a host's answer of `rows` rows in `bytes` bytes: forwarded while the campaign's
    /// results stay within both caps, counted but not shown past either.
    pub fn on_result(&mut self, host: HostId, rows: usize, bytes: usize) -> Accepted {
        if !self.targets.contains(&host) {
            return Accepted::NotTargeted;
        }
        if !self.answered.insert(host) {
            return Accepted::Duplicate;
        }
        if self.online_at_start.contains(&host) {
            self.answered_online += 1;
        }
        if self.truncated
            || self.rows_forwarded + rows > self.max_rows
            || self.bytes_forwarded + bytes > self.max_bytes
        {
            let first = !self.truncated;
            self.truncated = true;
            return Accepted::OverCap { first };
        }
        self.rows_forwarded += rows;
        self.bytes_forwarded += bytes;
        Accepted::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_rows: usize) -> CampaignState {
        // Hosts 1..=4 targeted; 1 and 2 online; 4 missing for 30 days.
        CampaignState::new(
            (1..=4).map(HostId),
            [HostId(1), HostId(2)],
            1,
            max_rows,
            1_000,
        )
    }

    #[test]
    fn totals_partition_the_targets() {
        assert_eq!(
            state(10).totals(),
            Totals {
                count: 4,
                online: 2,
                offline: 1,
                missing_in_action: 1
            }
        );
    }

    #[test]
    fn completes_when_every_online_target_answered_and_counts_duplicates_once() {
        let mut s = state(10);
        assert_eq!(s.on_result(HostId(1), 1, 0), Accepted::Forward);
        assert_eq!(s.on_result(HostId(1), 1, 0), Accepted::Duplicate);
        assert!(!s.all_online_answered());
        // An offline target answering counts as a result but not toward completion.
        assert_eq!(s.on_result(HostId(3), 1, 0), Accepted::Forward);
        assert!(!s.all_online_answered());
        assert_eq!(s.on_result(HostId(2), 0, 0), Accepted::Forward);
        assert!(s.all_online_answered());
        assert_eq!(
            s.progress(true),
            Progress {
                expected_results: 2,
                actual_results: 3,
                finished: true
            }
        );
        assert_eq!(s.on_result(HostId(99), 1, 0), Accepted::NotTargeted);
        assert_eq!(s.unanswered().collect::<Vec<_>>(), vec![HostId(4)]);
    }

    #[test]
    fn row_cap_is_announced_once_and_answers_still_count() {
        let mut s = state(3);
        assert_eq!(s.on_result(HostId(1), 2, 0), Accepted::Forward);
        assert_eq!(
            s.on_result(HostId(2), 2, 0),
            Accepted::OverCap { first: true }
        );
        assert_eq!(
            s.on_result(HostId(3), 0, 0),
            Accepted::OverCap { first: false }
        );
        assert_eq!(s.progress(false).actual_results, 3);
        assert!(s.all_online_answered());
    }

    #[test]
    fn the_byte_cap_truncates_like_the_row_cap() {
        let mut s = state(100);
        assert_eq!(s.on_result(HostId(1), 1, 600), Accepted::Forward);
        assert_eq!(
            s.on_result(HostId(2), 1, 600),
            Accepted::OverCap { first: true },
            "1,200 bytes is past the 1,000-byte cap"
        );
        assert_eq!(s.progress(false).actual_results, 2);
    }

    #[test]
    fn no_online_targets_means_complete_at_once() {
        let s = CampaignState::new([HostId(1)], [], 0, 10, 1_000);
        assert!(s.all_online_answered());
        assert_eq!(s.progress(true).expected_results, 0);
    }
}
