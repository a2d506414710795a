//! The SQL shared by both backends, written once. Both SQLite and PostgreSQL accept `$N`
//! placeholders, `RETURNING` and `ON CONFLICT`, so one macro implements every trait for
//! either pool type.

macro_rules! impl_stores {
    ($backend:ty, $row:ty, $begin:expr) => {
        #[async_trait::async_trait]
        impl crate::PkiStore for $backend {
            async fn insert_certificate(&self, r: &crate::CertificateRecord) -> Result<(), crate::StoreError> {
                sqlx::query(
                    "INSERT INTO pki_certificates (serial, profile, subject, identity, der, not_before, not_after, issued_at, revoked_at, revocation_reason) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&r.serial)
                .bind(&r.profile)
                .bind(&r.subject)
                .bind(&r.identity)
                .bind(&r.der)
                .bind(r.not_before)
                .bind(r.not_after)
                .bind(r.issued_at)
                .bind(r.revocation.as_ref().map(|v| v.time))
                .bind(r.revocation.as_ref().and_then(|v| v.reason.clone()))
                .execute(&self.pool)
                .await
                .map_err(crate::StoreError::db("insert certificate serial"))?;
                Ok(())
            }

            async fn certificate(&self, serial: &str) -> Result<Option<crate::CertificateRecord>, crate::StoreError> {
                let row: Option<$row> = sqlx::query(concat!(crate::queries::certificate_select!(), " WHERE serial = $1"))
                    .bind(serial)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("read a certificate"))?;
                row.map(|row| crate::queries::certificate_from_row!(row)).transpose()
            }

            async fn certificates(&self) -> Result<Vec<crate::CertificateRecord>, crate::StoreError> {
                let rows: Vec<$row> = sqlx::query(concat!(crate::queries::certificate_select!(), " ORDER BY issued_at, serial"))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("list certificates"))?;
                rows.into_iter().map(|row| crate::queries::certificate_from_row!(row)).collect()
            }

            async fn revoke(&self, serial: &str, revocation: &crate::Revocation) -> Result<crate::RevokeOutcome, crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE pki_certificates SET revoked_at = $1, revocation_reason = $2 WHERE serial = $3 AND revoked_at IS NULL",
                )
                .bind(revocation.time)
                .bind(&revocation.reason)
                .bind(serial)
                .execute(&self.pool)
                .await
                .map_err(crate::StoreError::db("revoke a certificate"))?;
                if done.rows_affected() == 1 {
                    return Ok(crate::RevokeOutcome::Revoked);
                }
                Ok(match self.certificate(serial).await? {
                    Some(crate::CertificateRecord { revocation: Some(first), .. }) => crate::RevokeOutcome::AlreadyRevoked(first),
                    _ => crate::RevokeOutcome::NotFound,
                })
            }

            async fn reserve(&self, name: &str, count: i64) -> Result<i64, crate::StoreError> {
                if count < 1 {
                    return Err(crate::StoreError::Corrupt(format!("cannot reserve {count} values")));
                }
                let last: i64 = sqlx::query_scalar(
                    "INSERT INTO counters (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value RETURNING value",
                )
                .bind(name)
                .bind(count)
                .fetch_one(&self.pool)
                .await
                .map_err(crate::StoreError::db("reserve counter values"))?;
                Ok(last - count + 1)
            }

            async fn counter(&self, name: &str) -> Result<i64, crate::StoreError> {
                let value: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("read a counter"))?;
                Ok(value.unwrap_or(0))
            }

            async fn setting(&self, name: &str) -> Result<Option<String>, crate::StoreError> {
                sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("read a setting"))
            }

            async fn put_setting(&self, name: &str, value: &str) -> Result<(), crate::StoreError> {
                sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(value)
                .execute(&self.pool)
                .await
                .map_err(crate::StoreError::db("write a setting"))?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl crate::RegistryStore for $backend {
            async fn insert_object(&self, kind: &str, id: &str, body: &str) -> Result<(), crate::StoreError> {
                sqlx::query("INSERT INTO registry_objects (kind, id, body, revision, updated_at) VALUES ($1, $2, $3, 1, $4)")
                    .bind(kind)
                    .bind(id)
                    .bind(body)
                    .bind(crate::migrate::now())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| match crate::StoreError::db("insert registry object")(e) {
                        crate::StoreError::Duplicate { .. } => crate::StoreError::Duplicate { what: format!("{kind} {id}") },
                        other => other,
                    })?;
                Ok(())
            }

            async fn update_object(&self, kind: &str, id: &str, body: &str, expected_revision: i64) -> Result<i64, crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE registry_objects SET body = $1, revision = revision + 1, updated_at = $2 \
                     WHERE kind = $3 AND id = $4 AND revision = $5",
                )
                .bind(body)
                .bind(crate::migrate::now())
                .bind(kind)
                .bind(id)
                .bind(expected_revision)
                .execute(&self.pool)
                .await
                .map_err(crate::StoreError::db("update a registry object"))?;
                if done.rows_affected() == 1 {
                    return Ok(expected_revision + 1);
                }
                match self.object(kind, id).await? {
                    Some(_) => Err(crate::StoreError::Conflict { what: format!("{kind} {id}") }),
                    None => Err(crate::StoreError::NotFound { what: format!("{kind} {id}") }),
                }
            }

            async fn object(&self, kind: &str, id: &str) -> Result<Option<crate::StoredObject>, crate::StoreError> {
                let row: Option<(String, String, String, i64)> =
                    sqlx::query_as("SELECT kind, id, body, revision FROM registry_objects WHERE kind = $1 AND id = $2")
                        .bind(kind)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(crate::StoreError::db("read a registry object"))?;
                Ok(row.map(|(kind, id, body, revision)| crate::StoredObject { kind, id, body, revision }))
            }

            async fn objects(&self, kind: &str) -> Result<Vec<crate::StoredObject>, crate::StoreError> {
                let rows: Vec<(String, String, String, i64)> =
                    sqlx::query_as("SELECT kind, id, body, revision FROM registry_objects WHERE kind = $1 ORDER BY id")
                        .bind(kind)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::StoreError::db("list registry objects"))?;
                Ok(rows
                    .into_iter()
                    .map(|(kind, id, body, revision)| crate::StoredObject { kind, id, body, revision })
                    .collect())
            }

            async fn delete_object(&self, kind: &str, id: &str) -> Result<bool, crate::StoreError> {
                let done = sqlx::query("DELETE FROM registry_objects WHERE kind = $1 AND id = $2")
                    .bind(kind)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("delete a registry object"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn append_audit(&self, e: &crate::NewAuditEntry) -> Result<i64, crate::StoreError> {
                sqlx::query_scalar(
                    "INSERT INTO audit_log (at, actor, action, target, result, detail) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(e.at)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.result)
                .bind(&e.detail)
                .fetch_one(&self.pool)
                .await
                .map_err(crate::StoreError::db("append to the audit log"))
            }

            async fn audit(&self, after: i64, limit: i64) -> Result<Vec<crate::AuditEntry>, crate::StoreError> {
                let rows: Vec<(i64, i64, String, String, String, String, String)> = sqlx::query_as(
                    "SELECT id, at, actor, action, target, result, detail FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(crate::StoreError::db("read the audit log"))?;
                Ok(rows
                    .into_iter()
                    .map(|(id, at, actor, action, target, result, detail)| crate::AuditEntry {
                        id,
                        entry: crate::NewAuditEntry { at, actor, action, target, result, detail },
                    })
                    .collect())
            }

            async fn insert_conf_version(&self, v: &crate::ConfVersion) -> Result<(), crate::StoreError> {
                sqlx::query("INSERT INTO globalconf_versions (version, generated_at, expires_at, envelope) VALUES ($1, $2, $3, $4)")
                    .bind(v.version)
                    .bind(v.generated_at)
                    .bind(v.expires_at)
                    .bind(&v.envelope)
                    .execute(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("insert configuration version"))?;
                Ok(())
            }

            async fn latest_conf_version(&self) -> Result<Option<crate::ConfVersion>, crate::StoreError> {
                let row: Option<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT version, generated_at, expires_at, envelope FROM globalconf_versions ORDER BY version DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await
                .map_err(crate::StoreError::db("read the newest configuration"))?;
                Ok(row.map(|(version, generated_at, expires_at, envelope)| crate::ConfVersion {
                    version,
                    generated_at,
                    expires_at,
                    envelope,
                }))
            }
        }

        #[async_trait::async_trait]
        impl crate::LedgerStore for $backend {
            async fn append(&self, log_id: &str, entries: &[crate::NewLedgerEntry]) -> Result<u64, crate::StoreError> {
                self.append_with_bodies(log_id, entries, &[]).await
            }

            async fn append_with_bodies(
                &self,
                log_id: &str,
                entries: &[crate::NewLedgerEntry],
                bodies: &[Option<crate::LedgerBodies>],
            ) -> Result<u64, crate::StoreError> {
                self.append_rows(log_id, entries, bodies).await
            }

            async fn append_owned(
                &self,
                log_id: &str,
                entries: Vec<crate::NewLedgerEntry>,
                bodies: Vec<Option<crate::LedgerBodies>>,
            ) -> Result<u64, crate::StoreError> {
                self.append_rows_owned(log_id, entries, bodies).await
            }

            fn groups_appends(&self) -> bool {
                self.grouping_writer().is_some()
            }

            async fn append_grouped(
                &self,
                log_id: &str,
                entry: crate::NewLedgerEntry,
                bodies: Option<crate::LedgerBodies>,
            ) -> Result<crate::Appended, crate::StoreError> {
                match self.grouping_writer() {
                    Some(writer) => writer.append_grouped(log_id, entry, bodies).await,
                    None => Ok(crate::Appended {
                        index: self.append_rows(log_id, &[entry], &[bodies]).await?,
                        commit_records: Some(1),
                    }),
                }
            }

            async fn size(&self, log_id: &str) -> Result<u64, crate::StoreError> {
                let size: Option<i64> = sqlx::query_scalar("SELECT size FROM ledger_logs WHERE log_id = $1")
                    .bind(log_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("read a ledger's size"))?;
                crate::ledger::from_sql(size.unwrap_or(0))
            }

            async fn leaf_hashes(&self, log_id: &str, from: u64, to: u64) -> Result<Vec<[u8; 32]>, crate::StoreError> {
                if from >= to {
                    return Ok(Vec::new());
                }
                let hashes: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT leaf_hash FROM ledger_records WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                )
                .bind(log_id)
                .bind(crate::ledger::to_sql(from)?)
                .bind(crate::ledger::to_sql(to)?)
                .fetch_all(&self.pool)
                .await
                .map_err(crate::StoreError::db("read ledger leaf hashes"))?;
                // The primary key makes indices unique, so a short answer means a hole.
                if u64::try_from(hashes.len()).ok() != Some(to - from) {
                    return Err(crate::StoreError::NotFound {
                        what: format!("some of records {from}..{to} of ledger {log_id}"),
                    });
                }
                hashes.into_iter().map(crate::ledger::leaf_hash).collect()
            }

            async fn record(&self, log_id: &str, idx: u64) -> Result<Option<(String, [u8; 32], Vec<u8>)>, crate::StoreError> {
                let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
                    "SELECT message_id, leaf_hash, record FROM ledger_records WHERE log_id = $1 AND idx = $2",
                )
                .bind(log_id)
                .bind(crate::ledger::to_sql(idx)?)
                .fetch_optional(&self.pool)
                .await
                .map_err(crate::StoreError::db("read a ledger record"))?;
                let Some((message_id, leaf_hash, stored)) = row else { return Ok(None) };
                let mut records = crate::queries::unpack_records!(self, log_id, vec![stored]);
                let record = records.pop().unwrap_or_default();
                Ok(Some((message_id, crate::ledger::leaf_hash(leaf_hash)?, record)))
            }

            async fn find_by_message_id(&self, log_id: &str, message_id: &str) -> Result<Vec<u64>, crate::StoreError> {
                let indices: Vec<i64> = sqlx::query_scalar(
                    "SELECT idx FROM ledger_records WHERE log_id = $1 AND message_id = $2 ORDER BY idx",
                )
                .bind(log_id)
                .bind(message_id)
                .fetch_all(&self.pool)
                .await
                .map_err(crate::StoreError::db("find ledger records by message id"))?;
                indices.into_iter().map(crate::ledger::from_sql).collect()
            }

            async fn put_head(&self, log_id: &str, size: u64, head: &[u8], tsa_token: Option<&[u8]>) -> Result<(), crate::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO ledger_heads (log_id, size, head, tsa_token, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (log_id, size) DO UPDATE SET tsa_token = COALESCE(excluded.tsa_token, ledger_heads.tsa_token) \
                     WHERE ledger_heads.head = excluded.head",
                )
                .bind(log_id)
                .bind(crate::ledger::to_sql(size)?)
                .bind(head)
                .bind(tsa_token)
                .bind(crate::migrate::now())
                .execute(&self.pool)
                .await
                .map_err(crate::StoreError::db("store a ledger head"))?;
                if done.rows_affected() == 0 {
                    return Err(crate::StoreError::Conflict {
                        what: format!("the head of size {size} of ledger {log_id}"),
                    });
                }
                Ok(())
            }

            async fn heads(&self, log_id: &str) -> Result<Vec<crate::StoredHead>, crate::StoreError> {
                let rows: Vec<crate::ledger::HeadRow> = sqlx::query_as(
                    "SELECT size, head, tsa_token, created_at, frontier FROM ledger_heads WHERE log_id = $1 ORDER BY size",
                )
                .bind(log_id)
                .fetch_all(&self.pool)
                .await
                .map_err(crate::StoreError::db("list ledger heads"))?;
                rows.into_iter().map(crate::ledger::head_from_row).collect()
            }

            async fn latest_head(&self, log_id: &str) -> Result<Option<crate::StoredHead>, crate::StoreError> {
                let row: Option<crate::ledger::HeadRow> = sqlx::query_as(
                    "SELECT size, head, tsa_token, created_at, frontier FROM ledger_heads WHERE log_id = $1 ORDER BY size DESC LIMIT 1",
                )
                .bind(log_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(crate::StoreError::db("read the latest ledger head"))?;
                row.map(crate::ledger::head_from_row).transpose()
            }

            async fn put_head_frontier(&self, log_id: &str, size: u64, frontier: &[[u8; 32]]) -> Result<(), crate::StoreError> {
                if frontier.len() != size.count_ones() as usize {
                    return Err(crate::StoreError::Corrupt(format!(
                        "a frontier of {} hashes for a head of {size} records",
                        frontier.len()
                    )));
                }
                let done = sqlx::query("UPDATE ledger_heads SET frontier = $3 WHERE log_id = $1 AND size = $2")
                    .bind(log_id)
                    .bind(crate::ledger::to_sql(size)?)
                    .bind(crate::ledger::frontier_bytes(frontier))
                    .execute(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("keep a ledger head's frontier"))?;
                if done.rows_affected() == 0 {
                    return Err(crate::StoreError::NotFound {
                        what: format!("the head of size {size} of ledger {log_id}"),
                    });
                }
                Ok(())
            }

            async fn latest_head_with_frontier(&self, log_id: &str) -> Result<Option<crate::StoredHead>, crate::StoreError> {
                let row: Option<crate::ledger::HeadRow> = sqlx::query_as(
                    "SELECT size, head, tsa_token, created_at, frontier FROM ledger_heads \
                     WHERE log_id = $1 AND frontier IS NOT NULL ORDER BY size DESC LIMIT 1",
                )
                .bind(log_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(crate::StoreError::db("read the latest ledger head's frontier"))?;
                row.map(crate::ledger::head_from_row).transpose()
            }

            async fn delete_records_before(&self, log_id: &str, idx: u64) -> Result<u64, crate::StoreError> {
                // Bodies go first: a body never outlives its record.
                sqlx::query("DELETE FROM ledger_bodies WHERE log_id = $1 AND idx < $2")
                    .bind(log_id)
                    .bind(crate::ledger::to_sql(idx)?)
                    .execute(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("purge ledger bodies"))?;
                let done = sqlx::query("DELETE FROM ledger_records WHERE log_id = $1 AND idx < $2")
                    .bind(log_id)
                    .bind(crate::ledger::to_sql(idx)?)
                    .execute(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("purge ledger records"))?;
                sqlx::query(crate::pack::PURGE)
                    .bind(log_id)
                    .execute(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("purge ledger values"))?;
                Ok(done.rows_affected())
            }

            async fn bodies(&self, log_id: &str, idx: u64) -> Result<Option<crate::LedgerBodies>, crate::StoreError> {
                let row: Option<(Option<String>, Option<Vec<u8>>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT encrypted_to, request, response FROM ledger_bodies WHERE log_id = $1 AND idx = $2",
                )
                .bind(log_id)
                .bind(crate::ledger::to_sql(idx)?)
                .fetch_optional(&self.pool)
                .await
                .map_err(crate::StoreError::db("read ledger bodies"))?;
                Ok(row.map(|(encrypted_to, request, response)| crate::LedgerBodies {
                    encrypted_to,
                    request,
                    response,
                }))
            }

            async fn records(&self, log_id: &str, from: u64, to: u64) -> Result<Vec<(Vec<u8>, i64)>, crate::StoreError> {
                let rows: Vec<(Vec<u8>, i64)> = sqlx::query_as(
                    "SELECT record, recorded_at FROM ledger_records WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                )
                .bind(log_id)
                .bind(crate::ledger::to_sql(from)?)
                .bind(crate::ledger::to_sql(to)?)
                .fetch_all(&self.pool)
                .await
                .map_err(crate::StoreError::db("read ledger records"))?;
                if rows.len() as u64 != to.saturating_sub(from) {
                    return Err(crate::StoreError::NotFound {
                        what: format!("some of records {from}..{to} of ledger {log_id}"),
                    });
                }
                let (stored, times): (Vec<Vec<u8>>, Vec<i64>) = rows.into_iter().unzip();
                Ok(crate::queries::unpack_records!(self, log_id, stored).into_iter().zip(times).collect())
            }

            async fn pruned(&self, log_id: &str) -> Result<crate::PrunedPrefix, crate::StoreError> {
                let row: Option<(i64, Vec<u8>)> = sqlx::query_as("SELECT pruned, frontier FROM ledger_logs WHERE log_id = $1")
                    .bind(log_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("read a ledger's purged start"))?;
                row.map_or(Ok(crate::PrunedPrefix::default()), crate::ledger::pruned_from_row)
            }

            async fn tree_leaves(&self, log_id: &str, to: u64) -> Result<(crate::PrunedPrefix, Vec<[u8; 32]>), crate::StoreError> {
                // A purge between the two reads leaves a gap; read again (purges are rare).
                let mut attempts = 0;
                loop {
                    let pruned = self.pruned(log_id).await?;
                    match self.leaf_hashes(log_id, pruned.size, to.max(pruned.size)).await {
                        Ok(leaves) => return Ok((pruned, leaves)),
                        Err(crate::StoreError::NotFound { .. }) if attempts < 3 => attempts += 1,
                        Err(error) => return Err(error),
                    }
                }
            }

            async fn add_archive(&self, log_id: &str, archive: &crate::StoredArchive) -> Result<(), crate::StoreError> {
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(crate::StoreError::db("begin recording an archive"))?;
                let last: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT sequence, end_idx FROM ledger_archives WHERE log_id = $1 ORDER BY sequence DESC LIMIT 1",
                )
                .bind(log_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(crate::StoreError::db("read the last archive"))?;
                let (sequence, end) = last.unwrap_or((0, 0));
                if crate::ledger::to_sql(archive.sequence)? != sequence + 1 || crate::ledger::to_sql(archive.first)? != end {
                    return Err(crate::StoreError::Conflict {
                        what: format!("archive {} of ledger {log_id} (the last is {sequence}, ending at {end})", archive.sequence),
                    });
                }
                let inserted = sqlx::query(
                    "INSERT INTO ledger_archives (log_id, sequence, first_idx, end_idx, file_name, sha256, last_recorded_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (log_id, sequence) DO NOTHING",
                )
                .bind(log_id)
                .bind(crate::ledger::to_sql(archive.sequence)?)
                .bind(crate::ledger::to_sql(archive.first)?)
                .bind(crate::ledger::to_sql(archive.end)?)
                .bind(&archive.file_name)
                .bind(&archive.sha256[..])
                .bind(archive.last_recorded_at)
                .bind(archive.created_at)
                .execute(&mut *tx)
                .await
                .map_err(crate::StoreError::db("record an archive"))?;
                if inserted.rows_affected() != 1 {
                    return Err(crate::StoreError::Conflict {
                        what: format!("archive {} of ledger {log_id}", archive.sequence),
                    });
                }
                tx.commit().await.map_err(crate::StoreError::db("commit an archive"))
            }

            async fn archives(&self, log_id: &str) -> Result<Vec<crate::StoredArchive>, crate::StoreError> {
                let rows: Vec<(i64, i64, i64, String, Vec<u8>, i64, i64)> = sqlx::query_as(
                    "SELECT sequence, first_idx, end_idx, file_name, sha256, last_recorded_at, created_at \
                     FROM ledger_archives WHERE log_id = $1 ORDER BY sequence",
                )
                .bind(log_id)
                .fetch_all(&self.pool)
                .await
                .map_err(crate::StoreError::db("list ledger archives"))?;
                rows.into_iter().map(crate::ledger::archive_from_row).collect()
            }

            async fn purge_archived(&self, log_id: &str, prefix: &crate::PrunedPrefix) -> Result<u64, crate::StoreError> {
                let size = crate::ledger::to_sql(prefix.size)?;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(crate::StoreError::db("begin a ledger purge"))?;
                let archived: Option<i64> = sqlx::query_scalar(
                    "SELECT end_idx FROM ledger_archives WHERE log_id = $1 AND end_idx = $2",
                )
                .bind(log_id)
                .bind(size)
                .fetch_optional(&mut *tx)
                .await
                .map_err(crate::StoreError::db("find the archive of a purge"))?;
                // Lock the log's row (PostgreSQL) while its purge point moves.
                let current: Option<i64> = sqlx::query_scalar(
                    "UPDATE ledger_logs SET pruned = pruned WHERE log_id = $1 RETURNING pruned",
                )
                .bind(log_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(crate::StoreError::db("lock a ledger for a purge"))?;
                let refuse = |why: &str| crate::StoreError::Conflict {
                    what: format!("purging records before {} of ledger {log_id}: {why}", prefix.size),
                };
                if archived.is_none() {
                    return Err(refuse("no archive ends there"));
                }
                if current.is_none_or(|current| current > size) {
                    return Err(refuse("the log has no such records, or is purged further"));
                }
                if prefix.frontier.len() != prefix.size.count_ones() as usize {
                    return Err(refuse("the frontier does not fit the size"));
                }
                sqlx::query("DELETE FROM ledger_bodies WHERE log_id = $1 AND idx < $2")
                    .bind(log_id)
                    .bind(size)
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::StoreError::db("purge ledger bodies"))?;
                let done = sqlx::query("DELETE FROM ledger_records WHERE log_id = $1 AND idx < $2")
                    .bind(log_id)
                    .bind(size)
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::StoreError::db("purge ledger records"))?;
                sqlx::query(crate::pack::PURGE)
                    .bind(log_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::StoreError::db("purge ledger values"))?;
                sqlx::query("UPDATE ledger_logs SET pruned = $2, frontier = $3 WHERE log_id = $1")
                    .bind(log_id)
                    .bind(size)
                    .bind(crate::ledger::frontier_bytes(&prefix.frontier))
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::StoreError::db("keep a ledger's frontier"))?;
                tx.commit().await.map_err(crate::StoreError::db("commit a ledger purge"))?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl crate::Backend for $backend {
            async fn database_bytes(&self) -> Result<u64, crate::StoreError> {
                let bytes: i64 = sqlx::query_scalar(Self::DATABASE_BYTES)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("read the database's size"))?;
                Ok(u64::try_from(bytes).unwrap_or(0))
            }
        }
    };
}
pub(crate) use impl_stores;

