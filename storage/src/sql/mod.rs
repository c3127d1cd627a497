//! The one place where SQLite and MySQL differ: every store in this crate is written once
//! against [`Db`], and this module is the thin layer under it.
//!
//! - [`Db`] — a connection pool of either backend and its [`Dialect`]; opened by
//!   [`sqlite::open`] or [`mysql::connect`], each with its own migrations.
//! - [`Query`] — a statement and its parameters, bound as the backend needs them (ids as
//!   signed 64-bit integers on both), built up with [`Query::push`] / [`Query::push_bind`]
//!   where a statement is assembled from parts. It runs on the pool ([`&Db`](Db)) or inside a
//!   transaction ([`&mut Tx`](Tx)).
//! - [`Row`] — a row of either backend, read through [`ModelRow`]: how an id, a number, a
//!   flag or a text comes out of each backend's columns is decided there, once.
//! - [`Db::begin`] / [`Db::begin_hot`] — write transactions with SQLite's discipline
//!   (`BEGIN IMMEDIATE`, and the in-process gate for the hot writers; see [`sqlite`]).
//! - [`sql!`] and [`Dialect`] — the few words of SQL that differ ([`dialect`]).

mod dialect;
pub(crate) mod mysql;
pub use mysql::MysqlOptions;
pub(crate) mod sqlite;

use std::borrow::Cow;
use std::sync::Arc;

use flotilla_engine::ids::{CampaignId, HostId, TeamId};
use sqlx::mysql::{MySql, MySqlPool, MySqlRow};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub(crate) use dialect::{Dialect, sql};

/// Connections of a store's pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// A pool of either backend. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Db {
    pool: Pool,
    /// SQLite only: the hot writers (enrollment, flushes) queue here before SQLite's own
    /// lock, whose busy handler waits by sleeping (see [`sqlite`]).
    write_gate: Arc<Mutex<()>>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Mysql(MySqlPool),
}

impl Db {
    fn new(pool: Pool) -> Db {
        Db {
            pool,
            write_gate: Arc::new(Mutex::new(())),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Mysql(_) => Dialect::Mysql,
        }
    }

    /// Connections open, idle and at most, for `/metrics`.
    pub(crate) fn pool_usage(&self) -> PoolUsage {
        let (open, idle, max) = match &self.pool {
            Pool::Sqlite(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
            Pool::Mysql(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
        };
        PoolUsage {
            open,
            idle: idle as u32,
            max,
        }
    }

    /// A write transaction. On SQLite it is `BEGIN IMMEDIATE`: a deferred transaction that
    /// reads first and writes later cannot wait for the write lock (SQLite answers "database
    /// is locked" at once), while an immediate one waits its turn under the busy timeout.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let inner = match &self.pool {
            Pool::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Mysql(pool) => TxInner::Mysql(pool.begin().await?),
        };
        Ok(Tx { inner, _gate: None })
    }

    /// A write transaction of a hot writer: on SQLite it first waits its turn at the
    /// in-process gate, then begins as [`Db::begin`] does; the gate opens when it ends.
    pub(crate) async fn begin_hot(&self) -> Result<Tx, sqlx::Error> {
        let gate = self.hot_gate().await;
        let mut tx = self.begin().await?;
        tx._gate = gate;
        Ok(tx)
    }

    /// The in-process gate of SQLite's hot writers, for a single statement written outside a
    /// transaction; `None` on MySQL, where nothing queues in-process.
    pub(crate) async fn hot_gate(&self) -> Option<OwnedMutexGuard<()>> {
        match self.pool {
            Pool::Sqlite(_) => Some(self.write_gate.clone().lock_owned().await),
            Pool::Mysql(_) => None,
        }
    }

    pub(crate) async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Mysql(pool) => pool.close().await,
        }
    }
}

/// A write transaction on either backend; rolled back if dropped before [`Tx::commit`].
pub(crate) struct Tx {
    inner: TxInner,
    /// Held until the transaction ends (declared after `inner`, so dropped after it).
    _gate: Option<OwnedMutexGuard<()>>,
}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Mysql(Transaction<'static, MySql>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Mysql(tx) => tx.commit().await,
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.inner {
            TxInner::Sqlite(_) => Dialect::Sqlite,
            TxInner::Mysql(_) => Dialect::Mysql,
        }
    }
}

/// Where a [`Query`] runs: the pool, or an open transaction.
pub(crate) trait On: Send {
    fn target(&mut self) -> Target<'_>;
}

