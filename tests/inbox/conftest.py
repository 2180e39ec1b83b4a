from tests.outbox.helpers import effects, kafka_settings

__all__ = ["effects", "kafka_settings"]
