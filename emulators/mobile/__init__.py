"""Mobile-commerce aggregator emulator (MTS, Beeline, MegaFon, Tele2) speaking OUR aggregator API v1."""
