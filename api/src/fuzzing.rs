//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpora
//! (`tests/tests/fuzz_corpus.rs`). Each takes bytes from outside the way the server takes
//! them — through the same functions the handlers call — and checks what the rest of the
//! server relies on. A panic here is a defect: a crash, or a broken promise about the output.
//!
//! Not a stable interface; it exists for the fuzzers.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::ws::Message;
use flotilla_engine::TeamId;
use flotilla_engine::text::MAX_TEXT;
use flotilla_engine::vitals::Vitals;
use flotilla_storage::admin::QueryId;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::agent_config::configs::ScheduledQuery;
use crate::live::socket::{SendTimeout, SessionUser, run_session};
use crate::osquery::body::{inflate, parse, valid_utf8};
use crate::osquery::log::{MAX_NESTING, json_lines, nests_deeper_than, sort_results};
use crate::osquery::wire;

/// The most a fuzzed body may inflate to: enough for any structure, small enough to stay fast.
const INFLATE_LIMIT: usize = 1 << 20;

/// The osquery endpoints whose bodies are fuzzed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsqueryEndpoint {
    Enroll,
    Config,
    DistributedRead,
    DistributedWrite,
    Log,
    CarveBegin,
    CarveBlock,
}

impl OsqueryEndpoint {
    pub const ALL: [OsqueryEndpoint; 7] = [
        OsqueryEndpoint::Enroll,
        OsqueryEndpoint::Config,
        OsqueryEndpoint::DistributedRead,
        OsqueryEndpoint::DistributedWrite,
        OsqueryEndpoint::Log,
        OsqueryEndpoint::CarveBegin,
        OsqueryEndpoint::CarveBlock,
    ];
}

/// One fuzz input for the osquery API: the first byte picks the endpoint (its value modulo 7)
/// and, with its high bit, `Content-Encoding: gzip`; the rest is the body.
pub fn osquery_input(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let endpoint = OsqueryEndpoint::ALL[(selector & 0x7f) as usize % OsqueryEndpoint::ALL.len()];
    osquery_request(endpoint, selector & 0x80 != 0, body);
}

/// A body as `endpoint` reads it: inflated when `gzip`, made valid UTF-8, parsed, and turned
/// into what the engine and the log destinations are given.
pub fn osquery_request(endpoint: OsqueryEndpoint, gzip: bool, body: &[u8]) {
    let bytes = if gzip {
        match inflate(body, INFLATE_LIMIT) {
            Ok(inflated) => {
                assert!(inflated.len() <= INFLATE_LIMIT, "inflated past the limit");
                Bytes::from(inflated)
            }
            Err(_) => return,
        }
    } else {
        Bytes::copy_from_slice(body)
    };
    let bytes = valid_utf8(bytes);
    assert!(
        std::str::from_utf8(&bytes).is_ok(),
        "a body left invalid UTF-8"
    );
    match endpoint {
        OsqueryEndpoint::Enroll => enroll(&bytes),
        OsqueryEndpoint::Config | OsqueryEndpoint::DistributedRead => {
            if let Ok(request) = parse::<wire::KeyBody>(&bytes) {
                let _ = crate::osquery::body::node_key(
                    request.node_key.as_deref(),
                    &axum::http::HeaderMap::new(),
                );
            }
        }
        OsqueryEndpoint::DistributedWrite => distributed_write(&bytes),
        OsqueryEndpoint::Log => log(&bytes),
        OsqueryEndpoint::CarveBegin => {
            if let Ok(request) = parse::<wire::CarveBeginBody>(&bytes)
                && let Ok(begin) = crate::osquery::carve::carve_begin(request)
            {
                let _ = crate::osquery::carves::check_begin(&begin);
            }
        }
        OsqueryEndpoint::CarveBlock => carve_block(&bytes),
    }
}

fn assert_clipped(what: &str, value: &str) {
    assert!(
        value.chars().count() <= MAX_TEXT,
        "{what} kept {} characters, more than {MAX_TEXT}",
        value.chars().count()
    );
}

