"""Results files (pytest-benchmark JSON) -> pandas -> the Jinja2 HTML leaderboard."""
