"""Reading runs for people: report data, summaries, Markdown, charts."""