/// Stored log records (`$stored`, a `Vec<Vec<u8>>`) of log `$log_id` as appended: the
/// values they refer to read once each (see `pack.rs`). An async expression of
/// `Vec<Vec<u8>>`, with `?` on errors.
macro_rules! unpack_records {
    ($self:expr, $log_id:expr, $stored:expr) => {{
        let stored: Vec<Vec<u8>> = $stored
            .into_iter()
            .map(crate::pack::plain)
            .collect::<Result<_, crate::StoreError>>()?;
        let mut values: std::collections::HashMap<[u8; 32], Option<Vec<u8>>> =
            std::collections::HashMap::new();
        for record in &stored {
            for hash in crate::pack::references(record)? {
                if values.contains_key(&hash) {
                    continue;
                }
                let content: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT content FROM ledger_blobs WHERE log_id = $1 AND hash = $2",
                )
                .bind($log_id)
                .bind(&hash[..])
                .fetch_optional(&$self.pool)
                .await
                .map_err(crate::StoreError::db("read a ledger value"))?;
                values.insert(hash, content);
            }
        }
        stored
            .into_iter()
            .map(|record| crate::pack::unpack(record, |hash| values.get(hash).cloned().flatten()))
            .collect::<Result<Vec<_>, crate::StoreError>>()?
    }};
}
pub(crate) use unpack_records;

macro_rules! certificate_select {
    () => {
        "SELECT serial, profile, subject, identity, der, not_before, not_after, issued_at, revoked_at, revocation_reason FROM pki_certificates"
    };
}
pub(crate) use certificate_select;

macro_rules! certificate_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        let get = |e: sqlx::Error| crate::StoreError::Corrupt(format!("certificate row: {e}"));
        let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(get)?;
        Ok::<_, crate::StoreError>(crate::CertificateRecord {
            serial: row.try_get("serial").map_err(get)?,
            profile: row.try_get("profile").map_err(get)?,
            subject: row.try_get("subject").map_err(get)?,
            identity: row.try_get("identity").map_err(get)?,
            der: row.try_get("der").map_err(get)?,
            not_before: row.try_get("not_before").map_err(get)?,
            not_after: row.try_get("not_after").map_err(get)?,
            issued_at: row.try_get("issued_at").map_err(get)?,
            revocation: match revoked_at {
                Some(time) => Some(crate::Revocation {
                    time,
                    reason: row.try_get("revocation_reason").map_err(get)?,
                }),
                None => None,
            },
        })
    }};
}
pub(crate) use certificate_from_row;
