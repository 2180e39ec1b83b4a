"""Prices of purchases: regions and their currencies, effective-dated VAT rates, the revenue split."""
