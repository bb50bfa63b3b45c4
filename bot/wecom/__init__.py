"""WeCom edge: callback crypto and parsing, the API client, the emulator."""
