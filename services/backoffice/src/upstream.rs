//! The services' gRPC clients, called with the reviewer's own token, and how their refusals
//! read on a page.

use http::StatusCode;
use kg_proto::identity::identity_check_service_client::IdentityCheckServiceClient;
use kg_proto::registration::registration_service_client::RegistrationServiceClient;
use kg_proto::review::review_service_client::ReviewServiceClient;
use kg_runtime::error::DecodedError;
use serde::Serialize;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::auth::Session;

/// GetApplication and GetSeller carry the logo (up to 5 MiB) besides the rest.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

pub struct Upstream {
    pub review: Channel,
    pub registration: Channel,
    pub identity: Channel,
}

impl Upstream {
    pub fn review(&self) -> ReviewServiceClient<Channel> {
        ReviewServiceClient::new(self.review.clone())
    }

    pub fn registration(&self) -> RegistrationServiceClient<Channel> {
        RegistrationServiceClient::new(self.registration.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    pub fn identity(&self) -> IdentityCheckServiceClient<Channel> {
        IdentityCheckServiceClient::new(self.identity.clone())
    }
}

/// `message` as the signed-in reviewer: their bearer token (marked sensitive, so it is never
/// logged or HPACK-indexed) and the trace context.
pub fn call<T>(message: T, session: &Session) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(mut value) = format!("Bearer {}", session.token).parse::<AsciiMetadataValue>() {
        value.set_sensitive(true);
        request.metadata_mut().insert("authorization", value);
    }
    kg_runtime::telemetry::inject_current(request.metadata_mut());
    request
}

/// A service's refusal as the reviewer sees it: its own message and reason code, and each field
/// problem it listed.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub message: String,
    pub reason: String,
    pub code: String,
    pub details: Vec<String>,
    #[serde(skip)]
    pub http: StatusCode,
}

impl Refusal {
    pub fn from_status(status: &tonic::Status) -> Refusal {
        use tonic::Code;
        let decoded = DecodedError::from_status(status);
        let mut details: Vec<String> = decoded
            .field_violations
            .iter()
            .map(|(field, description)| format!("{field}: {description}"))
            .collect();
        details.extend(
            decoded
                .preconditions
                .iter()
                .map(|(kind, _, description)| format!("{kind}: {description}")),
        );
        let http = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        Refusal {
            message: if status.message().is_empty() {
                format!("{:?}", status.code())
            } else {
                status.message().to_string()
            },
            reason: decoded.reason.unwrap_or_default(),
            code: format!("{:?}", status.code()),
            details,
            http,
        }
    }

    /// A refusal of the back office itself (bad input before any call).
    pub fn local(http: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            reason: String::new(),
            code: String::new(),
            details: Vec::new(),
            http,
        }
    }
}
