//! Router configuration from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `CHATSTORE_DATABASE_URL` (+ `CHATSTORE_VECTOR_URL`) | the old store (opened by the caller) | |
//! | `CHATSTORE_<GROUP>_NEW_URL` | the new store of a group (`USERS`, `CHATS`, `FILES`, `WORKSPACE`, `VECTORS`) | none |
//! | `CHATSTORE_<GROUP>_PHASE` | `old`, `dual`, `shadow`, `new`, `new-only` | `old` |
//! | `CHATSTORE_SHADOW_SAMPLE` | percentage of reads shadowed, 0-100 | `100` |
//! | `CHATSTORE_SHADOW_LOG` | JSONL file of shadow-read differences | `chatstore-shadow-diffs.jsonl` |
//! | `CHATSTORE_REPAIR_LOG` | JSONL repair log | `chatstore-repair.jsonl` |
//! | `CHATSTORE_SHADOW_TIMEOUT_MS` | how long a shadow read may run | `2000` |
//! | `CHATSTORE_SHADOW_YIELD_MS` | how long a shadow read waits for no caller's call to be running (0: none) | `20` |
//! | `CHATSTORE_SECONDARY_TIMEOUT_MS` | how long the new store's half of a dual write may run | `10000` |

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use chatstore_core::{Error, ModelGroup, Result, Store};

use crate::Router;
use crate::phase::Phase;
use crate::router::{DEFAULT_SECONDARY_TIMEOUT, DEFAULT_SHADOW_TIMEOUT, DEFAULT_SHADOW_YIELD};

/// The repair log's path when `CHATSTORE_REPAIR_LOG` is unset.
pub const DEFAULT_REPAIR_LOG: &str = "chatstore-repair.jsonl";
/// The diff log's path when `CHATSTORE_SHADOW_LOG` is unset.
pub const DEFAULT_SHADOW_LOG: &str = "chatstore-shadow-diffs.jsonl";

/// The router's settings (everything but the old store, which the caller opens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// The new store's URL per group.
    pub new_urls: BTreeMap<ModelGroup, String>,
    /// The starting phase per group (`old` when absent).
    pub phases: BTreeMap<ModelGroup, Phase>,
    /// Percentage of reads shadowed.
    pub shadow_sample: u8,
    /// The diff log.
    pub shadow_log: PathBuf,
    /// The repair log.
    pub repair_log: PathBuf,
    /// How long a shadow read may run.
    pub shadow_timeout: Duration,
    /// How long a shadow read waits for a moment when no caller's call is running.
    pub shadow_yield: Duration,
    /// How long the new store's half of a dual write may run.
    pub secondary_timeout: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            new_urls: BTreeMap::new(),
            phases: BTreeMap::new(),
            shadow_sample: 100,
            shadow_log: PathBuf::from(DEFAULT_SHADOW_LOG),
            repair_log: PathBuf::from(DEFAULT_REPAIR_LOG),
            shadow_timeout: DEFAULT_SHADOW_TIMEOUT,
            shadow_yield: DEFAULT_SHADOW_YIELD,
            secondary_timeout: DEFAULT_SECONDARY_TIMEOUT,
        }
    }
}

fn millis(name: &str, raw: &str) -> Result<Duration> {
    match raw.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(Error::invalid(format!(
            "{name}={raw:?} is not a positive whole number of milliseconds"
        ))),
    }
}

