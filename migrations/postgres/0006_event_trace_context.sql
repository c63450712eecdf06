-- The W3C trace context (`traceparent`) of the operation that caused each event: a notification's
-- or an inquiry's span. The publisher sends it as the AMQP message's `traceparent` header, so a
-- consumer's trace continues that operation's. NULL when tracing was off.
ALTER TABLE events ADD COLUMN traceparent TEXT;
