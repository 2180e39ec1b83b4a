"""The Game Catalog Service behind a port: games and DLC, regional prices, payees and their terms."""
