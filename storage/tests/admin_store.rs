//! The admin storage suite: users and sessions, host lists and filters, labels (builtin,
//! manual, dynamic), teams and secrets, saved queries, policies and their answers, activities. Each check runs once on a
//! SQLite file and once on a scratch MySQL/MariaDB database (see `backends/mod.rs`).

mod backends;

use backends::Backend;
use flotilla_engine::ids::{HostId, NodeKey, TeamId};
use flotilla_engine::store::{Enrollment, HostStore};
use flotilla_engine::vitals::Vitals;
use flotilla_storage::admin::*;
use serde_json::json;

async fn enroll(hosts: &dyn HostStore, name: &str, platform: &str, now: i64) -> HostId {
    let enrolled = hosts
        .enroll_host(&Enrollment {
            identifier: format!("id-{name}"),
            hardware_uuid: Some(format!("UUID-{name}")),
            node_key: NodeKey::generate().digest(),
            team: None,
            vitals: Vitals {
                hostname: Some(name.into()),
                platform: Some(platform.into()),
                uuid: Some(format!("UUID-{name}")),
                hardware_serial: Some(format!("SERIAL-{name}")),
                primary_ip: Some("10.0.0.1".into()),
                ..Vitals::default()
            },
            now,
        })
        .await
        .unwrap();
    enrolled.host.id
}

fn new_user(email: &str, roles: Roles) -> NewUser {
    NewUser {
        name: email.split('@').next().unwrap().into(),
        email: email.into(),
        password_hash: "$argon2id$fake".into(),
        roles,
        api_only: false,
    }
}

fn by_name(order: &str) -> Order {
    Order {
        key: order.into(),
        descending: false,
    }
}

const ALL: Page = Page {
    limit: 100,
    offset: 0,
};

backend_tests!(
    users_sessions_and_roles,
    host_lists_filter_order_page_and_count,
    labels_builtin_manual_and_dynamic,
    teams_and_enroll_secrets,
    saved_queries_and_activities,
    agent_options_scheduled_queries_and_reports,
    policies_crud_specs_and_names_per_team,
    policies_answers_counts_and_host_policies,
    usage_counts_identifier_and_attempts,
);

/// Usage statistics: counts and breakdowns of what is stored; the identifier the first caller
/// stores is kept for every later one; the last try is remembered.
async fn usage_counts_identifier_and_attempts(backend: &Backend) {
    let store = backend.admin();
    for (name, platform) in [("a", "ubuntu"), ("b", "ubuntu"), ("c", "darwin")] {
        enroll(backend.hosts(), name, platform, 100).await;
    }
    store
        .create_first_user(
            &new_user("admin@example.com", Roles::Global("admin".into())),
            10,
        )
        .await
        .unwrap();
    let counts = store.usage_counts().await.unwrap();
    assert_eq!((counts.hosts, counts.users, counts.teams), (3, 1, 0));
    assert_eq!(counts.by_os.len(), 2);
    assert_eq!(
        counts.by_os[0].0, "ubuntu",
        "largest first: {:?}",
        counts.by_os
    );
    assert_eq!(counts.by_os[0].2, 2);
    assert_eq!(
        counts
            .by_osquery_version
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>(),
        3
    );

    let first = store.usage_identifier("first-candidate", 1).await.unwrap();
    assert_eq!(first, "first-candidate");
    let again = store
        .usage_identifier("another-candidate", 2)
        .await
        .unwrap();
    assert_eq!(again, "first-candidate", "the identifier never changes");

    assert_eq!(store.usage_last_attempt().await.unwrap(), 0);
    store.record_usage_attempt(500, false).await.unwrap();
    store.record_usage_attempt(600, true).await.unwrap();
    assert_eq!(store.usage_last_attempt().await.unwrap(), 600);
}

