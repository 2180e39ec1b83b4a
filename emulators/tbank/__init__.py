"""T-Bank (Tinkoff) EACQ v2 emulator."""
