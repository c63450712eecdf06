//! The topology beyond the exchange: the default queue, its binding and its dead letters.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};
use tokio::time::timeout;

use crate::broker::publisher::{BrokerError, Publisher, DEFAULT_BINDING};

impl Publisher {
    /// Declares the default durable queue (`default_queue_type`, dead-lettering to
    /// `dead_letter_exchange` when set) and binds it with `payment.#`. A queue that already
    /// exists with other arguments (406, e.g. a classic queue from before quorum was the default)
    /// is left as it is and only bound: declaration arguments are never changed in place.
    pub(super) async fn declare_default_queue(
        &self,
        connection: &Connection,
        setup: Channel,
    ) -> Result<(), BrokerError> {
        let s = &self.settings;
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), AMQPValue::LongString(s.default_queue_type.as_str().into()));
        if !s.dead_letter_exchange.is_empty() {
            self.declare_dead_letters(&setup).await?;
            arguments
                .insert("x-dead-letter-exchange".into(), AMQPValue::LongString(s.dead_letter_exchange.clone().into()));
        }
        let declared = timeout(
            s.operation_timeout,
            setup.queue_declare(s.default_queue.clone().into(), QueueDeclareOptions::durable(), arguments),
        )
        .await;
        let setup = match declared {
            Ok(Ok(_)) => setup,
            Ok(Err(e)) if e.is_amqp_soft_error() => {
                tracing::error!(
                    queue = %s.default_queue,
                    error = %e,
                    "the default queue exists with other arguments; binding it as it is"
                );
                self.op("channel.open", connection.create_channel()).await?
            }
            Ok(Err(e)) => return Err(BrokerError::Amqp("queue.declare", e.to_string())),
            Err(_) => return Err(BrokerError::Timeout("queue.declare")),
        };
        self.op(
            "queue.bind",
            setup.queue_bind(
                s.default_queue.clone().into(),
                s.exchange.clone().into(),
                DEFAULT_BINDING.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        let _ = timeout(s.operation_timeout, setup.close(200, "topology declared".into())).await;
        Ok(())
    }

    /// Declares the dead-letter exchange (fanout, durable) and `<default_queue>.dead` bound to it,
    /// where messages consumers reject from the default queue land.
    async fn declare_dead_letters(&self, setup: &Channel) -> Result<(), BrokerError> {
        let s = &self.settings;
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        self.op(
            "exchange.declare",
            setup.exchange_declare(
                s.dead_letter_exchange.clone().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            ),
        )
        .await?;
        let dead = format!("{}.dead", s.default_queue);
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), AMQPValue::LongString(s.default_queue_type.as_str().into()));
        self.op("queue.declare", setup.queue_declare(dead.clone().into(), QueueDeclareOptions::durable(), arguments))
            .await?;
        self.op(
            "queue.bind",
            setup.queue_bind(
                dead.into(),
                s.dead_letter_exchange.clone().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(())
    }
}
