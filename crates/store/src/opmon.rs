//! Operational monitoring: one record per exchange seen by a gateway, with the fields
//! X-Road's operational monitoring keeps (the four timestamps, the parties, sizes, outcome
//! and fault). Records of several gateways may share one database; each query names the
//! gateway (`server_id`) whose records it reads.

use crate::StoreError;

/// One exchange as seen by one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// The gateway that recorded the exchange.
    pub server_id: String,
    /// `client` (this gateway sent the request) or `producer` (it served it).
    pub side: String,
    pub message_id: String,
    /// The client subsystem or member (as claimed, when the request was refused before
    /// its signature was checked).
    pub client: String,
    /// The service identifier (empty when the request named none).
    pub service: String,
    /// The client's gateway.
    pub client_server: Option<String>,
    /// The provider's gateway.
    pub service_server: Option<String>,
    pub user_id: String,
    pub issue: String,
    pub represented_party: String,
    /// `REST`, or the metaservice's name.
    pub service_type: String,
    pub method: String,
    pub path: String,
    /// Unix milliseconds: the request reached this gateway.
    pub request_in: i64,
    /// The request left for the next hop (the provider's gateway or the service).
    pub request_out: Option<i64>,
    /// The answer came back from the next hop.
    pub response_in: Option<i64>,
    /// The answer left this gateway.
    pub response_out: i64,
    pub request_size: Option<i64>,
    pub response_size: Option<i64>,
    /// The HTTP status returned.
    pub status: Option<i64>,
    /// No platform error (the service's own error statuses still count as succeeded).
    pub succeeded: bool,
    pub fault_code: Option<String>,
    pub fault_string: Option<String>,
}

/// A stored record and its id (increasing with insertion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOpRecord {
    pub id: i64,
    pub record: OpRecord,
}

/// Which records to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpQuery {
    /// The gateway whose records are read.
    pub server_id: String,
    /// `request_in >= from` (Unix milliseconds).
    pub from: Option<i64>,
    /// `request_in < to` (Unix milliseconds).
    pub to: Option<i64>,
    /// Only this client.
    pub client: Option<String>,
    /// Only this service.
    pub service: Option<String>,
    /// Only records with an id greater than this (paging).
    pub after: Option<i64>,
    /// At most this many, oldest first.
    pub limit: i64,
}

/// Storage of the operational-monitoring records.
#[async_trait::async_trait]
pub trait OpMonitorStore: Send + Sync {
    /// Insert `records` in one transaction.
    async fn insert_op_records(&self, records: &[OpRecord]) -> Result<(), StoreError>;
    /// The records matching `query`, by `request_in` then id.
    async fn op_records(&self, query: &OpQuery) -> Result<Vec<StoredOpRecord>, StoreError>;
    /// Retention: delete the records of every gateway whose `request_in` is before
    /// `before` (Unix milliseconds); returns how many were deleted.
    async fn delete_op_records_before(&self, before: i64) -> Result<u64, StoreError>;
}

/// The columns, in the order of [`INSERT`] and of the `SELECT` in the implementation.
macro_rules! op_columns {
    () => {
        "server_id, side, message_id, client, service, client_server, service_server, user_id, issue, \
         represented_party, service_type, method, path, request_in, request_out, response_in, response_out, \
         request_size, response_size, status, succeeded, fault_code, fault_string"
    };
}

/// One row's `INSERT`.
pub(crate) const INSERT: &str = concat!(
    "INSERT INTO opmon_records (",
    op_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
);

/// Any number of rows' `INSERT` on PostgreSQL: each parameter an array holding one column,
/// in the order of [`op_columns`], rows inserted in the arrays' order.
pub(crate) const INSERT_ARRAYS: &str = concat!(
    "INSERT INTO opmon_records (",
    op_columns!(),
    ") SELECT ",
    op_columns!(),
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], \
     $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[], $21::boolean[], $22::text[], \
     $23::text[]) WITH ORDINALITY AS r(",
    op_columns!(),
    ", ord) ORDER BY ord"
);

/// The `SELECT` for `query`: fixed text with optional filters, each bound in this order
/// (absent filters are `NULL` and match everything).
pub(crate) const SELECT: &str = concat!(
    "SELECT id, ",
    op_columns!(),
    " FROM opmon_records WHERE server_id = $1 \
     AND ($2 IS NULL OR request_in >= $2) AND ($3 IS NULL OR request_in < $3) \
     AND ($4 IS NULL OR client = $4) AND ($5 IS NULL OR service = $5) AND ($6 IS NULL OR id > $6) \
     ORDER BY request_in, id LIMIT $7"
);

/// Implement [`OpMonitorStore`] for a backend (`$backend` with a `pool`, rows `$row`).
macro_rules! impl_opmon_store {
    ($backend:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl crate::OpMonitorStore for $backend {
            async fn insert_op_records(
                &self,
                records: &[crate::OpRecord],
            ) -> Result<(), crate::StoreError> {
                self.insert_op_rows(records).await
            }

            async fn op_records(
                &self,
                q: &crate::OpQuery,
            ) -> Result<Vec<crate::StoredOpRecord>, crate::StoreError> {
                let rows: Vec<$row> = sqlx::query(crate::opmon::SELECT)
                    .bind(&q.server_id)
                    .bind(q.from)
                    .bind(q.to)
                    .bind(&q.client)
                    .bind(&q.service)
                    .bind(q.after)
                    .bind(q.limit.max(0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("read op-monitoring records"))?;
                rows.into_iter()
                    .map(|row| {
                        use sqlx::Row as _;
                        let get = |e: sqlx::Error| {
                            crate::StoreError::Corrupt(format!("op-monitoring row: {e}"))
                        };
                        Ok(crate::StoredOpRecord {
                            id: row.try_get("id").map_err(get)?,
                            record: crate::OpRecord {
                                server_id: row.try_get("server_id").map_err(get)?,
                                side: row.try_get("side").map_err(get)?,
                                message_id: row.try_get("message_id").map_err(get)?,
                                client: row.try_get("client").map_err(get)?,
                                service: row.try_get("service").map_err(get)?,
                                client_server: row.try_get("client_server").map_err(get)?,
                                service_server: row.try_get("service_server").map_err(get)?,
                                user_id: row.try_get("user_id").map_err(get)?,
                                issue: row.try_get("issue").map_err(get)?,
                                represented_party: row.try_get("represented_party").map_err(get)?,
                                service_type: row.try_get("service_type").map_err(get)?,
                                method: row.try_get("method").map_err(get)?,
                                path: row.try_get("path").map_err(get)?,
                                request_in: row.try_get("request_in").map_err(get)?,
                                request_out: row.try_get("request_out").map_err(get)?,
                                response_in: row.try_get("response_in").map_err(get)?,
                                response_out: row.try_get("response_out").map_err(get)?,
                                request_size: row.try_get("request_size").map_err(get)?,
                                response_size: row.try_get("response_size").map_err(get)?,
                                status: row.try_get("status").map_err(get)?,
                                succeeded: row.try_get("succeeded").map_err(get)?,
                                fault_code: row.try_get("fault_code").map_err(get)?,
                                fault_string: row.try_get("fault_string").map_err(get)?,
                            },
                        })
                    })
                    .collect()
            }

            async fn delete_op_records_before(
                &self,
                before: i64,
            ) -> Result<u64, crate::StoreError> {
                let done = sqlx::query("DELETE FROM opmon_records WHERE request_in < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("purge op-monitoring records"))?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use impl_opmon_store;