pub(crate) enum Target<'c> {
    SqlitePool(&'c SqlitePool),
    MysqlPool(&'c MySqlPool),
    SqliteTx(&'c mut sqlx::SqliteConnection),
    MysqlTx(&'c mut sqlx::MySqlConnection),
}

impl On for &Db {
    fn target(&mut self) -> Target<'_> {
        match &self.pool {
            Pool::Sqlite(pool) => Target::SqlitePool(pool),
            Pool::Mysql(pool) => Target::MysqlPool(pool),
        }
    }
}

impl On for &mut Tx {
    fn target(&mut self) -> Target<'_> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Target::SqliteTx(tx),
            TxInner::Mysql(tx) => Target::MysqlTx(tx),
        }
    }
}

/// The pool or an open transaction, for a helper that runs several statements on whichever
/// its caller has: `load(db.into(), id)` or `load((&mut tx).into(), id)`, and inside,
/// `query(…).fetch_one(on.on())` for each statement.
pub(crate) enum Exec<'c> {
    Pool(&'c Db),
    Tx(&'c mut Tx),
}

impl Exec<'_> {
    /// This handle again, for one more statement.
    pub(crate) fn on(&mut self) -> Exec<'_> {
        match self {
            Exec::Pool(db) => Exec::Pool(db),
            Exec::Tx(tx) => Exec::Tx(tx),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Exec::Pool(db) => db.dialect(),
            Exec::Tx(tx) => tx.dialect(),
        }
    }
}

impl<'c> From<&'c Db> for Exec<'c> {
    fn from(db: &'c Db) -> Self {
        Exec::Pool(db)
    }
}

impl<'c> From<&'c mut Tx> for Exec<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        Exec::Tx(tx)
    }
}

impl On for Exec<'_> {
    fn target(&mut self) -> Target<'_> {
        match self {
            Exec::Pool(db) => match &db.pool {
                Pool::Sqlite(pool) => Target::SqlitePool(pool),
                Pool::Mysql(pool) => Target::MysqlPool(pool),
            },
            Exec::Tx(tx) => match &mut tx.inner {
                TxInner::Sqlite(tx) => Target::SqliteTx(tx),
                TxInner::Mysql(tx) => Target::MysqlTx(tx),
            },
        }
    }
}

/// What a statement that returns no rows did.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Done {
    pub rows_affected: u64,
    /// The id of the row an `INSERT` created (SQLite's rowid, MySQL's `LAST_INSERT_ID()`).
    pub last_insert_id: u64,
}

/// A parameter, as both backends bind it.
#[derive(Clone, Debug)]
pub(crate) enum Arg<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Real(f64),
    Text(Cow<'a, str>),
    Blob(&'a [u8]),
}

/// A value a statement can take as a parameter.
pub(crate) trait IntoArg<'a> {
    fn into_arg(self) -> Arg<'a>;
}

impl<'a> IntoArg<'a> for Arg<'a> {
    fn into_arg(self) -> Arg<'a> {
        self
    }
}

impl<'a, T: IntoArg<'a>> IntoArg<'a> for Option<T> {
    fn into_arg(self) -> Arg<'a> {
        self.map_or(Arg::Null, IntoArg::into_arg)
    }
}

impl<'a> IntoArg<'a> for &'a str {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Cow::Borrowed(self))
    }
}

impl<'a> IntoArg<'a> for &'a String {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Cow::Borrowed(self))
    }
}

impl<'a> IntoArg<'a> for String {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Cow::Owned(self))
    }
}

impl<'a> IntoArg<'a> for &'a [u8] {
    fn into_arg(self) -> Arg<'a> {
        Arg::Blob(self)
    }
}

impl<'a> IntoArg<'a> for f64 {
    fn into_arg(self) -> Arg<'a> {
        Arg::Real(self)
    }
}

impl<'a> IntoArg<'a> for bool {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bool(self)
    }
}

macro_rules! int_args {
    ($($t:ty),*) => {$(
        impl<'a> IntoArg<'a> for $t {
            fn into_arg(self) -> Arg<'a> {
                Arg::Int(self as i64)
            }
        }
    )*};
}
int_args!(i64, i32, u32, u64, usize);

/// `IntoArg` for id newtypes (`struct XId(pub u64)`), bound as signed 64-bit integers.
macro_rules! id_args {
    ($($t:ty),*) => {$(
        impl<'a> $crate::sql::IntoArg<'a> for $t {
            fn into_arg(self) -> $crate::sql::Arg<'a> {
                $crate::sql::Arg::Int(self.0 as i64)
            }
        }
    )*};
}
pub(crate) use id_args;
id_args!(HostId, TeamId, CampaignId);

