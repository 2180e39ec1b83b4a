"""QIWI: present for completeness and historic data, disabled (licence revoked 21 Feb 2024)."""
