//! The bank side of the ledger's SQL: instructions gathered into bank batches, batch
//! files reserved and acknowledged, results recorded, failures without a fix case. A
//! macro expanded inside each backend's module of `db.rs` (the same SQL for SQLite and
//! PostgreSQL), so it uses that module's `Db`, `Tx`, `Pool` and helpers.

macro_rules! bank_ops {
    () => {
            async fn batch_instructions(
                tx: &mut Tx,
                batch_id: &str,
            ) -> Result<Vec<Instruction>, PaymentError> {
                let rows = sqlx::query(&format!(
                    "SELECT {INSTRUCTION_COLUMNS} FROM payment_instructions WHERE batch_id = $1 ORDER BY id"
                ))
                .bind(batch_id)
                .fetch_all(&mut **tx)
                .await?;
                rows.iter().map(instruction_row).collect()
            }

            /// Reserves every due, unsent instruction with an account for a new batch, in
            /// one statement and one transaction (all or nothing); `None` when none is due.
            pub(crate) async fn reserve_batch(
                pool: &Pool,
                today: NaiveDate,
                at: i64,
            ) -> Result<Option<String>, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let day = today.format("%Y%m%d").to_string();
                let earlier: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM payment_batches WHERE id LIKE $1",
                )
                .bind(format!("{day}-%"))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                let batch_id = format!("{day}-{:03}", earlier + 1);
                // Count and total are set when the file is written.
                sqlx::query(
                    "INSERT INTO payment_batches (id, file_name, status, instruction_count, total, created_at) \
                     VALUES ($1, $2, 'writing', 0, '0.00', $3)",
                )
                .bind(&batch_id)
                .bind(format!("{batch_id}.csv"))
                .bind(at)
                .execute(&mut *tx)
                .await?;
                let reserved = sqlx::query(
                    "UPDATE payment_instructions SET batch_id = $1, updated_at = $2 \
                     WHERE status = 'scheduled' AND batch_id IS NULL AND due_on <= $3 \
                     AND account IS NOT NULL AND TRIM(account) <> ''",
                )
                .bind(&batch_id)
                .bind(at)
                .bind(date_text(today))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if reserved == 0 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                tx.commit().await?;
                Ok(Some(batch_id))
            }

            /// Due, unsent instructions without a bank account, by reference.
            pub(crate) async fn due_without_account(
                pool: &Pool,
                today: NaiveDate,
            ) -> Result<Vec<String>, PaymentError> {
                sqlx::query(
                    "SELECT id FROM payment_instructions \
                     WHERE status = 'scheduled' AND batch_id IS NULL AND due_on <= $1 \
                     AND (account IS NULL OR TRIM(account) = '') ORDER BY id",
                )
                .bind(date_text(today))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| Ok(row.try_get::<String, _>(0)?))
                .collect()
            }

            /// The next `limit` instructions of a batch after reference `after`, in
            /// reference order (the order of the file).
            pub(crate) async fn batch_page(
                pool: &Pool,
                batch_id: &str,
                after: &str,
                limit: i64,
            ) -> Result<Vec<Instruction>, PaymentError> {
                sqlx::query(&format!(
                    "SELECT {INSTRUCTION_COLUMNS} FROM payment_instructions \
                     WHERE batch_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(batch_id)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(instruction_row)
                .collect()
            }

            /// Batches reserved whose file was not acknowledged, by id.
            pub(crate) async fn pending_batch_ids(pool: &Pool) -> Result<Vec<String>, PaymentError> {
                sqlx::query("SELECT id FROM payment_batches WHERE status = 'writing' ORDER BY id")
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|row| Ok(row.try_get::<String, _>(0)?))
                    .collect()
            }

            pub(crate) async fn pending_batches(pool: &Pool) -> Result<Vec<PreparedBatch>, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let ids = sqlx::query(
                    "SELECT id FROM payment_batches WHERE status = 'writing' ORDER BY id",
                )
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
                let mut batches = Vec::new();
                for batch_id in ids {
                    let instructions = batch_instructions(&mut tx, &batch_id).await?;
                    batches.push(PreparedBatch {
                        batch_id,
                        instructions,
                    });
                }
                tx.commit().await?;
                Ok(batches)
            }

            /// A batch's instructions, whatever its status; `None` when no batch has that id.
            pub(crate) async fn batch(
                pool: &Pool,
                batch_id: &str,
            ) -> Result<Option<PreparedBatch>, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let found = sqlx::query("SELECT id FROM payment_batches WHERE id = $1")
                    .bind(batch_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let batch = match found {
                    Some(_) => Some(PreparedBatch {
                        batch_id: batch_id.to_owned(),
                        instructions: batch_instructions(&mut tx, batch_id).await?,
                    }),
                    None => None,
                };
                tx.commit().await?;
                Ok(batch)
            }

            /// Marks a batch and its instructions sent; `written` is the count and total
            /// of the file when it was streamed.
            pub(crate) async fn acknowledge_batch(
                pool: &Pool,
                batch_id: &str,
                written: Option<(u64, Decimal)>,
                at: i64,
            ) -> Result<(), PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                sqlx::query(
                    "UPDATE payment_instructions SET status = 'sent', channel = 'bank_file', updated_at = $1 \
                     WHERE batch_id = $2 AND status = 'scheduled'",
                )
                .bind(at)
                .bind(batch_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE payment_batches SET status = 'sent', sent_at = $1 WHERE id = $2 AND status = 'writing'",
                )
                .bind(at)
                .bind(batch_id)
                .execute(&mut *tx)
                .await?;
                if let Some((count, total)) = written {
                    sqlx::query(
                        "UPDATE payment_batches SET instruction_count = $1, total = $2 WHERE id = $3",
                    )
                    .bind(i64::try_from(count).unwrap_or(i64::MAX))
                    .bind(total.to_string())
                    .bind(batch_id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn due_unbatched(
                pool: &Pool,
                today: NaiveDate,
            ) -> Result<Vec<Instruction>, PaymentError> {
                let rows = sqlx::query(&format!(
                    "SELECT {INSTRUCTION_COLUMNS} FROM payment_instructions \
                     WHERE status = 'scheduled' AND batch_id IS NULL AND due_on <= $1 ORDER BY id"
                ))
                .bind(date_text(today))
                .fetch_all(pool)
                .await?;
                rows.iter().map(instruction_row).collect()
            }

            /// Records every due, unsent instruction without a bank account as failed with
            /// `reason` (a result from `source`, as if the bank had refused it), so it gets
            /// its `payment_fix` task like any failure. A result row is written once per
            /// reference: a second call finds nothing left to fail.
            pub(crate) async fn fail_without_account(
                pool: &Pool,
                today: NaiveDate,
                reason: &str,
                source: &str,
                at: i64,
            ) -> Result<Vec<String>, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let references = sqlx::query(
                    "SELECT id FROM payment_instructions \
                     WHERE status = 'scheduled' AND batch_id IS NULL AND due_on <= $1 \
                     AND (account IS NULL OR TRIM(account) = '') ORDER BY id",
                )
                .bind(date_text(today))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
                for reference in &references {
                    sqlx::query(
                        "INSERT INTO payment_results (reference, outcome, reason, source, recorded_at) \
                         VALUES ($1, 'failed', $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(reference)
                    .bind(reason)
                    .bind(source)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE payment_instructions SET status = 'failed', failure_reason = $1, \
                         updated_at = $2 WHERE id = $3 AND status = 'scheduled'",
                    )
                    .bind(reason)
                    .bind(at)
                    .bind(reference)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(references)
            }

            pub(crate) async fn mark_sent(
                pool: &Pool,
                reference: &str,
                channel: &str,
                at: i64,
            ) -> Result<(), PaymentError> {
                sqlx::query(
                    "UPDATE payment_instructions SET status = 'sent', channel = $1, updated_at = $2 \
                     WHERE id = $3 AND status = 'scheduled'",
                )
                .bind(channel)
                .bind(at)
                .bind(reference)
                .execute(pool)
                .await?;
                Ok(())
            }

            pub(crate) async fn record_result(
                pool: &Pool,
                result: &PaymentResult,
                source: &str,
                at: i64,
            ) -> Result<Recorded, PaymentError> {
                let mut tx = pool.begin_with(BEGIN).await?;
                let known = sqlx::query(
                    "SELECT c.month FROM payment_instructions i \
                     LEFT JOIN payment_months_closed c ON c.month = i.month WHERE i.id = $1",
                )
                .bind(&result.reference)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(known) = known else {
                    tx.rollback().await?;
                    return Ok(Recorded::Unknown);
                };
                if known.try_get::<Option<String>, _>(0)?.is_some() {
                    tx.rollback().await?;
                    return Ok(Recorded::Closed);
                }
                let fresh = sqlx::query(
                    "INSERT INTO payment_results (reference, outcome, reason, source, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&result.reference)
                .bind(result.outcome.as_str())
                .bind(&result.reason)
                .bind(source)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if fresh == 0 {
                    let first: String =
                        sqlx::query("SELECT outcome FROM payment_results WHERE reference = $1")
                            .bind(&result.reference)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get(0)?;
                    tx.rollback().await?;
                    return Ok(Recorded::Repeat {
                        same: first == result.outcome.as_str(),
                    });
                }
                let status = match result.outcome {
                    ResultOutcome::Paid => InstructionStatus::Paid,
                    ResultOutcome::Failed => InstructionStatus::Failed,
                };
                sqlx::query(
                    "UPDATE payment_instructions SET status = $1, failure_reason = $2, updated_at = $3 \
                     WHERE id = $4 AND status IN ('scheduled', 'sent')",
                )
                .bind(status.as_str())
                .bind(&result.reason)
                .bind(at)
                .bind(&result.reference)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Recorded::New)
            }

            pub(crate) async fn failures_without_fix(
                pool: &Pool,
            ) -> Result<Vec<(Instruction, String)>, PaymentError> {
                let columns = INSTRUCTION_COLUMNS
                    .split(", ")
                    .map(|c| format!("i.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let rows = sqlx::query(&format!(
                    "SELECT {columns}, r.reason FROM payment_results r \
                     JOIN payment_instructions i ON i.id = r.reference \
                     WHERE r.outcome = 'failed' AND r.fix_instance IS NULL ORDER BY i.id"
                ))
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let reason: Option<String> = row.try_get(20)?;
                        Ok((instruction_row(row)?, reason.unwrap_or_default()))
                    })
                    .collect()
            }

            pub(crate) async fn set_fix_instance(
                pool: &Pool,
                reference: &str,
                instance: &str,
            ) -> Result<(), PaymentError> {
                sqlx::query(
                    "UPDATE payment_results SET fix_instance = $1 WHERE reference = $2 AND fix_instance IS NULL",
                )
                .bind(instance)
                .bind(reference)
                .execute(pool)
                .await?;
                Ok(())
            }
    };
}
