//! The bank batch file: CSV in UTF-8, one row per payment instruction in configurable
//! columns (ID numbers masked), then a control line with the count and total, written
//! atomically so the bank never picks up half a file.

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
        let mut writer = BankFileWriter::new(self, Vec::new())?;
        for instruction in instructions {
            writer.write(instruction)?;
        }
        Ok(writer.finish()?.0)
    }
}

/// Writes a bank file one instruction at a time (memory does not grow with the file);
/// the same instructions in the same order give the same bytes as
/// [`BankFileConfig::render`].
pub struct BankFileWriter<'a, W: std::io::Write> {
    config: &'a BankFileConfig,
    writer: csv::Writer<W>,
    count: u64,
    total: Decimal,
}

impl<'a, W: std::io::Write> BankFileWriter<'a, W> {
    /// Starts the file (its header line when the config has one).
    pub fn new(config: &'a BankFileConfig, out: W) -> Result<Self, csv::Error> {
        // The control line is shorter than the rows.
        let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(out);
        if config.header {
            writer.write_record(config.columns.iter().map(ColumnSpec::header))?;
        }
        Ok(BankFileWriter {
            config,
            writer,
            count: 0,
            total: Decimal::ZERO,
        })
    }

    pub fn write(&mut self, instruction: &Instruction) -> Result<(), csv::Error> {
        self.count += 1;
        self.total += instruction.amount;
        self.writer.write_record(
            self.config
                .columns
                .iter()
                .map(|column| column.field().value(instruction)),
        )
    }

    /// Writes the control line (`TOTAL,<count>,<sum>`) and hands back the output with the
    /// count and total written.
    pub fn finish(mut self) -> Result<(W, u64, Decimal), csv::Error> {
        let mut total_text = self.total;
        total_text.rescale(2);
        self.writer.write_record([
            self.config.control_label.clone(),
            self.count.to_string(),
            total_text.to_string(),
        ])?;
        let out = self.writer.into_inner().map_err(|e| e.into_error())?;
        Ok((out, self.count, self.total))
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
    let mut file = AtomicBankFile::create(dir, batch_id, config)?;
    for instruction in instructions {
        file.write(instruction)?;
    }
    Ok(file.commit()?.0)
}

/// A bank file being written to a hidden temp file beside its target; [`commit`] makes it
/// appear complete under its name, or not at all.
///
/// [`commit`]: AtomicBankFile::commit
pub struct AtomicBankFile<'a> {
    target: PathBuf,
    dir: PathBuf,
    writer: BankFileWriter<'a, std::io::BufWriter<tempfile::NamedTempFile>>,
}

impl<'a> AtomicBankFile<'a> {
    pub fn create(
        dir: &Path,
        batch_id: &str,
        config: &'a BankFileConfig,
    ) -> Result<AtomicBankFile<'a>, PaymentError> {
        let target = dir.join(config.file_name(batch_id));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // A leading dot keeps bank pickup jobs from seeing the file before it is complete.
        let temp = tempfile::Builder::new()
            .prefix(".jiuzhu-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io(dir))?;
        let writer = BankFileWriter::new(config, std::io::BufWriter::with_capacity(1 << 16, temp))
            .map_err(csv_error(&target))?;
        Ok(AtomicBankFile {
            target,
            dir: dir.to_owned(),
            writer,
        })
    }

    pub fn write(&mut self, instruction: &Instruction) -> Result<(), PaymentError> {
        self.writer
            .write(instruction)
            .map_err(csv_error(&self.target))
    }

    /// Writes the control line, fsyncs, renames over the target and fsyncs the folder.
    /// Returns the path, the count and the total written.
    pub fn commit(self) -> Result<(PathBuf, u64, Decimal), PaymentError> {
        let target = self.target;
        let (out, count, total) = self.writer.finish().map_err(csv_error(&target))?;
        let temp = out.into_inner().map_err(|e| PaymentError::Io {
            path: target.clone(),
            source: e.into_error(),
        })?;
        temp.as_file().sync_all().map_err(io(temp.path()))?;
        temp.persist(&target).map_err(|e| PaymentError::Io {
            path: target.clone(),
            source: e.error,
        })?;
        sync_dir(&self.dir).map_err(io(&self.dir))?;
        Ok((target, count, total))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PaymentError + use<> {
    let path = path.to_owned();
    move |source| PaymentError::Io { path, source }
}

fn csv_error(path: &Path) -> impl FnOnce(csv::Error) -> PaymentError + use<> {
    let path = path.to_owned();
    move |source| PaymentError::Csv { path, source }
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
