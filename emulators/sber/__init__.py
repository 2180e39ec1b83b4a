"""Sber internet acquiring (legacy RBS REST, form-encoded) emulator."""