fn assert_vitals_clipped(vitals: &Vitals) {
    let texts = [
        ("hostname", &vitals.hostname),
        ("computer_name", &vitals.computer_name),
        ("uuid", &vitals.uuid),
        ("platform", &vitals.platform),
        ("platform_like", &vitals.platform_like),
        ("os_version", &vitals.os_version),
        ("build", &vitals.build),
        ("code_name", &vitals.code_name),
        ("osquery_version", &vitals.osquery_version),
        ("cpu_type", &vitals.cpu_type),
        ("cpu_brand", &vitals.cpu_brand),
        ("hardware_vendor", &vitals.hardware_vendor),
        ("hardware_model", &vitals.hardware_model),
        ("hardware_version", &vitals.hardware_version),
        ("hardware_serial", &vitals.hardware_serial),
        ("primary_ip", &vitals.primary_ip),
        ("primary_mac", &vitals.primary_mac),
    ];
    for (what, value) in texts {
        if let Some(value) = value {
            assert_clipped(what, value);
        }
    }
    if let Some(orbit) = &vitals.orbit {
        assert_clipped("orbit version", &orbit.version);
    }
}

fn enroll(bytes: &[u8]) {
    let Ok(body) = parse::<wire::EnrollBody>(bytes) else {
        return;
    };
    let request = crate::osquery::enroll::enroll_request(body);
    let vitals = flotilla_engine::hosts::vitals_from_details(&request);
    assert_vitals_clipped(&vitals);
    if let Some(identifier) = flotilla_engine::hosts::identifier_for(&request, &vitals) {
        assert_clipped("host identifier", &identifier);
    }
}

fn distributed_write(bytes: &[u8]) {
    let Ok(request) = parse::<wire::WriteBody>(bytes) else {
        return;
    };
    let results = crate::osquery::distributed::host_results(&request);
    let mut vitals = Vitals::default();
    for answer in &results.details {
        flotilla_engine::detail::ingest(&answer.suffix, &answer.rows, &mut vitals);
    }
    assert_vitals_clipped(&vitals);
    let software = results
        .details
        .iter()
        .filter(|a| flotilla_engine::software::is_software_query(&a.suffix))
        .flat_map(|a| a.rows.iter());
    let inventory = flotilla_engine::software::Inventory::from_rows(software, "ubuntu", "");
    assert!(inventory.items.len() <= flotilla_engine::software::MAX_PACKAGES);
    for item in &inventory.items {
        for field in item.software.fields() {
            assert_clipped("a software field", field);
        }
        assert!(item.installed_paths.len() <= flotilla_engine::software::MAX_PATHS);
    }
    for answer in &results.live {
        // What subscribers are sent: a JSON array of as many rows as counted.
        let rows: Vec<&RawValue> =
            serde_json::from_str(&answer.rows).expect("live rows are a JSON array");
        assert_eq!(rows.len(), answer.row_count, "live rows miscounted");
    }
}

/// Any saved query a fuzzed result name could name: its id and flags come from the name, so
/// every branch of attribution is reached.
fn any_scheduled(team: Option<TeamId>, name: &str) -> Option<ScheduledQuery> {
    let seed = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    (seed % 5 != 0).then_some(ScheduledQuery {
        id: QueryId(seed % 7),
        team,
        automations_enabled: seed % 3 != 0,
        keeps_report: seed % 2 == 0,
    })
}

