//! Dynamic labels: the label queries hosts run (`fleet_label_query_<id>`), shared by every host
//! actor and replaced as a whole when labels change.

use std::sync::Arc;

use parking_lot::RwLock;

/// Prefix of a dynamic label's query name in distributed reads and writes.
pub const LABEL_PREFIX: &str = "fleet_label_query_";

/// A dynamic label's membership query.
#[derive(Clone, Debug)]
pub struct LabelQuery {
    pub id: u64,
    /// `fleet_label_query_<id>`.
    pub name: Arc<str>,
    pub sql: Arc<str>,
    /// Only hosts of this platform run it; empty means every platform.
    pub platform: Box<str>,
}

impl LabelQuery {
    pub fn new(id: u64, sql: &str, platform: &str) -> LabelQuery {
        LabelQuery {
            id,
            name: format!("{LABEL_PREFIX}{id}").into(),
            sql: sql.into(),
            platform: platform.into(),
        }
    }

    /// Whether a host on `platform` runs this label's query. Fleet's label platforms name
    /// osquery platforms (`darwin`, `windows`, `ubuntu`…); `linux` covers every Linux.
    pub fn applies_to(&self, platform: &str) -> bool {
        match &*self.platform {
            "" => true,
            "linux" => !matches!(platform, "darwin" | "windows" | "freebsd" | ""),
            wanted => wanted == platform,
        }
    }
}

/// The current set of label queries and its version; a host whose last label round saw an
/// older version runs the labels again at its next check-in.
#[derive(Debug, Default)]
pub struct LabelSet {
    pub version: u64,
    pub queries: Vec<LabelQuery>,
}

impl LabelSet {
    /// Whether a host on `platform` is handed label `id`'s query: the label is dynamic, in
    /// this set, and for that platform. Answers about any other label are not taken.
    pub fn applies(&self, id: u64, platform: &str) -> bool {
        self.queries
            .iter()
            .any(|q| q.id == id && q.applies_to(platform))
    }
}

#[derive(Default)]
pub struct Labels {
    current: RwLock<Arc<LabelSet>>,
    /// When [`replace`](Labels::replace) last ran (Unix seconds; 0: not since start). An
    /// answer another node took before then was to an older set.
    replaced_at: std::sync::atomic::AtomicI64,
}

impl Labels {
    pub fn current(&self) -> Arc<LabelSet> {
        self.current.read().clone()
    }

    /// The current set, borrowed for a moment (no reference count touched).
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, Arc<LabelSet>> {
        self.current.read()
    }

    /// Sets the label queries as loaded at start, without making any host re-run them: hosts
    /// follow their own label interval, so a restart causes no thundering herd.
    pub fn initialize(&self, queries: Vec<LabelQuery>) {
        *self.current.write() = Arc::new(LabelSet {
            version: 0,
            queries,
        });
    }

    /// Replaces the label queries; every host re-evaluates its labels at its next check-in.
    pub fn replace(&self, queries: Vec<LabelQuery>) {
        let mut current = self.current.write();
        let version = current.version + 1;
        *current = Arc::new(LabelSet { version, queries });
        self.replaced_at
            .store(crate::unix_now(), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn replaced_at(&self) -> i64 {
        self.replaced_at.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_labels_in_the_set_for_the_platform_apply() {
        let set = LabelSet {
            version: 1,
            queries: vec![
                LabelQuery::new(1, "SELECT 1", ""),
                LabelQuery::new(2, "SELECT 1", "darwin"),
            ],
        };
        assert!(set.applies(1, "ubuntu"));
        assert!(set.applies(2, "darwin"));
        assert!(!set.applies(2, "ubuntu"), "another platform's label");
        assert!(!set.applies(3, "ubuntu"), "a manual or deleted label");
    }

    #[test]
    fn platform_filter() {
        assert!(LabelQuery::new(1, "SELECT 1", "").applies_to("windows"));
        assert!(LabelQuery::new(1, "SELECT 1", "linux").applies_to("ubuntu"));
        assert!(!LabelQuery::new(1, "SELECT 1", "linux").applies_to("darwin"));
        assert!(LabelQuery::new(1, "SELECT 1", "darwin").applies_to("darwin"));
        assert!(!LabelQuery::new(1, "SELECT 1", "darwin").applies_to("ubuntu"));
    }

    #[test]
    fn replacing_bumps_the_version() {
        let labels = Labels::default();
        assert_eq!(labels.current().version, 0);
        labels.replace(vec![LabelQuery::new(3, "SELECT 1", "")]);
        let set = labels.current();
        assert_eq!((set.version, set.queries.len()), (1, 1));
        assert_eq!(&*set.queries[0].name, "fleet_label_query_3");
    }
}
