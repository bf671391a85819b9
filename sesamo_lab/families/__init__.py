"""Target families: each module registers a Family and its presets on import."""