fn log(bytes: &[u8]) {
    let Ok(request) = parse::<wire::LogBody>(bytes) else {
        return;
    };
    let lines = request.data.unwrap_or_default();
    let host_team = (lines.len() % 2 == 0).then_some(TeamId(1));
    let sorted = sort_results(&lines, host_team, any_scheduled);
    assert!(sorted.forwarded.len() <= lines.len());
    for (kind, given) in [("status", lines.clone()), ("result", sorted.forwarded)] {
        let out = json_lines(given.iter().copied());
        let written: Vec<&[u8]> = out
            .buffer
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            written.len() + out.set_aside.len(),
            given.len(),
            "{kind} lines lost or duplicated"
        );
        for line in written {
            let text = std::str::from_utf8(line).expect("log lines are UTF-8");
            assert!(
                !nests_deeper_than(text, MAX_NESTING),
                "a {kind} line nested deeper than {MAX_NESTING} went to the log"
            );
            // Valid JSON by the grammar: numbers pass as the host wrote them, even beyond
            // what an f64 holds (`1e99999`), as osquery and Fleet pass them.
            let value: &RawValue =
                serde_json::from_str(text).expect("every logged line is one JSON value");
            assert!(
                value.get().starts_with('{'),
                "a logged {kind} line is not an object"
            );
        }
    }
}

/// A block body checked against a carve whose block count, block size and size (as
/// `carve/begin` would have announced them) come from the lengths of the body's session and
/// request ids, so the fuzzer reaches every shape of carve by editing the body alone.
fn carve_block(bytes: &[u8]) {
    let Ok(request) = parse::<wire::CarveBlockBody>(bytes) else {
        return;
    };
    let Ok(block) = crate::osquery::carve::carve_block(request) else {
        return;
    };
    let seed = block.session_id.len() as u64 + block.request_id.len() as u64;
    let begin = crate::osquery::carves::CarveBegin {
        block_count: 1 + seed % 5,
        block_size: 1 + (seed / 5) % 64,
        carve_size: 1 + seed % 300,
        carve_id: String::new(),
        request_id: "r".into(),
    };
    if crate::osquery::carves::check_begin(&begin).is_err() {
        return;
    }
    let carve = flotilla_storage::carves::Carve {
        id: 1,
        session_id: block.session_id.clone(),
        host: flotilla_engine::HostId(1),
        name: String::new(),
        carve_id: String::new(),
        request_id: block.request_id.clone(),
        block_count: begin.block_count,
        block_size: begin.block_size,
        carve_size: begin.carve_size,
        created_at: 0,
        blocks_received: 0,
        max_block: -1,
        completed_at: None,
        path: None,
        error: None,
        expired: false,
    };
    if let Ok(data) = crate::osquery::carves::check_block(&carve, &block) {
        let end = block.block_id * carve.block_size + data.len() as u64;
        assert!(
            end <= carve.carve_size,
            "a block reaches past the carve's end"
        );
    }
}

/// A session on the results websocket: `data` is split at line breaks into messages. A message
/// starting with byte 1 is sent as binary, 2 as a ping, 3 as a close frame; any other is text
/// when it is UTF-8. Tokens `admin`, `owner` and `other` authenticate (a global admin, the
/// campaign's owner and another user); campaign 1 is running. Every message the server sends
/// must be a JSON object with a `type`, and the session must end when the client does. Returns
/// the `type` of each message sent.
pub fn websocket_session(data: &[u8]) -> Vec<String> {
    struct World {
        runtime: tokio::runtime::Runtime,
        campaigns: flotilla_engine::Campaigns,
    }
    static WORLD: OnceLock<World> = OnceLock::new();
    let world = WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let campaigns = runtime.block_on(one_running_campaign());
        World { runtime, campaigns }
    });
    let incoming: Vec<Result<Message, axum::Error>> = data
        .split(|&b| b == b'\n')
        .map(|piece| {
            Ok(match piece.first() {
                Some(1) => Message::Binary(Bytes::copy_from_slice(&piece[1..])),
                Some(2) => Message::Ping(Bytes::copy_from_slice(&piece[1..])),
                Some(3) => Message::Close(None),
                _ => match std::str::from_utf8(piece) {
                    Ok(text) => Message::Text(text.into()),
                    Err(_) => Message::Binary(Bytes::copy_from_slice(piece)),
                },
            })
        })
        .collect();
    let sent = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<Message>::new()));
    let tx = {
        let sent = sent.clone();
        futures_util::sink::unfold((), move |(), message: Message| {
            let sent = sent.clone();
            async move {
                sent.lock().push(message);
                Ok::<_, std::convert::Infallible>(())
            }
        })
    };
    world.runtime.block_on(run_session(
        Box::pin(tx),
        // After its last message the client lingers for a few turns of the runtime, so what
        // the campaign has queued for it by then is sent before it goes.
        Box::pin(futures_util::StreamExt::chain(
            futures_util::stream::iter(incoming),
            futures_util::StreamExt::filter_map(
                futures_util::stream::once(async {
                    for _ in 0..8 {
                        tokio::task::yield_now().await;
                    }
                }),
                |()| async { None },
            ),
        )),
        world.campaigns.clone(),
        SendTimeout(std::time::Duration::from_secs(5)),
        |token| async move {
            match token.as_str() {
                "admin" => Some(SessionUser {
                    id: 9,
                    is_admin: true,
                }),
                "owner" => Some(SessionUser {
                    id: 1,
                    is_admin: false,
                }),
                "other" => Some(SessionUser {
                    id: 2,
                    is_admin: false,
                }),
                _ => None,
            }
        },
    ));
    let mut types = Vec::new();
    for message in sent.lock().iter() {
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str())
                .unwrap_or_else(|e| panic!("the server sent a message that is not JSON ({e})"));
            let kind = value.get("type").and_then(Value::as_str);
            types.push(
                kind.unwrap_or_else(|| panic!("a message without a type: {value}"))
                    .to_owned(),
            );
        }
    }
    types
}