/// A statement and its parameters.
pub(crate) struct Query<'a> {
    sql: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

/// A statement to run with [`Query::bind`]'s parameters, one per `?` in order.
pub(crate) fn query<'a>(sql: impl Into<Cow<'static, str>>) -> Query<'a> {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

impl<'a> Query<'a> {
    pub(crate) fn bind(mut self, value: impl IntoArg<'a>) -> Self {
        self.args.push(value.into_arg());
        self
    }

    /// Appends SQL text (for a statement assembled from parts).
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Appends a `?` and binds `value` to it.
    pub(crate) fn push_bind(&mut self, value: impl IntoArg<'a>) -> &mut Self {
        self.sql.to_mut().push('?');
        self.args.push(value.into_arg());
        self
    }

    /// Appends `(?, ?, …)` with one parameter per value (an empty list is `(NULL)`, which
    /// matches nothing).
    pub(crate) fn push_list<T: IntoArg<'a>>(
        &mut self,
        values: impl IntoIterator<Item = T>,
    ) -> &mut Self {
        self.push("(");
        let mut first = true;
        for value in values {
            if !first {
                self.push(", ");
            }
            first = false;
            self.push_bind(value);
        }
        if first {
            self.push("NULL");
        }
        self.push(")")
    }

    /// Appends the dialect's `ID_SET` (a subquery of column `id`) with `ids` bound to it as
    /// one JSON array: an id set of any size as one parameter.
    pub(crate) fn push_id_set(
        &mut self,
        dialect: Dialect,
        ids: impl IntoIterator<Item = u64>,
    ) -> &mut Self {
        self.push(dialect.id_set());
        self.args
            .push(Arg::Text(Cow::Owned(crate::common::id_array(ids))));
        self
    }

    pub(crate) async fn execute(self, mut on: impl On) -> Result<Done, sqlx::Error> {
        let Query { sql, args } = self;
        let sql = AssertSqlSafe(sql);
        Ok(match on.target() {
            Target::SqlitePool(pool) => sqlite_done(bind_sqlite(sql, args).execute(pool).await?),
            Target::SqliteTx(conn) => sqlite_done(bind_sqlite(sql, args).execute(conn).await?),
            Target::MysqlPool(pool) => mysql_done(bind_mysql(sql, args).execute(pool).await?),
            Target::MysqlTx(conn) => mysql_done(bind_mysql(sql, args).execute(conn).await?),
        })
    }

    pub(crate) async fn fetch_all(self, mut on: impl On) -> Result<Vec<Row>, sqlx::Error> {
        let Query { sql, args } = self;
        let sql = AssertSqlSafe(sql);
        Ok(match on.target() {
            Target::SqlitePool(pool) => sqlite_rows(bind_sqlite(sql, args).fetch_all(pool).await?),
            Target::SqliteTx(conn) => sqlite_rows(bind_sqlite(sql, args).fetch_all(conn).await?),
            Target::MysqlPool(pool) => mysql_rows(bind_mysql(sql, args).fetch_all(pool).await?),
            Target::MysqlTx(conn) => mysql_rows(bind_mysql(sql, args).fetch_all(conn).await?),
        })
    }

    pub(crate) async fn fetch_optional(self, mut on: impl On) -> Result<Option<Row>, sqlx::Error> {
        let Query { sql, args } = self;
        let sql = AssertSqlSafe(sql);
        Ok(match on.target() {
            Target::SqlitePool(pool) => bind_sqlite(sql, args)
                .fetch_optional(pool)
                .await?
                .map(Row::Sqlite),
            Target::SqliteTx(conn) => bind_sqlite(sql, args)
                .fetch_optional(conn)
                .await?
                .map(Row::Sqlite),
            Target::MysqlPool(pool) => bind_mysql(sql, args)
                .fetch_optional(pool)
                .await?
                .map(Row::Mysql),
            Target::MysqlTx(conn) => bind_mysql(sql, args)
                .fetch_optional(conn)
                .await?
                .map(Row::Mysql),
        })
    }

    pub(crate) async fn fetch_one(self, on: impl On) -> Result<Row, sqlx::Error> {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;
type MysqlQuery<'q> = sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments>;

fn bind_sqlite<'q>(sql: AssertSqlSafe<Cow<'static, str>>, args: Vec<Arg<'q>>) -> SqliteQuery<'q> {
    args.into_iter()
        .fold(sqlx::query(sql), |query, arg| match arg {
            Arg::Null => query.bind(None::<i64>),
            Arg::Int(value) => query.bind(value),
            Arg::Bool(value) => query.bind(value),
            Arg::Real(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
            Arg::Blob(value) => query.bind(value),
        })
}

fn bind_mysql<'q>(sql: AssertSqlSafe<Cow<'static, str>>, args: Vec<Arg<'q>>) -> MysqlQuery<'q> {
    args.into_iter()
        .fold(sqlx::query(sql), |query, arg| match arg {
            Arg::Null => query.bind(None::<i64>),
            Arg::Int(value) => query.bind(value),
            Arg::Bool(value) => query.bind(value),
            Arg::Real(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
            Arg::Blob(value) => query.bind(value),
        })
}

fn sqlite_done(result: sqlx::sqlite::SqliteQueryResult) -> Done {
    Done {
        rows_affected: result.rows_affected(),
        last_insert_id: result.last_insert_rowid() as u64,
    }
}

fn mysql_done(result: sqlx::mysql::MySqlQueryResult) -> Done {
    Done {
        rows_affected: result.rows_affected(),
        last_insert_id: result.last_insert_id(),
    }
}

fn sqlite_rows(rows: Vec<SqliteRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Sqlite).collect()
}

fn mysql_rows(rows: Vec<MySqlRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Mysql).collect()
}

/// How a backend's row hands over the few kinds of value the models hold.
pub(crate) trait ModelRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A signed number: times, counts, sizes.
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A primary or foreign key.
    fn id(&self, column: &str) -> Result<u64, sqlx::Error>;
    fn opt_id(&self, column: &str) -> Result<Option<u64>, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
    fn opt_flag(&self, column: &str) -> Result<Option<bool>, sqlx::Error>;
    /// A fraction or score (`REAL` / `DOUBLE`).
    fn opt_real(&self, column: &str) -> Result<Option<f64>, sqlx::Error>;
    /// Bytes (`BLOB` / `LONGBLOB`).
    fn blob(&self, column: &str) -> Result<Vec<u8>, sqlx::Error>;
}

