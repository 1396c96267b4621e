"""The compiler: config.json -> checked config -> ordered ops -> plan (JSON, text, sh, py)."""
