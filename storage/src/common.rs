//! Error mapping and parameter helpers every store shares.

use flotilla_engine::store::StoreError;

/// A failed read: the database answered with data we cannot decode, or did not answer.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Data(error.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A JSON array of ids, bound as one parameter and read as the dialect's `ID_SET`.
pub(crate) fn id_array(ids: impl IntoIterator<Item = u64>) -> String {
    let ids: Vec<u64> = ids.into_iter().collect();
    serde_json::to_string(&ids).expect("a list of integers serialises")
}

/// `%text%` for `LIKE … ESCAPE '\'`, with the pattern characters in `text` escaped.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A duplicate key: the row exists already (or another node inserted it first).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}
