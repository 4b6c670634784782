//! Analyzers: one module per protocol, each turning packets into records. (In progress.)