async fn users_sessions_and_roles(backend: &Backend) {
    let store = backend.admin();
    let first = new_user("admin@example.com", Roles::Global("admin".into()));
    let admin = store.create_first_user(&first, 10).await.unwrap().unwrap();
    assert_eq!(admin.global_role.as_deref(), Some("admin"));
    assert!(
        store
            .create_first_user(
                &new_user("late@example.com", Roles::Global("admin".into())),
                11
            )
            .await
            .unwrap()
            .is_none(),
        "setup happens once"
    );
    let duplicate = store
        .create_user(
            &new_user("ADMIN@example.com", Roles::Global("observer".into())),
            12,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, AdminError::Conflict(_)),
        "{duplicate:?}"
    );

    let team = store
        .create_team("Servers", "", "team-secret", 13)
        .await
        .unwrap();
    let member = store
        .create_user(
            &new_user(
                "ops@example.com",
                Roles::Teams(vec![(team.id, "maintainer".into())]),
            ),
            14,
        )
        .await
        .unwrap();
    assert_eq!(member.global_role, None);
    assert_eq!(member.teams[0].team_name, "Servers");
    assert_eq!(member.teams[0].role, "maintainer");
    let missing_team = store
        .create_user(
            &new_user(
                "x@example.com",
                Roles::Teams(vec![(TeamId(999), "observer".into())]),
            ),
            15,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing_team, AdminError::Invalid(_)),
        "{missing_team:?}"
    );

    let (found, hash) = store
        .user_by_email("Ops@Example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, member.id);
    assert_eq!(hash, "$argon2id$fake");

    store.create_session(member.id, "hash-1", 20).await.unwrap();
    let (user, accessed) = store.session("hash-1").await.unwrap().unwrap();
    assert_eq!((user.id, accessed), (member.id, 20));
    store.touch_session("hash-1", 30).await.unwrap();
    assert_eq!(store.session("hash-1").await.unwrap().unwrap().1, 30);

    let promoted = store
        .update_user(
            member.id,
            &UserChanges {
                name: Some("Ops".into()),
                roles: Some(Roles::Global("observer".into())),
                ..UserChanges::default()
            },
            40,
        )
        .await
        .unwrap();
    assert_eq!(promoted.name, "Ops");
    assert_eq!(promoted.global_role.as_deref(), Some("observer"));
    assert!(
        promoted.teams.is_empty(),
        "a global role replaces team roles"
    );
    assert_eq!(store.users().await.unwrap().len(), 2);
    assert_eq!(store.global_admin_count().await.unwrap(), 1);

    store.delete_user(member.id).await.unwrap().unwrap();
    assert!(
        store.session("hash-1").await.unwrap().is_none(),
        "sessions go with the user"
    );
    assert!(store.delete_user(member.id).await.unwrap().is_none());
}

