"""Referral payouts requested by the Social Service."""
