//! Classification of AWS errors into the few categories that decide what happens next.

use std::fmt;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// What an error means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The request budget was exceeded (ours or AWS's); retry after a growing delay.
    Throttling,
    /// 5xx, timeouts, lost connections or responses; retry soon (creates are idempotent by token or name).
    Transient,
    /// The resource does not exist; during deletion this counts as done.
    NotFound,
    /// The resource is in a state that conflicts with the request (priority in use, resource in use,
    /// concurrent modification); re-observe and plan again.
    Conflict,
    /// Will not succeed by retrying: access denied, invalid parameters, quotas. Waits for a spec change
    /// or minutes.
    Terminal,
}

impl ErrorCategory {
    /// Stable lowercase label used in metrics, Events and condition reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttling => "throttling",
            Self::Transient => "transient",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Terminal => "terminal",
        }
    }

    /// PascalCase form for condition and Event reasons.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Throttling => "AwsThrottled",
            Self::Transient => "AwsUnavailable",
            Self::NotFound => "AwsNotFound",
            Self::Conflict => "AwsConflict",
            Self::Terminal => "AwsRejected",
        }
    }

    /// Whether the same request may succeed if simply sent again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttling | Self::Transient)
    }
}

impl fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "EC2ThrottledException",
    "ProvisionedThroughputExceededException",
    // Route 53: a second change to a zone while one is pending. Same remedy as throttling.
    "PriorRequestNotComplete",
];

const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServerException",
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
    "TransactionInProgressException",
];

const CONFLICT_CODES: &[&str] = &[
    "PriorityInUse",
    "DuplicateTargetGroupName",
    "DuplicateListener",
    "ResourceInUse",
    "ResourceInUseException",
    "ConflictException",
    "ConcurrentModification",
    "HealthCheckAlreadyExists",
    "HealthCheckInUse",
    "ConflictingDomainExists",
    "InvalidChangeBatch",
    "UpdateInProgressException",
];

/// Classify an AWS error code (and HTTP status when known).
pub fn classify_code(code: Option<&str>, http_status: Option<u16>) -> ErrorCategory {
    if let Some(code) = code {
        if THROTTLING_CODES.contains(&code) {
            return ErrorCategory::Throttling;
        }
        if TRANSIENT_CODES.contains(&code) {
            return ErrorCategory::Transient;
        }
        if CONFLICT_CODES.contains(&code) {
            return ErrorCategory::Conflict;
        }
        if code.ends_with("NotFound") || code.ends_with("NotFoundException") || code.starts_with("NoSuch") {
            return ErrorCategory::NotFound;
        }
    }
    match http_status {
        Some(429) => ErrorCategory::Throttling,
        Some(404) => ErrorCategory::NotFound,
        Some(409) => ErrorCategory::Conflict,
        Some(s) if s >= 500 => ErrorCategory::Transient,
        _ => ErrorCategory::Terminal,
    }
}

/// An error already classified: what the retry loop and the controllers look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    /// Category of the error.
    pub category: ErrorCategory,
    /// AWS error code, or a synthetic one (`Timeout`, `DispatchFailure`, ...).
    pub code: String,
    /// Message from AWS or the SDK.
    pub message: String,
}

/// Anything the retry loop can classify.
pub trait Classify {
    /// Category, code and message of this error.
    fn classify(&self) -> Classified;
}

impl<E> Classify for SdkError<E, HttpResponse>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn classify(&self) -> Classified {
        let synthetic = |category, code: &str, err: &dyn std::error::Error| Classified {
            category,
            code: code.to_string(),
            message: error_chain(err),
        };
        if !matches!(self, SdkError::ServiceError(_)) {
            let chain = error_chain(self);
            if chain.contains(super::faults::INJECTED_UNAVAILABLE) {
                return synthetic(ErrorCategory::Transient, "ServiceUnavailable", self);
            }
            if chain.contains(super::faults::INJECTED_TIMEOUT) {
                return synthetic(ErrorCategory::Transient, "Timeout", self);
            }
        }
        match self {
            // The request may have reached AWS and succeeded: retry is safe only because every create
            // carries an idempotency token or a deterministic name.
            SdkError::TimeoutError(_) => synthetic(ErrorCategory::Transient, "Timeout", self),
            SdkError::DispatchFailure(_) if error_chain(self).contains(super::faults::INJECTED_THROTTLING) => {
                synthetic(ErrorCategory::Throttling, "ThrottlingException", self)
            }
            // Credentials that cannot be had (e.g. sts:AssumeRole of spec.aws.roleArn denied) fail
            // before the request is sent; retrying will not help, a human must fix the role.
            SdkError::DispatchFailure(_) if error_chain(self).contains("AccessDenied") => {
                synthetic(ErrorCategory::Terminal, "AccessDenied", self)
            }
            SdkError::DispatchFailure(_) => synthetic(ErrorCategory::Transient, "DispatchFailure", self),
            SdkError::ResponseError(_) => synthetic(ErrorCategory::Transient, "ResponseError", self),
            SdkError::ServiceError(ctx) => {
                let err = ctx.err();
                let status = ctx.raw().status().as_u16();
                Classified {
                    category: classify_code(err.code(), Some(status)),
                    code: err.code().map(str::to_string).unwrap_or_else(|| format!("Http{status}")),
                    message: err.message().map(str::to_string).unwrap_or_else(|| error_chain(err)),
                }
            }
            _ => synthetic(ErrorCategory::Terminal, "ConstructionFailure", self),
        }
    }
}

