"""Sber internet acquiring (RBS REST, legacy form-encoded generation) adapter."""
