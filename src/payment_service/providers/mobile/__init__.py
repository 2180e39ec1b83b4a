"""Mobile-commerce aggregator adapter (MTS, Beeline, MegaFon, Tele2). The aggregator API is ours: see README.md."""
