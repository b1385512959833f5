"""Speech recognition engines (offline Vosk), behind one protocol: see the speech issue."""