/// An engine in memory with one enrolled host and campaign 1 running on it, owned by user 1.
async fn one_running_campaign() -> flotilla_engine::Campaigns {
    use flotilla_engine::campaigns::NewCampaign;
    use flotilla_engine::memory_store::MemoryStore;
    use flotilla_engine::store::CampaignRecord;
    use flotilla_engine::{CampaignConfig, CampaignRouter, Campaigns, EngineConfig, HostId, Hosts};
    let store = std::sync::Arc::new(MemoryStore::default());
    store
        .secrets
        .lock()
        .push(flotilla_engine::store::EnrollSecret {
            secret: "s".into(),
            team: None,
        });
    let router = CampaignRouter::new();
    let hosts = Hosts::start(
        store.clone(),
        EngineConfig::default(),
        std::sync::Arc::new(router.clone()),
    )
    .await
    .expect("an engine in memory");
    let campaigns = Campaigns::new(router, hosts.clone(), store, CampaignConfig::default());
    // The host is online and never answers: the campaign runs for as long as the fuzzer does.
    hosts
        .enroll(
            flotilla_engine::enroll::EnrollRequest {
                enroll_secret: "s".into(),
                host_identifier: "web-1".into(),
                ..Default::default()
            },
            flotilla_engine::unix_now(),
        )
        .await
        .expect("a host");
    campaigns
        .start(NewCampaign {
            record: CampaignRecord {
                sql: "SELECT 1".into(),
                query_id: None,
                user_id: Some(1),
                selected: vec![],
                created_at: 0,
            },
            targets: vec![HostId(1)],
            deadline: None,
        })
        .await
        .expect("a campaign");
    campaigns
}

