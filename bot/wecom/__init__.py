"""WeCom edge: callback crypto and parsing, the API client, the emulator."""

# Where each app's callbacks arrive on the service; the emulator delivers to the same paths.
CALLBACK_PATHS = {
    "contact": "/wecom/callback/contact",
    "kf": "/wecom/callback/kf",
    "robot": "/wecom/callback/robot",
}