/// An error and its sources on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A failed AWS call, classified, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{service}:{operation} failed ({}): {code}: {message}", .category.as_str())]
pub struct AwsError {
    /// Service, e.g. `ecs`.
    pub service: &'static str,
    /// Operation, e.g. `CreateService`.
    pub operation: &'static str,
    /// What the error means.
    pub category: ErrorCategory,
    /// AWS error code.
    pub code: String,
    /// AWS message.
    pub message: String,
}

/// An SDK builder rejected a request we built: a bug, reported as terminal.
pub fn build_error(e: impl std::fmt::Display) -> AwsError {
    AwsError {
        service: "sdk",
        operation: "build",
        category: ErrorCategory::Terminal,
        code: "InvalidRequest".into(),
        message: e.to_string(),
    }
}

impl AwsError {
    /// Build from a classified error.
    pub fn new(service: &'static str, operation: &'static str, c: Classified) -> Self {
        Self { service, operation, category: c.category, code: c.code, message: c.message }
    }

    /// `service:Operation`, as shown in `status.lastError.operation`.
    pub fn operation_path(&self) -> String {
        format!("{}:{}", self.service, self.operation)
    }

    /// True when the resource is gone (deletion treats this as done).
    pub fn is_not_found(&self) -> bool {
        self.category == ErrorCategory::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_categories() {
        use ErrorCategory::*;
        let cases = [
            (Some("ThrottlingException"), Some(400), Throttling),
            (Some("Throttling"), Some(400), Throttling),
            (Some("PriorRequestNotComplete"), Some(400), Throttling),
            (Some("ServerException"), Some(500), Transient),
            (None, Some(503), Transient),
            (Some("ServiceNotFoundException"), Some(400), NotFound),
            (Some("TargetGroupNotFound"), Some(400), NotFound),
            (Some("NoSuchHostedZone"), Some(404), NotFound),
            (Some("NoSuchHealthCheck"), Some(404), NotFound),
            (Some("PriorityInUse"), Some(400), Conflict),
            (Some("HealthCheckAlreadyExists"), Some(409), Conflict),
            (Some("AccessDeniedException"), Some(400), Terminal),
            (Some("InvalidParameterException"), Some(400), Terminal),
            (Some("TooManyHealthChecks"), Some(400), Terminal),
            (None, Some(429), Throttling),
            (None, None, Terminal),
        ];
        for (code, status, want) in cases {
            assert_eq!(classify_code(code, status), want, "{code:?} {status:?}");
        }
    }

    #[test]
    fn a_denied_credential_is_terminal_and_a_connection_failure_transient() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let failure = |msg: &str| -> SdkError<aws_sdk_ecs::operation::list_tasks::ListTasksError, HttpResponse> {
            SdkError::dispatch_failure(ConnectorError::other(msg.to_string().into(), None))
        };
        let denied = failure("failed to load credentials: AccessDenied: not authorized to perform sts:AssumeRole");
        assert_eq!(denied.classify().category, ErrorCategory::Terminal);
        assert_eq!(denied.classify().code, "AccessDenied");
        assert_eq!(failure("connection refused").classify().category, ErrorCategory::Transient);
        let injected = failure(crate::aws::faults::INJECTED_UNAVAILABLE).classify();
        assert_eq!((injected.category, injected.code.as_str()), (ErrorCategory::Transient, "ServiceUnavailable"));
        let injected = failure(crate::aws::faults::INJECTED_TIMEOUT).classify();
        assert_eq!((injected.category, injected.code.as_str()), (ErrorCategory::Transient, "Timeout"));
    }

    #[test]
    fn only_throttling_and_transient_are_retryable() {
        assert!(ErrorCategory::Throttling.is_retryable());
        assert!(ErrorCategory::Transient.is_retryable());
        assert!(!ErrorCategory::NotFound.is_retryable());
        assert!(!ErrorCategory::Conflict.is_retryable());
        assert!(!ErrorCategory::Terminal.is_retryable());
    }
}
