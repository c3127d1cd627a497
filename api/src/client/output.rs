//! How the command line prints what the server sent: tables for people, JSON, JSON lines, CSV
//! and YAML for scripts.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::{Map, Value};

/// A table with a header row; rows are cells already rendered as text.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// A JSON value as a table cell: strings bare, null empty, lists comma-joined, objects compact.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// The cells of `object` under `keys`; a dotted key reads a nested field (`team.name`).
pub fn cells(object: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|key| {
            let mut value = object;
            for part in key.split('.') {
                value = &value[part];
            }
            cell(value)
        })
        .collect()
}

/// Nested objects as `dotted.key → value` pairs, in key order, for a two-column table.
pub fn flatten(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, child, out);
                }
            }
            other => out.push((prefix.to_owned(), cell(other))),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

pub fn json_pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values serialise")
}

pub fn yaml(value: &Value) -> anyhow::Result<String> {
    serde_saphyr::to_string(value).map_err(|e| anyhow::anyhow!("encoding YAML: {e}"))
}

/// One result row as the user sees it: `host` and the row's own columns (without the
/// `host_hostname`/`host_display_name` decorations the server adds to each row). Tables and
/// CSV put `host` first through [`result_columns`].
pub fn result_row(host: &str, row: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("host".into(), Value::from(host));
    for (key, value) in row {
        if key == "host_hostname" || key == "host_display_name" || key == "host" {
            continue;
        }
        out.insert(key.clone(), value.clone());
    }
    out
}

/// The columns of result rows: `host`, then every other column in the order first seen.
pub fn result_columns<'a>(rows: impl IntoIterator<Item = &'a Map<String, Value>>) -> Vec<String> {
    let mut columns = vec!["host".to_owned()];
    for row in rows {
        for key in row.keys() {
            if !columns.iter().any(|c| c == key) {
                columns.push(key.clone());
            }
        }
    }
    columns
}

/// CSV lines (header included when `header` is set) for rows, over `columns`.
pub fn csv_lines(columns: &[String], rows: &[Map<String, Value>], header: bool) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if header {
        writer.write_record(columns).expect("writing to memory");
    }
    for row in rows {
        writer
            .write_record(
                columns
                    .iter()
                    .map(|c| row.get(c).map(cell).unwrap_or_default()),
            )
            .expect("writing to memory");
    }
    String::from_utf8(writer.into_inner().expect("writing to memory")).expect("CSV of UTF-8 text")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_render_json_for_people() {
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!("web-1")), "web-1");
        assert_eq!(cell(&json!(["a", "b"])), "a, b");
        assert_eq!(cell(&json!({"k": 1})), r#"{"k":1}"#);
        assert_eq!(
            cells(
                &json!({"team": {"name": "ops"}, "id": 3}),
                &["id", "team.name"]
            ),
            vec!["3", "ops"]
        );
    }

    #[test]
    fn nested_objects_flatten_to_dotted_keys() {
        let flat = flatten(
            &json!({"org_info": {"org_name": "Acme"}, "agent_options": {"config": {"options": {"distributed_interval": 10}}}}),
        );
        assert_eq!(
            flat,
            vec![
                (
                    "agent_options.config.options.distributed_interval".into(),
                    "10".into()
                ),
                ("org_info.org_name".into(), "Acme".into()),
            ]
        );
    }

    #[test]
    fn result_rows_put_the_host_first_and_drop_decorations() {
        let row = json!({"pid": "1", "host_hostname": "web-1", "host_display_name": "web-1", "name": "init"});
        let row = result_row("web-1", row.as_object().unwrap());
        assert_eq!(row["host"], "web-1");
        assert!(!row.contains_key("host_hostname"));
        let columns = result_columns([&row]);
        assert_eq!(columns[0], "host");
        assert_eq!(columns.len(), 3);
        let csv = csv_lines(&columns, &[row], true);
        let mut lines = csv.lines();
        assert!(lines.next().unwrap().starts_with("host,"));
        assert!(lines.next().unwrap().starts_with("web-1,"));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let columns = vec!["host".to_owned(), "cmdline".to_owned()];
        let row = json!({"host": "a", "cmdline": "sh -c \"x, y\""});
        let csv = csv_lines(&columns, &[row.as_object().unwrap().clone()], false);
        assert_eq!(csv, "a,\"sh -c \"\"x, y\"\"\"\n");
    }
}
