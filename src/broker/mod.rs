//! Publishing the outbox to RabbitMQ (contract §3): a durable topic exchange, routing key = event
//! type, CloudEvents JSON bodies, persistent messages published `mandatory` with publisher
//! confirms. Only a confirm without a return counts as published.

pub mod publisher;

pub use publisher::{BrokerError, Outcome, Publisher};
