//! Kafka errors classified into [`ErrorKind`]s, in one place.
//!
//! | librdkafka error | kind | retried by |
//! |---|---|---|
//! | transport, all brokers down, resolve, network | `Connection` | pipeline restart |
//! | message / request / operation timed out | `Timeout` | pipeline restart |
//! | not leader, not enough replicas, coordinator moving, purged at shutdown, other broker errors | `Unavailable` | pipeline restart |
//! | SASL / SSL authentication | `Authentication` | operator |
//! | topic / cluster / transactional-id authorization | `Permission` | operator |
//! | unknown topic or partition | `Precondition` | operator (create it, or `create_topics`) |
//! | message too large, invalid or corrupt record | `Data` | operator (or `dead_letter_topic`) |
//! | producer fenced, invalid producer epoch | `Fenced` | fatal: another instance took over |
//! | unsupported version or feature (no transactions) | `Precondition` | operator |
//! | invalid configuration or argument | `Config` | operator |
//!
//! Queue full is not an error: the producer waits for room (backpressure). librdkafka itself retries
//! retriable produce errors within `message.timeout.ms`, keeping order with the idempotent producer.

use connector_core::{Error, ErrorKind};
use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

/// The kind of a librdkafka error code.
pub fn kind_of(code: C) -> ErrorKind {
    match code {
        C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::Resolve
        | C::NetworkException
        | C::BrokerNotAvailable
        | C::SSL => ErrorKind::Connection,
        C::MessageTimedOut | C::RequestTimedOut | C::OperationTimedOut | C::TimedOutQueue => {
            ErrorKind::Timeout
        }
        C::Authentication | C::SaslAuthenticationFailed | C::UnsupportedSASLMechanism => {
            ErrorKind::Authentication
        }
        C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::GroupAuthorizationFailed => ErrorKind::Permission,
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition | C::InvalidTopic => {
            ErrorKind::Precondition
        }
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::MessageBatchTooLarge
        | C::InvalidRecord
        | C::InvalidMessage
        | C::BadMessage
        | C::PolicyViolation => ErrorKind::Data,
        C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::Fenced
        | C::TransactionCoordinatorFenced => ErrorKind::Fenced,
        C::UnsupportedVersion | C::UnsupportedFeature | C::UnsupportedForMessageFormat => {
            ErrorKind::Precondition
        }
        C::InvalidConfig | C::InvalidArgument | C::InvalidTransactionTimeout => ErrorKind::Config,
        _ => ErrorKind::Unavailable,
    }
}

/// What an operator can do about `code`, if anything specific.
pub fn hint_of(code: C) -> Option<&'static str> {
    Some(match kind_of(code) {
        ErrorKind::Connection => {
            "check `sink.brokers` (and TLS settings): the brokers must be reachable from cdc"
        }
        ErrorKind::Authentication => "check `sink.sasl` (mechanism, username, password) and TLS",
        ErrorKind::Permission => {
            "grant the principal WRITE and DESCRIBE on the topics (and, for exactly_once, WRITE \
             and DESCRIBE on the transactional id and IDEMPOTENT_WRITE on the cluster)"
        }
        ErrorKind::Precondition if is_unknown_topic(code) => {
            "create the topic, or set `sink.create_topics` to let cdc create missing topics"
        }
        ErrorKind::Precondition => {
            "the broker does not support this feature; exactly_once needs Kafka transactions \
             (KIP-98): use `delivery: at_least_once` with this broker"
        }
        ErrorKind::Data if is_too_large(code) => {
            "raise the topic's `max.message.bytes` and `sink.properties.message.max.bytes`, or \
             set `sink.dead_letter_topic`"
        }
        ErrorKind::Fenced => {
            "another instance of this pipeline started with the same transactional id; run one \
             instance per pipeline"
        }
        _ => return None,
    })
}

/// Whether `code` says the topic or partition does not exist.
pub fn is_unknown_topic(code: C) -> bool {
    matches!(
        code,
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition
    )
}

/// Whether `code` says a message is larger than allowed.
pub fn is_too_large(code: C) -> bool {
    matches!(
        code,
        C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge
    )
}

/// The error code inside a [`KafkaError`], if it has one.
pub fn code_of(e: &KafkaError) -> Option<C> {
    match e {
        KafkaError::Transaction(t) => Some(t.code()),
        other => other.rdkafka_error_code(),
    }
}

/// The kind of a [`KafkaError`].
pub fn kind_of_error(e: &KafkaError) -> ErrorKind {
    match e {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) | KafkaError::Nul(_) => {
            ErrorKind::Config
        }
        KafkaError::Transaction(t) if t.is_fatal() && kind_of(t.code()) != ErrorKind::Fenced => {
            // A fatal transactional error other than fencing: the producer must be recreated,
            // which a pipeline restart does.
            ErrorKind::Unavailable
        }
        other => code_of(other).map_or(ErrorKind::Unavailable, kind_of),
    }
}

/// An [`Error`] for `e` while doing `what`, classified, with a hint and `e` attached.
pub fn kafka_error(what: impl Into<String>, e: KafkaError) -> Error {
    let kind = kind_of_error(&e);
    let mut error = Error::new(kind, what);
    if let Some(hint) = code_of(&e).and_then(hint_of) {
        error = error.with_hint(hint);
    }
    error.with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_matches_the_table() {
        assert_eq!(kind_of(C::AllBrokersDown), ErrorKind::Connection);
        assert_eq!(kind_of(C::MessageTimedOut), ErrorKind::Timeout);
        assert_eq!(kind_of(C::NotLeaderForPartition), ErrorKind::Unavailable);
        assert_eq!(kind_of(C::MessageSizeTooLarge), ErrorKind::Data);
        assert_eq!(kind_of(C::UnknownTopicOrPartition), ErrorKind::Precondition);
        assert_eq!(kind_of(C::TopicAuthorizationFailed), ErrorKind::Permission);
        assert_eq!(
            kind_of(C::SaslAuthenticationFailed),
            ErrorKind::Authentication
        );
        assert_eq!(kind_of(C::ProducerFenced), ErrorKind::Fenced);
        assert!(kind_of(C::NotEnoughReplicas).is_retryable());
        assert!(!kind_of(C::ProducerFenced).is_retryable());
        assert!(hint_of(C::UnknownTopicOrPartition)
            .unwrap()
            .contains("create_topics"));
        assert!(hint_of(C::MessageSizeTooLarge)
            .unwrap()
            .contains("dead_letter_topic"));
        let e = kafka_error("producing", KafkaError::MessageProduction(C::QueueFull));
        assert!(e.is_retryable());
    }
}