/// A row of either backend; its columns are read through [`ModelRow`].
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Mysql(MySqlRow),
}

/// How each backend's columns hand over the few kinds of value the models hold: SQLite keeps
/// every integer as a signed 64-bit value; MySQL keeps ids as `BIGINT UNSIGNED`, numbers as
/// `BIGINT` and flags as `TINYINT(1)`.
impl ModelRow for Row {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        match self {
            Row::Sqlite(row) => sqlx::Row::try_get(row, column),
            Row::Mysql(row) => sqlx::Row::try_get(row, column),
        }
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => sqlx::Row::try_get(row, column),
            Row::Mysql(row) => sqlx::Row::try_get(row, column),
        }
    }
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.opt_int(column)?.ok_or_else(|| null_column(column))
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => sqlx::Row::try_get(row, column),
            // A number may come from a signed column or expression, or an unsigned one.
            Row::Mysql(row) => sqlx::Row::try_get::<Option<i64>, _>(row, column).or_else(|_| {
                Ok(sqlx::Row::try_get::<Option<u64>, _>(row, column)?.map(|v| v as i64))
            }),
        }
    }
    fn id(&self, column: &str) -> Result<u64, sqlx::Error> {
        self.opt_id(column)?.ok_or_else(|| null_column(column))
    }
    fn opt_id(&self, column: &str) -> Result<Option<u64>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => {
                Ok(sqlx::Row::try_get::<Option<i64>, _>(row, column)?.map(|v| v as u64))
            }
            // Ids are `BIGINT UNSIGNED`; one computed by an expression may come back signed.
            Row::Mysql(row) => sqlx::Row::try_get::<Option<u64>, _>(row, column).or_else(|_| {
                Ok(sqlx::Row::try_get::<Option<i64>, _>(row, column)?.map(|v| v as u64))
            }),
        }
    }
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        self.opt_flag(column)?.ok_or_else(|| null_column(column))
    }
    fn opt_flag(&self, column: &str) -> Result<Option<bool>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => sqlx::Row::try_get(row, column),
            Row::Mysql(row) => sqlx::Row::try_get(row, column),
        }
    }
    fn opt_real(&self, column: &str) -> Result<Option<f64>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => sqlx::Row::try_get(row, column),
            Row::Mysql(row) => sqlx::Row::try_get(row, column),
        }
    }
    fn blob(&self, column: &str) -> Result<Vec<u8>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => sqlx::Row::try_get(row, column),
            Row::Mysql(row) => sqlx::Row::try_get(row, column),
        }
    }
}

fn null_column(column: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: "unexpected NULL".into(),
    }
}
