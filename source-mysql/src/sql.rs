//! Running statements with their errors classified (see [`crate::error::classify`]).

use connector_core::Result;
use mysql_async::prelude::Queryable as _;
use mysql_async::Conn;

use crate::error::classify;

/// Run a statement, classifying its error.
pub async fn exec(conn: &mut Conn, sql: &str) -> Result<()> {
    conn.query_drop(sql)
        .await
        .map_err(|e| classify(e, &format!("running `{sql}`")))
}

/// Query rows, classifying the error.
pub async fn query<T: mysql_async::prelude::FromRow + Send + 'static>(
    conn: &mut Conn,
    sql: &str,
) -> Result<Vec<T>> {
    conn.query(sql)
        .await
        .map_err(|e| classify(e, &format!("running `{sql}`")))
}
