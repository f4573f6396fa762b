//! The engine's errors: one enum, each kind with a stable code and an HTTP status.

use super::*;

/// Why an engine operation did not happen. `code()` is the stable code the CLI and API
/// print; `status()` the HTTP status class a server answers with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The core refused the event (forbidden, separation of duties, invalid data, …).
    #[error(transparent)]
    Step(#[from] StepError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The step lost a race; nothing was written. `holder` names who holds a task when
    /// that is why.
    #[error("{instance}: {reason}{}", holder_suffix(.holder.as_deref()))]
    Conflict {
        instance: String,
        reason: ConflictReason,
        holder: Option<String>,
    },
    /// A definition (deployed or about to be) does not load.
    #[error("definition {process} refused:\n{diagnostics}")]
    InvalidDefinition {
        process: String,
        diagnostics: String,
    },
    /// A project file could not be read for deployment.
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The project's rules or policies do not load.
    #[error("project rules: {source}")]
    Rules {
        #[source]
        source: Box<crate::project::ProjectError>,
    },
    /// A stored state does not read back as an instance state of its definition.
    #[error("stored state of {instance} is unreadable: {source}")]
    CorruptState {
        instance: String,
        #[source]
        source: serde_json::Error,
    },
    /// The case's stored state or head fails its check against the keyed history chain
    /// (changed behind the engine's back): no step runs on it.
    #[error(transparent)]
    Tampered(crate::store::TamperError),
    /// A start refused: an active case of the process holds the same business key
    /// (`key:`). Names that case, never the key (it is often an ID number).
    #[error("a {process} case holding the same business key exists: {case}")]
    DuplicateKey { process: String, case: String },
    /// The start `requires_active` an approved case of `process` for a person and the
    /// store holds none (`id_number` masked).
    #[error(
        "no approved {process} case holds ID number {id_number}: a start that requires an active benefit is refused"
    )]
    NoActiveBenefit { process: String, id_number: String },
    /// The case has already taken this message effect of another case (a redelivery).
    #[error("{instance} has already received {effect}")]
    AlreadyReceived { instance: String, effect: String },
    /// The case has taken as many messages of other cases as a case may
    /// (`core::MAX_RECEIVED`): a loop of messages cannot grow its state without limit.
    #[error("{instance} has taken {limit} messages of other cases, the most a case takes")]
    TooManyMessages { instance: String, limit: usize },
    /// A new state (or timer) does not serialise: nothing is stored rather than a null.
    #[error("state of {instance} does not serialise")]
    Serialize {
        instance: String,
        #[source]
        source: serde_json::Error,
    },
}

fn holder_suffix(holder: Option<&str>) -> String {
    holder
        .map(|h| format!(" (held by {h})"))
        .unwrap_or_default()
}

impl EngineError {
    /// One of `not_found`, `forbidden`, `separation_of_duties`, `conflict`, `invalid_data`,
    /// `duplicate`, `incident`, `invalid_definition`, `tampered` (the case's stored state or
    /// history fails its check against the keyed chain), `store`.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Step(e) => e.code(),
            EngineError::Store(StoreError::Conflict {
                reason: ConflictReason::Duplicate | ConflictReason::KeyTaken,
                ..
            }) => "duplicate",
            EngineError::Store(e) if e.is_conflict() => "conflict",
            EngineError::Store(StoreError::Tampered(_)) | EngineError::Tampered(_) => "tampered",
            EngineError::Store(StoreError::NotFound { .. }) => "not_found",
            EngineError::Store(_) => "store",
            EngineError::NotFound { .. } => "not_found",
            EngineError::Conflict {
                reason: ConflictReason::Duplicate,
                ..
            } => "duplicate",
            EngineError::Conflict {
                reason: ConflictReason::KeyTaken,
                ..
            } => "duplicate",
            EngineError::Conflict { .. } => "conflict",
            EngineError::DuplicateKey { .. } | EngineError::AlreadyReceived { .. } => "duplicate",
            EngineError::TooManyMessages { .. } => "too_many_messages",
            EngineError::NoActiveBenefit { .. } => "no_active_benefit",
            EngineError::InvalidDefinition { .. } | EngineError::Rules { .. } => {
                "invalid_definition"
            }
            EngineError::Read { .. }
            | EngineError::CorruptState { .. }
            | EngineError::Serialize { .. } => "store",
        }
    }

    /// The HTTP status class of [`EngineError::code`]: 404, 403, 409, 422 or 500.
    pub fn status(&self) -> u16 {
        match self.code() {
            "not_found" => 404,
            "forbidden" | "separation_of_duties" => 403,
            "conflict" | "duplicate" | "too_many_messages" => 409,
            "invalid_data" | "invalid_definition" | "no_active_benefit" => 422,
            _ => 500,
        }
    }

    /// True when the step lost a race and may be run again on a fresh state.
    pub fn is_conflict(&self) -> bool {
        self.code() == "conflict"
    }
}
