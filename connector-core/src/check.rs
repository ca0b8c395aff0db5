//! Precondition checks, as printed by `cdc check`: each one passed, warned or failed, with a hint.

use std::fmt;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    /// The precondition holds.
    Pass,
    /// It holds, but something deserves attention (a table without a key).
    Warn,
    /// It does not hold; the pipeline would fail.
    Fail,
}

impl CheckStatus {
    /// `ok`, `warn` or `FAIL`, as printed.
    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Pass => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        }
    }
}

/// One named precondition check and what it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`wal_level`, `topic inventory.public.orders`).
    pub name: String,
    /// Whether it passed.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// How to fix it, for warnings and failures.
    pub hint: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status: CheckStatus::Pass,
            detail: detail.into(),
            hint: None,
        }
    }

    /// A warning with a hint.
    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            status: CheckStatus::Warn,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    /// A failure with a hint.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    /// A failure built from an error (its report is the detail, its hint the hint).
    pub fn from_error(name: impl Into<String>, error: &crate::Error) -> Self {
        Check {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: error.message().to_string(),
            hint: error.hint().map(str::to_string),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>4}] {}: {}",
            self.status.label(),
            self.name,
            self.detail
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n         fix: {h}")?;
        }
        Ok(())
    }
}
