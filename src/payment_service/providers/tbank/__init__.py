"""T-Bank (Tinkoff) internet acquiring EACQ v2 adapter."""