impl RouterConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        RouterConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`. A bad value is `InvalidInput` naming its variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = RouterConfig::default();
        for group in ModelGroup::ALL {
            let url_var = format!("CHATSTORE_{}_NEW_URL", group.env_name());
            let phase_var = format!("CHATSTORE_{}_PHASE", group.env_name());
            if let Some(url) = get(&url_var) {
                config.new_urls.insert(group, url.trim().to_owned());
            }
            if let Some(raw) = get(&phase_var) {
                let phase: Phase = raw
                    .parse()
                    .map_err(|e: Error| Error::invalid(format!("{phase_var}: {e}")))?;
                if phase.needs_new() && !config.new_urls.contains_key(&group) {
                    return Err(Error::invalid(format!(
                        "{phase_var}={phase} needs a new store: set {url_var}"
                    )));
                }
                config.phases.insert(group, phase);
            }
        }
        if let Some(raw) = get("CHATSTORE_SHADOW_SAMPLE") {
            config.shadow_sample = match raw.trim().parse::<u8>() {
                Ok(n) if n <= 100 => n,
                _ => {
                    return Err(Error::invalid(format!(
                        "CHATSTORE_SHADOW_SAMPLE={raw:?} is not a percentage from 0 to 100"
                    )));
                }
            };
        }
        if let Some(path) = get("CHATSTORE_SHADOW_LOG") {
            config.shadow_log = PathBuf::from(path);
        }
        if let Some(path) = get("CHATSTORE_REPAIR_LOG") {
            config.repair_log = PathBuf::from(path);
        }
        if let Some(raw) = get("CHATSTORE_SHADOW_TIMEOUT_MS") {
            config.shadow_timeout = millis("CHATSTORE_SHADOW_TIMEOUT_MS", &raw)?;
        }
        if let Some(raw) = get("CHATSTORE_SHADOW_YIELD_MS") {
            config.shadow_yield = match raw.trim().parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    return Err(Error::invalid(format!(
                        "CHATSTORE_SHADOW_YIELD_MS={raw:?} is not a whole number of milliseconds"
                    )));
                }
            };
        }
        if let Some(raw) = get("CHATSTORE_SECONDARY_TIMEOUT_MS") {
            config.secondary_timeout = millis("CHATSTORE_SECONDARY_TIMEOUT_MS", &raw)?;
        }
        Ok(config)
    }

    /// Whether any group has a new store: without one, the old store is used as it is.
    pub fn is_routed(&self) -> bool {
        !self.new_urls.is_empty()
    }

    /// Builds the router around `old`, opening each new URL once with `open` (the caller's
    /// URL -> store function, e.g. the registry's; the router names no backend).
    pub async fn open<F, Fut>(&self, old: Store, open: F) -> Result<Router>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Store>>,
    {
        let mut opened: BTreeMap<&str, Store> = BTreeMap::new();
        let mut builder = Router::builder(old)
            .repair_log(self.repair_log.clone())
            .shadow_log(Some(self.shadow_log.clone()))
            .shadow_sample(self.shadow_sample)
            .shadow_timeout(self.shadow_timeout)
            .shadow_yield(self.shadow_yield)
            .secondary_timeout(self.secondary_timeout);
        for (group, url) in &self.new_urls {
            let store = match opened.get(url.as_str()) {
                Some(store) => store.clone(),
                None => {
                    let store = open(url.clone()).await.map_err(|e| match e {
                        Error::InvalidInput { message } => Error::invalid(format!(
                            "CHATSTORE_{}_NEW_URL: {message}",
                            group.env_name()
                        )),
                        other => other,
                    })?;
                    opened.insert(url, store.clone());
                    store
                }
            };
            builder = builder.new_store(*group, store);
        }
        for (group, phase) in &self.phases {
            builder = builder.phase(*group, *phase);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<RouterConfig> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RouterConfig::from_lookup(|name| vars.get(name).cloned())
    }

    fn message_of(result: Result<RouterConfig>) -> String {
        match result {
            Err(Error::InvalidInput { message }) => message,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn groups_get_their_url_and_phase() {
        let c = config(&[
            ("CHATSTORE_CHATS_NEW_URL", "pocketbase://127.0.0.1:8090"),
            ("CHATSTORE_CHATS_PHASE", "Shadow"),
            ("CHATSTORE_USERS_NEW_URL", "pocketbase://127.0.0.1:8090"),
            ("CHATSTORE_SHADOW_SAMPLE", "25"),
            ("CHATSTORE_REPAIR_LOG", "/var/lib/chatstore/repair.jsonl"),
        ])
        .expect("valid");
        assert!(c.is_routed());
        assert_eq!(c.phases.get(&ModelGroup::Chats), Some(&Phase::Shadow));
        assert_eq!(c.phases.get(&ModelGroup::Users), None);
        assert_eq!(c.new_urls.len(), 2);
        assert_eq!(c.shadow_sample, 25);
        assert_eq!(
            c.repair_log,
            PathBuf::from("/var/lib/chatstore/repair.jsonl")
        );
        assert!(!config(&[]).expect("empty").is_routed());
    }

    #[test]
    fn bad_values_name_their_variable() {
        let m = message_of(config(&[
            ("CHATSTORE_FILES_NEW_URL", "x"),
            ("CHATSTORE_FILES_PHASE", "sideways"),
        ]));
        assert!(m.contains("CHATSTORE_FILES_PHASE"), "{m}");
        let m = message_of(config(&[("CHATSTORE_VECTORS_PHASE", "dual")]));
        assert!(m.contains("CHATSTORE_VECTORS_NEW_URL"), "{m}");
        let m = message_of(config(&[("CHATSTORE_SHADOW_SAMPLE", "101")]));
        assert!(m.contains("CHATSTORE_SHADOW_SAMPLE"), "{m}");
        let m = message_of(config(&[("CHATSTORE_SHADOW_TIMEOUT_MS", "soon")]));
        assert!(m.contains("CHATSTORE_SHADOW_TIMEOUT_MS"), "{m}");
        let m = message_of(config(&[("CHATSTORE_SHADOW_YIELD_MS", "-1")]));
        assert!(m.contains("CHATSTORE_SHADOW_YIELD_MS"), "{m}");
        assert_eq!(
            config(&[("CHATSTORE_SHADOW_YIELD_MS", "0")])
                .expect("zero is no wait")
                .shadow_yield,
            std::time::Duration::ZERO
        );
        // `old` needs no new store.
        assert!(config(&[("CHATSTORE_USERS_PHASE", "old")]).is_ok());
    }
}
