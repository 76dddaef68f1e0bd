"""Stage 1: RabbitMQ. Declares the topology, consumes the five domain queues and owns the one
place that acks, dead-letters or requeues a delivery. It knows nothing of what a handler does."""
