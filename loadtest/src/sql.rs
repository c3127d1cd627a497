//! Just enough SQL understanding to answer osquery-style queries from canned table rows.
//!
//! This is not an SQL engine. It recognises `SELECT <items> FROM <tables> [WHERE …] [LIMIT n]`
//! where the tables are one-row-ish virtual tables, evaluates simple `WHERE` conditions
//! (`=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`, `LIKE`, `IN (…)`, combined with `AND`/`OR` and
//! parentheses) and projects plain columns, `*`, aliases and literals. Anything it does not
//! understand in a condition counts as true; unknown expressions in the select list yield `""`.

use std::collections::BTreeMap;

/// One result row: column name → string value (osquery rows are string maps).
pub type Row = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Punct(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn tokenize(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' || c == '`' {
            let quote = bytes[i];
            let start = i;
            i += 1;
            let mut text = String::new();
            while i < bytes.len() {
                if bytes[i] == quote {
                    if i + 1 < bytes.len() && bytes[i + 1] == quote {
                        text.push(quote as char);
                        i += 2;
                        continue;
                    }
                    break;
                }
                let ch_len = utf8_len(bytes[i]);
                text.push_str(&sql[i..(i + ch_len).min(sql.len())]);
                i += ch_len;
            }
            i = (i + 1).min(bytes.len());
            let tok = if quote == b'\'' {
                Tok::Str(text)
            } else {
                Tok::Word(text)
            };
            // Double-quoted and backquoted names are identifiers in SQLite, but SQLite falls back
            // to treating an unknown "x" as a string; conditions handle both.
            out.push(Token { tok, start, end: i });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric() || bytes[i] == b'.')
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Num(sql[start..i].to_string()),
                start,
                end: i,
            });
        } else if c.is_alphanumeric() || c == '_' || !c.is_ascii() {
            let start = i;
            while i < bytes.len() {
                let b = bytes[i];
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b >= 0x80 {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Token {
                tok: Tok::Word(sql[start..i].to_string()),
                start,
                end: i,
            });
        } else {
            let start = i;
            let two = sql.get(i..i + 2).unwrap_or("");
            let len = if matches!(two, "!=" | "<>" | "<=" | ">=" | "==" | "||") {
                2
            } else {
                1
            };
            i += len;
            out.push(Token {
                tok: Tok::Punct(sql[start..i].to_string()),
                start,
                end: i,
            });
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn is_kw(t: &Token, kw: &str) -> bool {
    matches!(&t.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

fn is_punct(t: &Token, p: &str) -> bool {
    matches!(&t.tok, Tok::Punct(x) if x == p)
}

/// A table in the `FROM` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// Lower-case table name.
    pub name: String,
    /// Lower-case alias, if any.
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Star(Option<String>),
    Column {
        qualifier: Option<String>,
        name: String,
        output: String,
    },
    Literal {
        value: String,
        output: String,
    },
    Expr {
        output: String,
    },
}

/// A parsed `SELECT`.
#[derive(Debug, Clone)]
pub struct SelectQuery {
    /// Tables of the `FROM` clause, in order (empty for `SELECT 1`).
    pub tables: Vec<TableRef>,
    items: Vec<Item>,
    filter: Vec<Token>,
    /// `LIMIT n`.
    pub limit: Option<usize>,
}

/// Clause keywords that end the select list / table list / where clause.
const CLAUSE_END: [&str; 6] = ["where", "group", "order", "limit", "having", "union"];

impl SelectQuery {
    /// Parse `sql`; `None` if it is not a `SELECT`.
    pub fn parse(sql: &str) -> Option<SelectQuery> {
        let toks = tokenize(sql);
        let mut pos = 0;
        // Skip a leading WITH … is out of scope: only plain SELECT.
        if !toks.first().is_some_and(|t| is_kw(t, "select")) {
            return None;
        }
        pos += 1;
        if toks.get(pos).is_some_and(|t| is_kw(t, "distinct")) {
            pos += 1;
        }
        // Select list up to FROM (or a clause keyword) at depth 0.
        let list_start = pos;
        let mut depth = 0i32;
        while pos < toks.len() {
            let t = &toks[pos];
            if is_punct(t, "(") {
                depth += 1;
            } else if is_punct(t, ")") {
                depth -= 1;
            } else if depth == 0
                && (is_kw(t, "from") || CLAUSE_END.iter().any(|k| is_kw(t, k)) || is_punct(t, ";"))
            {
                break;
            }
            pos += 1;
        }
        let items = split_top(&toks[list_start..pos], ",")
            .into_iter()
            .filter(|part| !part.is_empty())
            .map(|part| parse_item(sql, part))
            .collect();

        let mut tables = Vec::new();
        if toks.get(pos).is_some_and(|t| is_kw(t, "from")) {
            pos += 1;
            let from_start = pos;
            let mut depth = 0i32;
            while pos < toks.len() {
                let t = &toks[pos];
                if is_punct(t, "(") {
                    depth += 1;
                } else if is_punct(t, ")") {
                    depth -= 1;
                } else if depth == 0 && (CLAUSE_END.iter().any(|k| is_kw(t, k)) || is_punct(t, ";"))
                {
                    break;
                }
                pos += 1;
            }
            tables = parse_tables(&toks[from_start..pos]);
        }

        let mut filter = Vec::new();
        let mut limit = None;
        while pos < toks.len() {
            let t = &toks[pos];
            if is_kw(t, "where") {
                pos += 1;
                let start = pos;
                let mut depth = 0i32;
                while pos < toks.len() {
                    let t = &toks[pos];
                    if is_punct(t, "(") {
                        depth += 1;
                    } else if is_punct(t, ")") {
                        depth -= 1;
                    } else if depth == 0
                        && (["group", "order", "limit", "having", "union"]
                            .iter()
                            .any(|k| is_kw(t, k))
                            || is_punct(t, ";"))
                    {
                        break;
                    }
                    pos += 1;
                }
                filter = toks[start..pos].to_vec();
            } else if is_kw(t, "limit") {
                if let Some(Tok::Num(n)) = toks.get(pos + 1).map(|t| &t.tok) {
                    limit = n.parse().ok();
                }
                pos += 2;
            } else {
                pos += 1;
            }
        }
        Some(SelectQuery {
            tables,
            items,
            filter,
            limit,
        })
    }

    /// Drop the `WHERE` clause.
    pub fn clear_filter(&mut self) {
        self.filter.clear();
    }

    /// Lower-case names of the tables read.
    pub fn table_names(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.name.as_str()).collect()
    }

    /// The first table, if any.
    pub fn primary_table(&self) -> Option<&str> {
        self.tables.first().map(|t| t.name.as_str())
    }

    /// Names of the columns the select list produces when they are explicit
    /// (`None` when the list contains `*`).
    pub fn explicit_columns(&self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for item in &self.items {
            match item {
                Item::Star(_) => return None,
                Item::Column { output, .. }
                | Item::Literal { output, .. }
                | Item::Expr { output } => out.push(output.clone()),
            }
        }
        Some(out)
    }

    /// Evaluate against `sources`: for each table of the `FROM` clause (same order), its rows.
    /// Rows are combined as a cross product, filtered by `WHERE`, projected and limited.
    pub fn evaluate(&self, sources: &[Vec<Row>]) -> Vec<Row> {
        let mut combos: Vec<Vec<&Row>> = vec![Vec::new()];
        for rows in sources {
            let mut next = Vec::new();
            for combo in &combos {
                for r in rows {
                    let mut c = combo.clone();
                    c.push(r);
                    next.push(c);
                }
            }
            combos = next;
        }
        let mut out = Vec::new();
        for combo in combos {
            let ctx = EvalCtx {
                tables: &self.tables,
                rows: &combo,
            };
            if !self.filter.is_empty() && !eval_condition(&self.filter, &ctx) {
                continue;
            }
            out.push(self.project(&ctx));
            if self.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        out
    }

    fn project(&self, ctx: &EvalCtx<'_>) -> Row {
        let mut row = Row::new();
        for item in &self.items {
            match item {
                Item::Star(None) => {
                    for r in ctx.rows {
                        row.extend(r.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                Item::Star(Some(q)) => {
                    if let Some(r) = ctx.table_row(q) {
                        row.extend(r.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                Item::Column {
                    qualifier,
                    name,
                    output,
                } => {
                    let v = ctx.lookup(qualifier.as_deref(), name).unwrap_or_default();
                    row.insert(output.clone(), v);
                }
                Item::Literal { value, output } => {
                    row.insert(output.clone(), value.clone());
                }
                Item::Expr { output } => {
                    row.insert(output.clone(), String::new());
                }
            }
        }
        row
    }
}

fn split_top<'a>(toks: &'a [Token], sep: &str) -> Vec<&'a [Token]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if is_punct(t, "(") {
            depth += 1;
        } else if is_punct(t, ")") {
            depth -= 1;
        } else if depth == 0 && (is_punct(t, sep) || is_kw(t, sep)) {
            parts.push(&toks[start..i]);
            start = i + 1;
        }
    }
    parts.push(&toks[start..]);
    parts
}

fn parse_item(sql: &str, toks: &[Token]) -> Item {
    // Alias: `expr AS name` or `expr name`.
    let n = toks.len();
    let word_at = |i: usize| match &toks[i].tok {
        Tok::Word(w) => Some(w.clone()),
        _ => None,
    };
    let (expr, alias) = if n >= 3 && is_kw(&toks[n - 2], "as") && word_at(n - 1).is_some() {
        (&toks[..n - 2], word_at(n - 1))
    } else if n >= 2
        && word_at(n - 1).is_some()
        && !is_kw(&toks[n - 1], "end")
        && (matches!(toks[n - 2].tok, Tok::Word(_) | Tok::Num(_) | Tok::Str(_))
            || is_punct(&toks[n - 2], ")"))
    {
        (&toks[..n - 1], word_at(n - 1))
    } else {
        (toks, None)
    };
    let raw = match (expr.first(), expr.last()) {
        (Some(f), Some(l)) => sql[f.start..l.end].to_string(),
        _ => String::new(),
    };
    match expr {
        [
            Token {
                tok: Tok::Punct(p), ..
            },
        ] if p == "*" => Item::Star(None),
        [
            Token {
                tok: Tok::Word(w), ..
            },
            Token {
                tok: Tok::Punct(p), ..
            },
        ] if p == "*" && w.ends_with('.') => {
            Item::Star(Some(w.trim_end_matches('.').to_ascii_lowercase()))
        }
        [
            Token {
                tok: Tok::Word(w), ..
            },
        ] => {
            let (qualifier, name) = match w.rsplit_once('.') {
                Some((q, n)) => (Some(q.to_ascii_lowercase()), n.to_string()),
                None => (None, w.clone()),
            };
            let output = alias.unwrap_or_else(|| name.clone());
            Item::Column {
                qualifier,
                name,
                output,
            }
        }
        [
            Token {
                tok: Tok::Num(n), ..
            },
        ] => Item::Literal {
            value: n.clone(),
            output: alias.unwrap_or(raw),
        },
        [
            Token {
                tok: Tok::Str(s), ..
            },
        ] => Item::Literal {
            value: s.clone(),
            output: alias.unwrap_or(raw),
        },
        _ => Item::Expr {
            output: alias.unwrap_or(raw),
        },
    }
}

fn parse_tables(toks: &[Token]) -> Vec<TableRef> {
    let mut out = Vec::new();
    let mut i = 0;
    let join_words = [
        "join", "left", "right", "inner", "outer", "cross", "natural", "full",
    ];
    while i < toks.len() {
        let t = &toks[i];
        if is_punct(t, ",") || join_words.iter().any(|k| is_kw(t, k)) {
            i += 1;
            continue;
        }
        if is_kw(t, "on") || is_kw(t, "using") {
            // Skip the join condition up to the next join word or comma at depth 0.
            i += 1;
            let mut depth = 0i32;
            while i < toks.len() {
                let t = &toks[i];
                if is_punct(t, "(") {
                    depth += 1;
                } else if is_punct(t, ")") {
                    depth -= 1;
                } else if depth == 0 && (is_punct(t, ",") || join_words.iter().any(|k| is_kw(t, k)))
                {
                    break;
                }
                i += 1;
            }
            continue;
        }
        if let Tok::Word(name) = &t.tok {
            let name = name.to_ascii_lowercase();
            i += 1;
            // Table-valued function arguments: skip the parenthesised list.
            if toks.get(i).is_some_and(|t| is_punct(t, "(")) {
                let mut depth = 0i32;
                while i < toks.len() {
                    if is_punct(&toks[i], "(") {
                        depth += 1;
                    } else if is_punct(&toks[i], ")") {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    i += 1;
                }
            }
            let mut alias = None;
            if toks.get(i).is_some_and(|t| is_kw(t, "as")) {
                i += 1;
            }
            if let Some(Token {
                tok: Tok::Word(a), ..
            }) = toks.get(i)
            {
                let reserved = [
                    "on", "using", "join", "left", "right", "inner", "outer", "cross", "natural",
                    "full",
                ];
                if !reserved.iter().any(|k| a.eq_ignore_ascii_case(k)) {
                    alias = Some(a.to_ascii_lowercase());
                    i += 1;
                }
            }
            out.push(TableRef { name, alias });
        } else {
            i += 1;
        }
    }
    out
}

struct EvalCtx<'a> {
    tables: &'a [TableRef],
    rows: &'a [&'a Row],
}

impl EvalCtx<'_> {
    fn table_row(&self, qualifier: &str) -> Option<&Row> {
        let q = qualifier.to_ascii_lowercase();
        self.tables
            .iter()
            .position(|t| t.alias.as_deref() == Some(q.as_str()) || t.name == q)
            .and_then(|i| self.rows.get(i).copied())
    }

    fn lookup(&self, qualifier: Option<&str>, name: &str) -> Option<String> {
        let find = |r: &Row| {
            r.get(name)
                .or_else(|| {
                    r.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                })
                .cloned()
        };
        match qualifier {
            Some(q) => self.table_row(q).and_then(find),
            None => self.rows.iter().find_map(|r| find(r)),
        }
    }
}

/// An operand of a comparison.
enum Operand {
    Value(String),
    Unknown,
}

fn operand(t: &Token, ctx: &EvalCtx<'_>) -> Operand {
    match &t.tok {
        Tok::Str(s) | Tok::Num(s) => Operand::Value(s.clone()),
        Tok::Word(w) => {
            let (q, n) = match w.rsplit_once('.') {
                Some((q, n)) => (Some(q), n),
                None => (None, w.as_str()),
            };
            match ctx.lookup(q, n) {
                Some(v) => Operand::Value(v),
                None if w.eq_ignore_ascii_case("true") => Operand::Value("1".into()),
                None if w.eq_ignore_ascii_case("false") => Operand::Value("0".into()),
                // SQLite treats an unknown double-quoted name as a string literal.
                None => Operand::Unknown,
            }
        }
        Tok::Punct(_) => Operand::Unknown,
    }
}

fn eval_condition(toks: &[Token], ctx: &EvalCtx<'_>) -> bool {
    let ors = split_top(toks, "or");
    if ors.len() > 1 {
        return ors.iter().any(|part| eval_condition(part, ctx));
    }
    let ands = split_top(toks, "and");
    if ands.len() > 1 {
        return ands.iter().all(|part| eval_condition(part, ctx));
    }
    eval_simple(toks, ctx).unwrap_or(true)
}

fn eval_simple(toks: &[Token], ctx: &EvalCtx<'_>) -> Option<bool> {
    if let (Some(first), Some(last)) = (toks.first(), toks.last())
        && is_punct(first, "(")
        && is_punct(last, ")")
        && toks.len() >= 2
    {
        return Some(eval_condition(&toks[1..toks.len() - 1], ctx));
    }
    if toks.first().is_some_and(|t| is_kw(t, "not")) {
        return eval_simple(&toks[1..], ctx).map(|b| !b);
    }
    match toks {
        [l, op, r] => {
            let op = match &op.tok {
                Tok::Punct(p) => p.clone(),
                Tok::Word(w) => w.to_ascii_lowercase(),
                _ => return None,
            };
            let (Operand::Value(a), Operand::Value(b)) = (operand(l, ctx), operand(r, ctx)) else {
                return None;
            };
            compare(&a, &op, &b)
        }
        [l, not_kw, like, r] if is_kw(not_kw, "not") && is_kw(like, "like") => {
            let (Operand::Value(a), Operand::Value(b)) = (operand(l, ctx), operand(r, ctx)) else {
                return None;
            };
            Some(!like_match(&a, &b))
        }
        [l, rest @ ..]
            if rest
                .first()
                .is_some_and(|t| is_kw(t, "in") || is_kw(t, "not")) =>
        {
            let negate = is_kw(&rest[0], "not");
            let rest = if negate { &rest[1..] } else { rest };
            if !rest.first().is_some_and(|t| is_kw(t, "in")) {
                return None;
            }
            let Operand::Value(a) = operand(l, ctx) else {
                return None;
            };
            let list = &rest[1..];
            if !(list.first().is_some_and(|t| is_punct(t, "("))
                && list.last().is_some_and(|t| is_punct(t, ")")))
            {
                return None;
            }
            let found = list[1..list.len() - 1].iter().any(|t| match &t.tok {
                Tok::Str(s) | Tok::Num(s) | Tok::Word(s) => s == &a,
                Tok::Punct(_) => false,
            });
            Some(found != negate)
        }
        _ => None,
    }
}

fn compare(a: &str, op: &str, b: &str) -> Option<bool> {
    let num = || Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?));
    Some(match op {
        "=" | "==" | "is" => a == b || num().is_some_and(|(x, y)| x == y),
        "!=" | "<>" => !(a == b || num().is_some_and(|(x, y)| x == y)),
        "like" => like_match(a, b),
        "<" => num().map(|(x, y)| x < y).unwrap_or(a < b),
        ">" => num().map(|(x, y)| x > y).unwrap_or(a > b),
        "<=" => num().map(|(x, y)| x <= y).unwrap_or(a <= b),
        ">=" => num().map(|(x, y)| x >= y).unwrap_or(a >= b),
        _ => return None,
    })
}

/// SQLite `LIKE`: case-insensitive for ASCII, `%` any run, `_` one character.
fn like_match(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn os() -> Vec<Row> {
        vec![row(&[
            ("platform", "ubuntu"),
            ("platform_like", "debian"),
            ("version", "22.04.4 LTS"),
            ("major", "22"),
        ])]
    }

    #[test]
    fn select_literal_without_from() {
        let q = SelectQuery::parse("SELECT 1").unwrap();
        assert!(q.tables.is_empty());
        assert_eq!(q.evaluate(&[]), vec![row(&[("1", "1")])]);
        let q = SelectQuery::parse("select 1 as one;").unwrap();
        assert_eq!(q.evaluate(&[]), vec![row(&[("one", "1")])]);
    }

    #[test]
    fn where_equality_and_like() {
        let q = SelectQuery::parse("SELECT 1 FROM os_version WHERE platform = 'ubuntu';").unwrap();
        assert_eq!(q.primary_table(), Some("os_version"));
        assert_eq!(q.evaluate(&[os()]).len(), 1);
        let q = SelectQuery::parse("select 1 from os_version where platform = 'windows'").unwrap();
        assert!(q.evaluate(&[os()]).is_empty());
        let q = SelectQuery::parse(
            "SELECT 1 FROM os_version WHERE platform LIKE '%ubu%' OR platform_like = 'rhel'",
        )
        .unwrap();
        assert_eq!(q.evaluate(&[os()]).len(), 1);
        let q = SelectQuery::parse("SELECT 1 FROM os_version WHERE (platform = 'x' OR major >= 20) AND platform_like IN ('debian')").unwrap();
        assert_eq!(q.evaluate(&[os()]).len(), 1);
        let q = SelectQuery::parse(
            "SELECT 1 FROM os_version WHERE platform NOT IN ('ubuntu', 'debian')",
        )
        .unwrap();
        assert!(q.evaluate(&[os()]).is_empty());
    }

    #[test]
    fn projection_aliases_and_qualifiers() {
        let q = SelectQuery::parse("SELECT uuid AS host_uuid FROM system_info;").unwrap();
        let si = vec![row(&[("uuid", "ABC"), ("hostname", "h")])];
        assert_eq!(
            q.evaluate(std::slice::from_ref(&si)),
            vec![row(&[("host_uuid", "ABC")])]
        );
        let q = SelectQuery::parse(
            "SELECT os.version, k.version AS kernel_version FROM os_version os, kernel_info k",
        )
        .unwrap();
        let k = vec![row(&[("version", "5.15.0")])];
        assert_eq!(
            q.evaluate(&[os(), k]),
            vec![row(&[
                ("version", "22.04.4 LTS"),
                ("kernel_version", "5.15.0")
            ])]
        );
        assert_eq!(
            q.explicit_columns(),
            Some(vec!["version".to_string(), "kernel_version".to_string()])
        );
        let q = SelectQuery::parse("select * from system_info limit 1").unwrap();
        assert_eq!(q.evaluate(&[si]).len(), 1);
        assert_eq!(q.limit, Some(1));
    }

    #[test]
    fn joins_and_in_lists() {
        let q = SelectQuery::parse(
            "select ia.address, id.mac from interface_addresses ia join interface_details id on id.interface = ia.interface join routes r on r.interface = ia.interface where r.destination = '0.0.0.0' limit 1",
        )
        .unwrap();
        assert_eq!(
            q.table_names(),
            vec!["interface_addresses", "interface_details", "routes"]
        );
        let q = SelectQuery::parse(r#"select name, value from osquery_flags where name in ("distributed_interval", "logger_tls_period")"#).unwrap();
        let flags = vec![
            row(&[("name", "distributed_interval"), ("value", "10")]),
            row(&[("name", "config_refresh"), ("value", "0")]),
            row(&[("name", "logger_tls_period"), ("value", "4")]),
        ];
        assert_eq!(q.evaluate(&[flags]).len(), 2);
    }

    #[test]
    fn like_patterns() {
        assert!(like_match("Ubuntu", "ubu%"));
        assert!(like_match("abc", "a_c"));
        assert!(like_match("abc", "%"));
        assert!(!like_match("abc", "a_"));
        assert!(like_match("/tmp/files/x", "/tmp/files/%"));
    }

    #[test]
    fn not_a_select() {
        assert!(SelectQuery::parse("PRAGMA table_info(x)").is_none());
    }
}