async fn host_lists_filter_order_page_and_count(backend: &Backend) {
    let (store, hosts) = (backend.admin(), backend.hosts());
    let mac = enroll(hosts, "mac-1", "darwin", 1_000).await;
    let ubuntu = enroll(hosts, "ubuntu-1", "ubuntu", 2_000).await;
    let windows = enroll(hosts, "win-1", "windows", 3_000).await;
    let team = store.create_team("Desktops", "", "s1", 10).await.unwrap();
    let moved = store
        .transfer_hosts(Some(team.id), &[mac, windows, HostId(999)], 20)
        .await
        .unwrap();
    assert_eq!(moved, vec![mac, windows]);

    let names = |hosts: Vec<Host>| hosts.into_iter().map(|h| h.hostname).collect::<Vec<_>>();
    let all = store
        .list_hosts(&HostFilter::all(), &by_name("hostname"), ALL)
        .await
        .unwrap();
    assert_eq!(names(all), ["mac-1", "ubuntu-1", "win-1"]);
    let newest_first = store
        .list_hosts(
            &HostFilter::all(),
            &Order {
                key: "created_at".into(),
                descending: true,
            },
            Page {
                limit: 2,
                offset: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(names(newest_first), ["win-1", "ubuntu-1"]);
    let second_page = store
        .list_hosts(
            &HostFilter::all(),
            &by_name("hostname"),
            Page {
                limit: 2,
                offset: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(names(second_page), ["win-1"]);

    let in_team = HostFilter {
        team: Some(TeamFilter::Team(team.id)),
        ..HostFilter::all()
    };
    assert_eq!(store.count_hosts(&in_team).await.unwrap(), 2);
    let no_team = HostFilter {
        team: Some(TeamFilter::NoTeam),
        ..HostFilter::all()
    };
    assert_eq!(store.count_hosts(&no_team).await.unwrap(), 1);
    let scoped = HostFilter {
        scope: HostScope::Teams(vec![team.id]),
        ..HostFilter::all()
    };
    assert_eq!(store.count_hosts(&scoped).await.unwrap(), 2);
    let searched = HostFilter {
        search: Some("SERIAL-UBU".into()),
        ..HostFilter::all()
    };
    let found = store
        .list_hosts(&searched, &by_name("id"), ALL)
        .await
        .unwrap();
    assert_eq!(names(found), ["ubuntu-1"]);
    let wildcard = HostFilter {
        search: Some("%".into()),
        ..HostFilter::all()
    };
    assert_eq!(
        store.count_hosts(&wildcard).await.unwrap(),
        0,
        "% is literal"
    );
    let online = HostFilter {
        status: Some(StatusFilter::IdsIn(vec![ubuntu])),
        ..HostFilter::all()
    };
    assert_eq!(store.count_hosts(&online).await.unwrap(), 1);
    let offline = HostFilter {
        status: Some(StatusFilter::IdsNotIn(vec![ubuntu])),
        ..HostFilter::all()
    };
    assert_eq!(store.count_hosts(&offline).await.unwrap(), 2);
    let new = HostFilter {
        status: Some(StatusFilter::CreatedSince(2_000)),
        ..HostFilter::all()
    };
    assert_eq!(store.count_hosts(&new).await.unwrap(), 2);

    let host = store.host(mac).await.unwrap().unwrap();
    assert_eq!(host.team_name.as_deref(), Some("Desktops"));
    assert_eq!(host.hardware_serial, "SERIAL-mac-1");
    for identifier in ["mac-1", "UUID-mac-1", "SERIAL-mac-1", "id-mac-1"] {
        let found = store.host_by_identifier(identifier).await.unwrap().unwrap();
        assert_eq!(found.id, mac, "{identifier}");
    }
    assert!(store.host_by_identifier("").await.unwrap().is_none());
    assert_eq!(
        store
            .host_ids_by_identifiers(&["win-1".into(), "UUID-ubuntu-1".into(), "nope".into()])
            .await
            .unwrap(),
        vec![ubuntu, windows]
    );
    assert_eq!(
        store.host_ids_in_teams(&[team.id]).await.unwrap(),
        vec![mac, windows]
    );

    let totals = store
        .host_totals(&HostScope::All, None, 2_000, 1_500)
        .await
        .unwrap();
    assert_eq!((totals.total, totals.new, totals.not_seen_since), (3, 2, 1));
    assert_eq!(totals.platforms.len(), 3);

    store.delete_host(ubuntu).await.unwrap().unwrap();
    assert!(store.host(ubuntu).await.unwrap().is_none());
    assert!(store.delete_host(ubuntu).await.unwrap().is_none());

    let (deleted, moved) = store.delete_team(team.id).await.unwrap().unwrap();
    assert_eq!(deleted.name, "Desktops");
    assert_eq!(moved, vec![mac, windows]);
    assert_eq!(store.host(mac).await.unwrap().unwrap().team, None);
    assert!(
        store
            .enroll_secrets_of(Some(team.id))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn labels_builtin_manual_and_dynamic(backend: &Backend) {
    let (store, hosts) = (backend.admin(), backend.hosts());
    let mac = enroll(hosts, "mac-1", "darwin", 1).await;
    let ubuntu = enroll(hosts, "ubuntu-1", "ubuntu", 1).await;

    let labels = store.labels(&HostScope::All).await.unwrap();
    let count = |name: &str| labels.iter().find(|l| l.name == name).unwrap().host_count;
    assert_eq!(count("All Hosts"), 2);
    assert_eq!(count("macOS"), 1);
    assert_eq!(count("Ubuntu Linux"), 1);
    assert_eq!(count("MS Windows"), 0);
    let macos = store.label_by_name("macOS").await.unwrap().unwrap();
    assert_eq!(macos.label_type, LabelType::Builtin);
    assert_eq!(
        store.host_ids_in_labels(&[macos.id]).await.unwrap(),
        vec![mac]
    );
    let refused = store.delete_label(macos.id).await.unwrap_err();
    assert!(matches!(refused, AdminError::Invalid(_)));

    let manual = store
        .create_label(
            &NewLabel {
                name: "canaries".into(),
                description: "first to upgrade".into(),
                query: String::new(),
                platform: String::new(),
                membership: LabelMembership::Manual,
                hosts: vec![ubuntu],
            },
            5,
        )
        .await
        .unwrap();
    assert_eq!(manual.host_count, 1);
    let with_label = HostFilter {
        label: Some(manual.id),
        ..HostFilter::all()
    };
    assert_eq!(store.count_hosts(&with_label).await.unwrap(), 1);
    let changed = store
        .update_label(
            manual.id,
            &LabelChanges {
                hosts: Some(vec![mac, ubuntu]),
                ..LabelChanges::default()
            },
            6,
        )
        .await
        .unwrap();
    assert_eq!(changed.host_count, 2);
    assert_eq!(
        store.manual_label_hosts(manual.id).await.unwrap(),
        vec![mac, ubuntu]
    );

    let dynamic = store
        .create_label(
            &NewLabel {
                name: "has-docker".into(),
                description: String::new(),
                query: "SELECT 1 FROM processes WHERE name = 'dockerd';".into(),
                platform: "ubuntu".into(),
                membership: LabelMembership::Dynamic,
                hosts: Vec::new(),
            },
            7,
        )
        .await
        .unwrap();
    assert_eq!(
        store.dynamic_label_queries().await.unwrap(),
        vec![LabelQuery {
            id: dynamic.id,
            query: "SELECT 1 FROM processes WHERE name = 'dockerd';".into(),
            platform: "ubuntu".into(),
        }]
    );
    // Answers arrive through the batched host flush; one for a builtin label is ignored.
    hosts
        .flush_hosts(&[(
            ubuntu,
            label_answers(&[(dynamic.id, true), (macos.id, true)], 8),
        )])
        .await
        .unwrap();
    assert_eq!(
        store.host_ids_in_labels(&[dynamic.id]).await.unwrap(),
        vec![ubuntu]
    );
    let names: Vec<String> = store
        .host_labels(ubuntu)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(
        names,
        ["All Hosts", "Ubuntu Linux", "canaries", "has-docker"]
    );
    hosts
        .flush_hosts(&[(ubuntu, label_answers(&[(dynamic.id, false)], 9))])
        .await
        .unwrap();
    assert!(
        store
            .host_ids_in_labels(&[dynamic.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .label_ids_by_names(&["canaries".into(), "macOS".into(), "nope".into()])
            .await
            .unwrap()
            .len(),
        2
    );
    let duplicate = store
        .update_label(
            dynamic.id,
            &LabelChanges {
                name: Some("canaries".into()),
                ..LabelChanges::default()
            },
            10,
        )
        .await
        .unwrap_err();
    assert!(matches!(duplicate, AdminError::Conflict(_)));
    store.delete_label(manual.id).await.unwrap().unwrap();
    assert!(
        store
            .label(manual.id, &HostScope::All)
            .await
            .unwrap()
            .is_none()
    );
}

async fn teams_and_enroll_secrets(backend: &Backend) {
    let store = backend.admin();
    let team = store
        .create_team("Servers", "racks", "s-1", 1)
        .await
        .unwrap();
    assert_eq!(team.secrets.len(), 1);
    assert_eq!(team.secrets[0].team, Some(team.id));
    let taken = store
        .create_team("servers", "", "s-2", 2)
        .await
        .unwrap_err();
    assert!(
        matches!(taken, AdminError::Conflict(_)),
        "names are case-insensitive"
    );

    let replaced = store
        .replace_enroll_secrets(Some(team.id), &["s-1".into(), "s-3".into()], 5)
        .await
        .unwrap();
    assert_eq!(replaced.len(), 2);
    assert_eq!(replaced[0].created_at, 1, "a kept secret keeps its age");
    let global = store
        .replace_enroll_secrets(None, &["g-1".into()], 6)
        .await
        .unwrap();
    assert_eq!(global[0].team, None);
    let clash = store
        .replace_enroll_secrets(None, &["s-3".into()], 7)
        .await
        .unwrap_err();
    assert!(matches!(clash, AdminError::Conflict(_)));
    assert_eq!(
        store.enroll_secrets_of(None).await.unwrap()[0].secret,
        "g-1",
        "a refused replacement changes nothing"
    );
    let all = backend.hosts().enroll_secrets().await.unwrap();
    assert_eq!(all.len(), 3, "the engine sees team and global secrets");

    let renamed = store
        .update_team(
            team.id,
            &TeamChanges {
                name: Some("Racks".into()),
                ..TeamChanges::default()
            },
            8,
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("Racks", "racks")
    );
    assert_eq!(store.teams().await.unwrap().len(), 1);
}

async fn saved_queries_and_activities(backend: &Backend) {
    let store = backend.admin();
    let author = store
        .create_user(&new_user("a@example.com", Roles::Global("admin".into())), 1)
        .await
        .unwrap();
    let team = store.create_team("T", "", "t", 1).await.unwrap();
    let fields = |name: &str| QueryFields {
        name: name.into(),
        description: String::new(),
        query: "SELECT * FROM osquery_info;".into(),
        interval: 0,
        platform: String::new(),
        min_osquery_version: String::new(),
        automations_enabled: false,
        logging: "snapshot".into(),
        observer_can_run: true,
        discard_data: false,
    };
    let global = store
        .create_query(None, &fields("info"), Some(author.id), 2)
        .await
        .unwrap();
    assert_eq!(global.author_email, "a@example.com");
    let in_team = store
        .create_query(Some(team.id), &fields("info"), Some(author.id), 2)
        .await
        .unwrap();
    let taken = store
        .create_query(None, &fields("info"), None, 3)
        .await
        .unwrap_err();
    assert!(
        matches!(taken, AdminError::Conflict(_)),
        "unique per team, global included"
    );
    assert_eq!(store.queries(None, None).await.unwrap().len(), 1);
    assert_eq!(
        store
            .queries(Some(team.id), Some("osquery"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .queries(None, Some("nothing"))
            .await
            .unwrap()
            .is_empty()
    );
    let mut changed = fields("renamed");
    changed.interval = 3600;
    let updated = store.update_query(global.id, &changed, 4).await.unwrap();
    assert_eq!(
        (updated.fields.name.as_str(), updated.fields.interval),
        ("renamed", 3600)
    );
    assert_eq!(
        store.get_query(in_team.id).await.unwrap().unwrap().team,
        Some(team.id)
    );
    assert_eq!(
        store
            .query_by_name(Some(team.id), "info")
            .await
            .unwrap()
            .unwrap()
            .id,
        in_team.id
    );
    assert_eq!(
        store
            .delete_queries(&[global.id, in_team.id, QueryId(999)])
            .await
            .unwrap(),
        2
    );

    store
        .record_activity(Some(author.id), "created_team", json!({"team_id": 1}), 10)
        .await
        .unwrap();
    store
        .record_activity(None, "deleted_host", json!({"host_id": 2}), 20)
        .await
        .unwrap();
    let newest_first = store
        .activities(
            &Order {
                key: "created_at".into(),
                descending: true,
            },
            ALL,
        )
        .await
        .unwrap();
    assert_eq!(newest_first[0].kind, "deleted_host");
    assert_eq!(
        newest_first[1].actor_email.as_deref(),
        Some("a@example.com")
    );
    assert_eq!(newest_first[1].details["team_id"], 1);
    store.delete_user(author.id).await.unwrap();
    let after = store.activities(&by_name("id"), ALL).await.unwrap();
    assert_eq!(
        after[0].actor_full_name.as_deref(),
        Some("a"),
        "the log keeps the name of a deleted actor"
    );
}

fn label_answers(
    answers: &[(flotilla_storage::admin::LabelId, bool)],
    at: i64,
) -> flotilla_engine::store::HostUpdate {
    flotilla_engine::store::HostUpdate {
        labels: Some(answers.iter().map(|&(l, m)| (l.0, m)).collect()),
        label_updated_at: Some(at),
        ..Default::default()
    }
}

fn scheduled(name: &str, interval: u32) -> QueryFields {
    QueryFields {
        name: name.into(),
        description: String::new(),
        query: format!("SELECT '{name}';"),
        interval,
        platform: String::new(),
        min_osquery_version: String::new(),
        automations_enabled: false,
        logging: "snapshot".into(),
        observer_can_run: false,
        discard_data: false,
    }
}

async fn agent_options_scheduled_queries_and_reports(backend: &Backend) {
    let admin = backend.admin();
    let hosts = backend.hosts();

    assert_eq!(admin.agent_options(None).await.unwrap(), None);
    let global = json!({"config": {"options": {"distributed_interval": 10}}});
    admin.set_agent_options(None, &global, 1).await.unwrap();
    assert_eq!(admin.agent_options(None).await.unwrap(), Some(global));

    let team = admin.create_team("Ops", "", "ops-secret", 1).await.unwrap();
    let team_options = json!({"config": {"options": {"distributed_interval": 5}}});
    admin
        .set_agent_options(Some(team.id), &team_options, 2)
        .await
        .unwrap();
    assert_eq!(
        admin.team_agent_options().await.unwrap(),
        vec![(team.id, team_options.clone())]
    );
    assert!(matches!(
        admin
            .set_agent_options(Some(TeamId(999)), &team_options, 2)
            .await,
        Err(AdminError::NotFound(_))
    ));
    admin
        .set_agent_options(Some(team.id), &serde_json::Value::Null, 3)
        .await
        .unwrap();
    assert!(admin.team_agent_options().await.unwrap().is_empty());

    assert_eq!(admin.app_settings().await.unwrap(), None);
    let settings = json!({"org_info": {"org_name": "Acme"}});
    admin.set_app_settings(&settings, 4).await.unwrap();
    assert_eq!(admin.app_settings().await.unwrap(), Some(settings));

    let hourly = admin
        .create_query(None, &scheduled("hourly", 3600), None, 5)
        .await
        .unwrap();
    admin
        .create_query(None, &scheduled("adhoc", 0), None, 5)
        .await
        .unwrap();
    let team_query = admin
        .create_query(Some(team.id), &scheduled("team", 60), None, 5)
        .await
        .unwrap();
    let names: Vec<String> = admin
        .scheduled_queries()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.fields.name)
        .collect();
    assert_eq!(names, ["hourly", "team"]);

    let host = enroll(hosts, "h1", "ubuntu", 5).await;
    let rows = |n: usize| (0..n).map(|i| format!("{{\"i\":\"{i}\"}}")).collect();
    admin
        .write_reports(&[
            ReportRows {
                query: hourly.id,
                host,
                last_fetched: 6,
                rows: rows(3),
            },
            ReportRows {
                query: team_query.id,
                host,
                last_fetched: 6,
                rows: Vec::new(),
            },
            // A query that is gone is skipped.
            ReportRows {
                query: QueryId(999),
                host,
                last_fetched: 6,
                rows: rows(1),
            },
        ])
        .await
        .unwrap();
    admin
        .write_reports(&[ReportRows {
            query: hourly.id,
            host,
            last_fetched: 7,
            rows: rows(2),
        }])
        .await
        .unwrap();
    let stored = admin.reports().await.unwrap();
    assert_eq!(
        stored,
        vec![
            ReportRows {
                query: hourly.id,
                host,
                last_fetched: 7,
                rows: rows(2),
            },
            ReportRows {
                query: team_query.id,
                host,
                last_fetched: 6,
                rows: Vec::new(),
            },
        ]
    );
    admin.delete_report(hourly.id).await.unwrap();
    assert_eq!(admin.reports().await.unwrap().len(), 1);
    admin.delete_query(team_query.id).await.unwrap();
    assert!(
        admin.reports().await.unwrap().is_empty(),
        "deleted with its query"
    );
}

fn policy_fields(name: &str, query: &str, platform: &str) -> PolicyFields {
    PolicyFields {
        name: name.into(),
        query: query.into(),
        description: format!("{name} description"),
        resolution: format!("fix {name}"),
        platform: platform.into(),
        critical: false,
    }
}

async fn policies_crud_specs_and_names_per_team(backend: &Backend) {
    let store = backend.admin();
    let author = store
        .create_user(
            &new_user("author@example.com", Roles::Global("admin".into())),
            1,
        )
        .await
        .unwrap();
    let team = store
        .create_team("Servers", "", "secret-s", 1)
        .await
        .unwrap();
    let global = store
        .create_policy(
            None,
            &policy_fields("Disk encrypted", "SELECT 1", ""),
            Some(author.id),
            10,
        )
        .await
        .unwrap();
    assert_eq!(global.team, None);
    assert_eq!(global.author_name, "author");
    assert_eq!(global.author_email, "author@example.com");
    assert_eq!(
        (global.passing_host_count, global.failing_host_count),
        (0, 0)
    );
    assert_eq!(global.counts_updated_at, None);
    let taken = store
        .create_policy(
            None,
            &policy_fields("Disk encrypted", "SELECT 2", ""),
            None,
            11,
        )
        .await;
    assert!(matches!(taken, Err(AdminError::Conflict(_))), "{taken:?}");
    // The same name in a team is another policy.
    let in_team = store
        .create_policy(
            Some(team.id),
            &policy_fields("Disk encrypted", "SELECT 3", "linux"),
            None,
            12,
        )
        .await
        .unwrap();
    assert_eq!(in_team.team, Some(team.id));
    let unknown_team = store
        .create_policy(
            Some(TeamId(9_999)),
            &policy_fields("x", "SELECT 1", ""),
            None,
            12,
        )
        .await;
    assert!(
        matches!(unknown_team, Err(AdminError::Invalid(_))),
        "{unknown_team:?}"
    );
    assert_eq!(store.policies(None).await.unwrap(), vec![global.clone()]);
    assert_eq!(
        store.policies(Some(team.id)).await.unwrap(),
        vec![in_team.clone()]
    );
    assert_eq!(store.policy_count(None).await.unwrap(), 1);
    assert_eq!(store.policy_count(Some(team.id)).await.unwrap(), 1);
    assert_eq!(store.all_policies().await.unwrap().len(), 2);

    let mut fields = global.fields.clone();
    fields.critical = true;
    fields.resolution = "turn on FileVault".into();
    let edited = store.update_policy(global.id, &fields, 20).await.unwrap();
    assert!(edited.fields.critical);
    assert_eq!(edited.updated_at, 20);
    assert_eq!(edited.created_at, 10);
    // Updating with the same fields is not "not found" (MySQL counts changed rows only).
    store.update_policy(global.id, &fields, 20).await.unwrap();
    let missing = store.update_policy(PolicyId(9_999), &fields, 21).await;
    assert!(
        matches!(missing, Err(AdminError::NotFound(_))),
        "{missing:?}"
    );

    // Specs: by team and name, created or replaced, in one go.
    let applied = store
        .apply_policy_specs(
            &[
                PolicySpec {
                    team: None,
                    fields: policy_fields("Disk encrypted", "SELECT 4", "darwin"),
                },
                PolicySpec {
                    team: Some(team.id),
                    fields: policy_fields("Firewall on", "SELECT 5", ""),
                },
            ],
            Some(author.id),
            30,
        )
        .await
        .unwrap();
    assert_eq!(applied[0].id, global.id, "replaced by name");
    assert_eq!(applied[0].fields.query, "SELECT 4");
    assert_eq!(applied[0].fields.platform, "darwin");
    assert_eq!(applied[1].team, Some(team.id));
    assert_eq!(store.policy_count(Some(team.id)).await.unwrap(), 2);

    let deleted = store
        .delete_policies(&[global.id, PolicyId(9_999)])
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].id, global.id);
    assert!(store.policy(global.id).await.unwrap().is_none());
    // A deleted team takes its policies along.
    store.delete_team(team.id).await.unwrap();
    assert!(store.all_policies().await.unwrap().is_empty());
}

async fn policies_answers_counts_and_host_policies(backend: &Backend) {
    use flotilla_engine::store::HostUpdate;
    let store = backend.admin();
    let hosts = backend.hosts();
    let team = store
        .create_team("Laptops", "", "secret-l", 1)
        .await
        .unwrap();
    let other = store
        .create_team("Desktops", "", "secret-d", 1)
        .await
        .unwrap();
    let linux = enroll(hosts, "linux-1", "ubuntu", 5).await;
    let mac = enroll(hosts, "mac-1", "darwin", 5).await;
    let moved = enroll(hosts, "linux-2", "debian", 5).await;
    store
        .transfer_hosts(Some(team.id), &[moved], 6)
        .await
        .unwrap();
    let everyone = store
        .create_policy(None, &policy_fields("Everyone", "SELECT 1", ""), None, 10)
        .await
        .unwrap();
    let linux_only = store
        .create_policy(
            None,
            &policy_fields("Linux only", "SELECT 1", "linux"),
            None,
            10,
        )
        .await
        .unwrap();
    let team_policy = store
        .create_policy(
            Some(team.id),
            &policy_fields("Team only", "SELECT 1", ""),
            None,
            10,
        )
        .await
        .unwrap();
    let answers = |list: Vec<(u64, Option<bool>)>, at: i64| HostUpdate {
        policies: Some(list),
        policy_updated_at: Some(at),
        ..HostUpdate::default()
    };
    hosts
        .flush_hosts(&[
            (
                linux,
                answers(
                    vec![(everyone.id.0, Some(true)), (linux_only.id.0, Some(false))],
                    100,
                ),
            ),
            (mac, answers(vec![(everyone.id.0, Some(false))], 101)),
            (
                moved,
                answers(
                    vec![
                        (everyone.id.0, None),
                        (team_policy.id.0, Some(true)),
                        (linux_only.id.0, Some(true)),
                    ],
                    102,
                ),
            ),
            // A host not in the policy's team: nothing is written for it.
            (linux, answers(vec![(team_policy.id.0, Some(true))], 103)),
        ])
        .await
        .unwrap();
    let count = |id: PolicyId| async move {
        let p = store.policy(id).await.unwrap().unwrap();
        (p.passing_host_count, p.failing_host_count)
    };
    assert_eq!(
        count(everyone.id).await,
        (1, 1),
        "unknown counts as neither"
    );
    assert_eq!(count(linux_only.id).await, (1, 1));
    assert_eq!(count(team_policy.id).await, (1, 0));
    // The host list filter by answer.
    let by_answer = |passes| HostFilter {
        policy: Some((everyone.id, passes)),
        ..HostFilter::all()
    };
    let passing = store
        .list_hosts(&by_answer(true), &by_name("id"), ALL)
        .await
        .unwrap();
    assert_eq!(
        passing.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![linux]
    );
    assert_eq!(store.count_hosts(&by_answer(false)).await.unwrap(), 1);
    let everyone_now = store.policy(everyone.id).await.unwrap().unwrap();
    assert_eq!(everyone_now.counts_updated_at, Some(102));
    // The times move forward with the answers.
    let loaded = hosts.load_host(linux).await.unwrap().unwrap();
    assert_eq!(loaded.policy_updated_at, 103);

    // Host policies: global ones and the team's, filtered by platform, with the answer.
    let responses = |list: Vec<HostPolicy>| {
        list.into_iter()
            .map(|p| (p.fields.name, p.response))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        responses(store.host_policies(linux).await.unwrap()),
        vec![
            ("Everyone".into(), Some(true)),
            ("Linux only".into(), Some(false))
        ]
    );
    assert_eq!(
        responses(store.host_policies(mac).await.unwrap()),
        vec![("Everyone".into(), Some(false))],
        "a linux policy does not apply to a mac"
    );
    assert_eq!(
        responses(store.host_policies(moved).await.unwrap()),
        vec![
            ("Everyone".into(), None),
            ("Linux only".into(), Some(true)),
            ("Team only".into(), Some(true)),
        ]
    );
    assert_eq!(store.failing_policy_count(linux).await.unwrap(), 1);
    let listed = store.host(linux).await.unwrap().unwrap();
    assert_eq!(
        listed.failing_policies_count, 1,
        "the host lists count them too"
    );
    assert_eq!(store.failing_policy_count(moved).await.unwrap(), 0);
    assert!(store.host_policies(HostId(9_999)).await.unwrap().is_empty());

    // A newer answer replaces the older one.
    hosts
        .flush_hosts(&[(mac, answers(vec![(everyone.id.0, Some(true))], 200))])
        .await
        .unwrap();
    assert_eq!(count(everyone.id).await, (2, 0));

    // Moving a host to another team drops its answers to the old team's policies only.
    store
        .transfer_hosts(Some(other.id), &[moved], 300)
        .await
        .unwrap();
    assert_eq!(count(team_policy.id).await, (0, 0));
    assert_eq!(count(linux_only.id).await, (1, 1));

    // A changed query forgets the answers; other edits keep them.
    let mut fields = linux_only.fields.clone();
    fields.critical = true;
    store
        .update_policy(linux_only.id, &fields, 400)
        .await
        .unwrap();
    assert_eq!(count(linux_only.id).await, (1, 1));
    fields.query = "SELECT 2".into();
    store
        .update_policy(linux_only.id, &fields, 401)
        .await
        .unwrap();
    assert_eq!(count(linux_only.id).await, (0, 0));

    // A deleted host takes its answers along.
    store.delete_host(mac).await.unwrap();
    assert_eq!(count(everyone.id).await, (1, 0));
    // A deleted policy leaves no answers behind for the others.
    store.delete_policies(&[everyone.id]).await.unwrap();
    assert!(
        responses(store.host_policies(linux).await.unwrap())
            .iter()
            .all(|(name, _)| name != "Everyone")
    );
}
