//! The bank batch file: CSV in UTF-8, one row per payment instruction in configurable
//! columns (ID numbers masked), then a control line with the count and total, written
//! atomically so the bank never picks up half a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::Deserialize;

use super::PaymentError;
use super::ledger::Instruction;
use super::model::mask_id_number;

/// A field of an instruction that a bank file can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankColumn {
    /// The payment reference: the idempotency key the bank reports results by.
    Reference,
    PayeeName,
    /// Always masked (`2305**********1234`): the file travels beyond the office.
    IdNumber,
    Account,
    Amount,
    Program,
    Unit,
    Month,
    DueOn,
    Case,
}

impl BankColumn {
    fn default_header(self) -> &'static str {
        match self {
            BankColumn::Reference => "reference",
            BankColumn::PayeeName => "payee_name",
            BankColumn::IdNumber => "id_number",
            BankColumn::Account => "account",
            BankColumn::Amount => "amount",
            BankColumn::Program => "program",
            BankColumn::Unit => "unit",
            BankColumn::Month => "month",
            BankColumn::DueOn => "due_on",
            BankColumn::Case => "case",
        }
    }

    fn value(self, instruction: &Instruction) -> String {
        match self {
            BankColumn::Reference => instruction.reference.clone(),
            BankColumn::PayeeName => instruction.payee.name.clone(),
            BankColumn::IdNumber => instruction
                .payee
                .id_number
                .as_deref()
                .map(mask_id_number)
                .unwrap_or_default(),
            BankColumn::Account => instruction.payee.account.clone().unwrap_or_default(),
            BankColumn::Amount => instruction.amount.to_string(),
            BankColumn::Program => instruction.program.clone(),
            BankColumn::Unit => instruction.unit.clone(),
            BankColumn::Month => instruction.month.to_string(),
            BankColumn::DueOn => instruction.due_on.format("%Y-%m-%d").to_string(),
            BankColumn::Case => instruction.case_id.clone(),
        }
    }
}

/// A column: `reference`, or `{field: reference, header: 业务参考号}` for the bank's own
/// header text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    Field(BankColumn),
    Labelled { field: BankColumn, header: String },
}

impl ColumnSpec {
    fn field(&self) -> BankColumn {
        match self {
            ColumnSpec::Field(field) | ColumnSpec::Labelled { field, .. } => *field,
        }
    }

    fn header(&self) -> &str {
        match self {
            ColumnSpec::Field(field) => field.default_header(),
            ColumnSpec::Labelled { header, .. } => header,
        }
    }
}

/// The shape of the bank file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BankFileConfig {
    pub columns: Vec<ColumnSpec>,
    /// Whether the first line names the columns.
    pub header: bool,
    /// First cell of the control line: `TOTAL,<count>,<sum of amounts>`.
    pub control_label: String,
    /// File names are `{prefix}{batch id}.csv`.
    pub file_prefix: String,
}

impl Default for BankFileConfig {
    fn default() -> Self {
        BankFileConfig {
            columns: [
                BankColumn::Reference,
                BankColumn::PayeeName,
                BankColumn::IdNumber,
                BankColumn::Account,
                BankColumn::Amount,
            ]
            .into_iter()
            .map(ColumnSpec::Field)
            .collect(),
            header: true,
            control_label: "TOTAL".to_owned(),
            file_prefix: "jiuzhu-payments-".to_owned(),
        }
    }
}

impl BankFileConfig {
    pub fn file_name(&self, batch_id: &str) -> String {
        format!("{}{batch_id}.csv", self.file_prefix)
    }

    /// The file's bytes: the same instructions always give the same bytes.
    pub fn render(&self, instructions: &[Instruction]) -> Result<Vec<u8>, csv::Error> {
        // The control line is shorter than the rows.
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        if self.header {
            writer.write_record(self.columns.iter().map(ColumnSpec::header))?;
        }
        let mut total = Decimal::ZERO;
        for instruction in instructions {
            total += instruction.amount;
            writer.write_record(
                self.columns
                    .iter()
                    .map(|column| column.field().value(instruction)),
            )?;
        }
        let mut total_text = total;
        total_text.rescale(2);
        writer.write_record([
            self.control_label.clone(),
            instructions.len().to_string(),
            total_text.to_string(),
        ])?;
        writer.into_inner().map_err(|e| e.into_error().into())
    }
}

/// Writes `instructions` as `dir/{prefix}{batch_id}.csv` atomically: a temp file in the same
/// folder, fsynced, renamed over the target, and the folder fsynced so the rename is durable.
/// Rewriting the same batch replaces the file with identical bytes.
pub fn write_bank_file(
    dir: &Path,
    batch_id: &str,
    instructions: &[Instruction],
    config: &BankFileConfig,
) -> Result<PathBuf, PaymentError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PaymentError::Io { path, source }
    };
    let target = dir.join(config.file_name(batch_id));
    let bytes = config
        .render(instructions)
        .map_err(|source| PaymentError::Csv {
            path: target.clone(),
            source,
        })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // A leading dot keeps bank pickup jobs from seeing the file before it is complete.
    let mut temp = tempfile::Builder::new()
        .prefix(".jiuzhu-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    temp.write_all(&bytes).map_err(io(temp.path()))?;
    temp.as_file().sync_all().map_err(io(temp.path()))?;
    temp.persist(&target).map_err(|e| PaymentError::Io {
        path: target.clone(),
        source: e.error,
    })?;
    sync_dir(dir).map_err(io(dir))?;
    Ok(target)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // Windows cannot open a folder as a file; its rename is durable once the file is.
    Ok(())
}