/// A fleetctl spec file as `flotilla apply -f` reads it, then each kind's request body as the
/// server reads it, and the agent options in a `config` spec as the server validates them.
pub fn spec_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(group) = crate::client::specs::parse(text) else {
        return;
    };
    let body = |specs: &[Value]| serde_json::to_vec(&serde_json::json!({ "specs": specs }));
    use crate::fleet::specs::SpecsBody;
    use crate::service::specs::{LabelSpec, QuerySpec, TeamSpec};
    let _ = serde_json::from_slice::<SpecsBody<QuerySpec>>(&body(&group.queries).unwrap());
    let _ = serde_json::from_slice::<SpecsBody<LabelSpec>>(&body(&group.labels).unwrap());
    let _ = serde_json::from_slice::<SpecsBody<TeamSpec>>(&body(&group.teams).unwrap());
    let _ = serde_json::from_slice::<SpecsBody<crate::service::policies::PolicySpecInput>>(
        &body(&group.policies).unwrap(),
    );
    if let Some(options) = group.config.as_ref().and_then(|c| c.get("agent_options")) {
        let _ = crate::agent_config::options::validate(options);
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
    }

    /// Runs every committed input of `target` — its seeds, its corpus and the reproducers of
    /// defects fuzzing found (`fuzz/{seeds,corpus,regressions}/<target>`) — through `run`;
    /// the number run.
    fn replay(target: &str, mut run: impl FnMut(&[u8])) -> usize {
        let mut count = 0;
        for kind in ["seeds", "corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths {
                eprintln!("replaying {}", path.display());
                run(&std::fs::read(&path).unwrap());
                count += 1;
            }
        }
        assert!(
            count > 0,
            "no committed inputs for the {target} fuzz target"
        );
        count
    }

    #[test]
    fn the_osquery_body_corpus_replays() {
        replay("osquery_body", osquery_input);
    }

    #[test]
    fn the_websocket_corpus_replays() {
        replay("websocket_session", |data| {
            websocket_session(data);
        });
    }

    #[test]
    fn the_spec_corpus_replays() {
        replay("spec_yaml", spec_file);
    }

    #[test]
    fn the_vulnerability_feed_and_version_corpora_replay() {
        replay("osv_feed", flotilla_vulns::fuzzing::feed_file);
        replay("version_order", flotilla_vulns::fuzzing::version_order);
    }

    #[test]
    fn the_tuf_metadata_corpus_replays() {
        replay("tuf_metadata", |data| {
            flotilla_updates::fuzzing::repository_metadata(data);
        });
    }

    /// The TUF target gets past signature checks with a real repository's metadata, and not
    /// without it.
    #[test]
    fn the_tuf_target_loads_a_real_repository() {
        let seeds = fuzz_dir().join("seeds/tuf_metadata");
        let repository = std::fs::read(seeds.join("repository")).unwrap();
        assert!(flotilla_updates::fuzzing::repository_metadata(&repository));
        let root_only = std::fs::read(seeds.join("root-only")).unwrap();
        assert!(!flotilla_updates::fuzzing::repository_metadata(&root_only));
    }

    /// The websocket target reaches past the handshake, every time: an admin or the owner
    /// selecting the running campaign is sent its totals and status; others an error.
    #[test]
    fn the_websocket_target_reaches_a_running_campaign() {
        let handshake = |token: &str, id: u64| {
            format!(
                "{{\"type\":\"auth\",\"data\":{{\"token\":\"{token}\"}}}}\n\
                 {{\"type\":\"select_campaign\",\"data\":{{\"campaign_id\":{id}}}}}"
            )
        };
        let admin = websocket_session(handshake("admin", 1).as_bytes());
        assert!(admin.iter().any(|t| t == "totals"), "{admin:?}");
        assert!(admin.iter().any(|t| t == "status"), "{admin:?}");
        let again = websocket_session(handshake("owner", 1).as_bytes());
        assert!(again.iter().any(|t| t == "totals"), "{again:?}");
        assert_eq!(
            websocket_session(handshake("other", 1).as_bytes()),
            ["error"]
        );
        assert_eq!(
            websocket_session(handshake("nobody", 1).as_bytes()),
            ["error"]
        );
    }

    /// The log target's checks bite: a line nested past the cap is set aside, not logged.
    #[test]
    fn the_log_target_sees_deep_lines_set_aside() {
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_NESTING + 1),
            "]".repeat(MAX_NESTING + 1)
        );
        let body = format!("{{\"log_type\":\"status\",\"data\":[{{\"a\":{deep}}},{{\"b\":1}}]}}");
        let request: wire::LogBody = parse(body.as_bytes()).unwrap();
        let lines = request.data.unwrap();
        let out = json_lines(lines.iter().copied());
        assert_eq!(out.set_aside.len(), 1);
        assert_eq!(out.buffer, b"{\"b\":1}\n");
        osquery_request(OsqueryEndpoint::Log, false, body.as_bytes());
    }
}
