//! HTTP header names the transport (`api`) and the node's connection handling (`node`) agree on, defined
//! here so that neither imports the other.

/// Where the accept loop puts the query string of a request line too long for hyper (`node::long_uri`);
/// the API's parameter extractor reads it back as the query.
pub(crate) const LONG_QUERY_HEADER: &str = "x-discovery-long-query";

/// The bilibili code of an answer, set by the API's envelopes and counted by the node's HTTP metrics.
pub(crate) const STATUS_CODE_HEADER: &str = "kratos-status-code";
