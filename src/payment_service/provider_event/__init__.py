"""Inbox of provider webhooks: verify, store once, apply through the payment service."""
