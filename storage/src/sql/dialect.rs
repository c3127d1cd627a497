//! What differs between SQLite's SQL and MySQL's, in one place.
//!
//! A statement is written once, as SQL, with the few words that differ between the dialects
//! named in capitals; [`sql!`] turns it into one `&'static str` per dialect at compile time
//! and picks the one of the database at hand:
//!
//! ```ignore
//! let sql = sql!(db.dialect(), "DELETE FROM enroll_secrets WHERE team_id ", IS, " ?");
//! ```
//!
//! | word | SQLite | MySQL / MariaDB |
//! |---|---|---|
//! | `IS` (null-safe `=`) | `IS` | `<=>` |
//! | `GREATEST` (of two values) | `MAX` | `GREATEST` |
//! | `ID_SET` (the ids of a JSON array bound as one `?`, as a subquery of column `id`) | `json_each` | `JSON_TABLE` |
//! | `FOR_UPDATE` (lock what a write transaction read) | nothing (the transaction holds the file's write lock) | `FOR UPDATE` |
//! | `FROM_DUAL` (`SELECT … WHERE` without a table) | nothing | `FROM DUAL` |
//! | `LIKE_END` (after `col LIKE ?`: ASCII case ignored, `\` escapes) | `ESCAPE '\'` | `COLLATE utf8mb4_general_ci ESCAPE '\\'` |
//! | `UPSERT(key)` … `EXCLUDED(col)` | `ON CONFLICT (key) DO UPDATE SET` … `excluded.col` | `ON DUPLICATE KEY UPDATE` … `VALUES(col)` |
//! | `INSERT_IGNORE` (a row whose key exists is skipped, and counts as no row affected) | `INSERT OR IGNORE` | `INSERT IGNORE` |
//!
//! Ids are bound as signed 64-bit integers on both (SQLite's integers are signed; MySQL
//! converts them for its `BIGINT UNSIGNED` columns), and a new row's id comes from the result
//! of the `INSERT` ([`Done::last_insert_id`](super::Done)) on both, so neither `RETURNING`
//! (MySQL 8 has none) nor `LAST_INSERT_ID()` appears in a statement.

/// The SQL dialect of a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Mysql,
}

/// Characters a MySQL `VARCHAR(255)` column holds; longer host-supplied text is cut to fit.
const MYSQL_TEXT_COLUMN: usize = 255;

impl Dialect {
    /// [`sql!`]'s `ID_SET`, for a statement assembled at run time.
    pub(crate) fn id_set(self) -> &'static str {
        sql!(self, ID_SET)
    }

    /// [`sql!`]'s `LIKE_END`, for a statement assembled at run time.
    pub(crate) fn like_end(self) -> &'static str {
        sql!(self, LIKE_END)
    }

    /// `text` as a short text column stores it: cut to [`MYSQL_TEXT_COLUMN`] characters (MySQL's
    /// `VARCHAR(255)` counts characters), on SQLite too, so both stores keep the same value.
    /// The engine cuts what hosts send already; this holds for every other writer.
    pub(crate) fn fit(self, text: &str) -> &str {
        match text.char_indices().nth(MYSQL_TEXT_COLUMN) {
            Some((end, _)) => &text[..end],
            None => text,
        }
    }
}

/// One statement, written once, as the `&'static str` of `$dialect`; see the module comment
/// for the capitalised words. The parts are string literals, those words, and macros that
/// expand to literals, separated by commas; each dialect's text is put together by `concat!`.
macro_rules! sql {
    ($dialect:expr, $($parts:tt)+) => {
        $crate::sql::sql!(@munch $dialect; []; []; $($parts)+)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*];) => {
        match $d {
            $crate::sql::Dialect::Sqlite => concat!($($s),*),
            $crate::sql::Dialect::Mysql => concat!($($m),*),
        }
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; , $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d; [$($s),*]; [$($m),*]; $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; IS $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d; [$($s,)* "IS"]; [$($m,)* "<=>"]; $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; GREATEST $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d; [$($s,)* "MAX"]; [$($m,)* "GREATEST"]; $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; ID_SET $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d;
            [$($s,)* "(SELECT value AS id FROM json_each(?))"];
            [$($m,)* "(SELECT id FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) AS ids)"];
            $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; INSERT_IGNORE $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d; [$($s,)* "INSERT OR IGNORE"]; [$($m,)* "INSERT IGNORE"]; $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; FOR_UPDATE $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d; [$($s,)* ""]; [$($m,)* " FOR UPDATE"]; $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; FROM_DUAL $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d; [$($s,)* ""]; [$($m,)* " FROM DUAL"]; $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; LIKE_END $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d;
            [$($s,)* " ESCAPE '\\'"];
            [$($m,)* " COLLATE utf8mb4_general_ci ESCAPE '\\\\'"];
            $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; UPSERT($key:literal) $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d;
            [$($s,)* "ON CONFLICT (", $key, ") DO UPDATE SET"];
            [$($m,)* "ON DUPLICATE KEY UPDATE"];
            $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; EXCLUDED($column:ident) $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d;
            [$($s,)* "excluded.", stringify!($column)];
            [$($m,)* "VALUES(", stringify!($column), ")"];
            $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; $mac:ident ! ( $($args:tt)* ) $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d; [$($s,)* $mac!($($args)*)]; [$($m,)* $mac!($($args)*)]; $($rest)*)
    };
    (@munch $d:expr; [$($s:expr),*]; [$($m:expr),*]; $text:literal $($rest:tt)*) => {
        $crate::sql::sql!(@munch $d; [$($s,)* $text]; [$($m,)* $text]; $($rest)*)
    };
}

pub(crate) use sql;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_reads_as_each_dialects_sql() {
        let upsert = |d| {
            sql!(
                d,
                "INSERT INTO app_config (name, value) VALUES (?, ?) ",
                UPSERT("name"),
                " value = ",
                EXCLUDED(value)
            )
        };
        assert_eq!(
            upsert(Dialect::Sqlite),
            "INSERT INTO app_config (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        );
        assert_eq!(
            upsert(Dialect::Mysql),
            "INSERT INTO app_config (name, value) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE value = VALUES(value)"
        );
        let secrets = |d| sql!(d, "DELETE FROM enroll_secrets WHERE team_id ", IS, " ?");
        assert_eq!(
            secrets(Dialect::Sqlite),
            "DELETE FROM enroll_secrets WHERE team_id IS ?"
        );
        assert_eq!(
            secrets(Dialect::Mysql),
            "DELETE FROM enroll_secrets WHERE team_id <=> ?"
        );
    }

    #[test]
    fn both_stores_cut_long_text_to_a_varchar_255() {
        let long = "é".repeat(300);
        assert_eq!(Dialect::Mysql.fit(&long).chars().count(), 255);
        assert_eq!(Dialect::Sqlite.fit(&long).chars().count(), 255);
        assert_eq!(Dialect::Mysql.fit("short"), "short");
    }
}
